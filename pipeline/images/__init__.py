"""Images of digits: one digit in MNIST's format, numbers cut into digits, and the test material
(numbers composed of MNIST digits, photographed) the stages and the detector learn and are scored on."""
