"""MNIST CNN pipeline: one module per DVC stage, driven by params.yaml, tracked in MLflow."""

import os
import sys
from pathlib import Path


class PipelineError(Exception):
    """A problem the user can fix (bad params, unreachable data): reported in one line, exit code 1."""


def one_line(error: BaseException) -> str:
    """The message of `error` collapsed onto one line, for one-line failure reports."""
    return " ".join(str(error).split()) or type(error).__name__


def environment(**variables: str) -> dict[str, str]:
    """This process's environment plus `variables`, with this interpreter's folder first on PATH, so
    that child processes (dvc, mlflow, uvicorn, the stages' `python`) run from the same environment."""
    return os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"} | variables
