"""MNIST CNN pipeline: one module per DVC stage, driven by params.yaml, tracked in MLflow."""


class PipelineError(Exception):
    """A problem the user can fix (bad params, unreachable data): reported in one line, exit code 1."""


def one_line(error: BaseException) -> str:
    """The message of `error` collapsed onto one line, for one-line failure reports."""
    return " ".join(str(error).split()) or type(error).__name__
