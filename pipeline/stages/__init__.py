"""The DVC stages, one module each, named as in dvc.yaml: a pure function plus a short `main()`."""
