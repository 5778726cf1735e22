"""The ML core: the CNNs, their training, scoring, ONNX export, explanations, and the touching-digits detector."""
