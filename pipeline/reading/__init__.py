"""Reading numbers from image files, as `predict`, `draw` and the numbers stage do: a model of any form,
the digits segmented and classified."""
