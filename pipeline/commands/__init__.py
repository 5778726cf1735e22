"""What users run around the pipeline: predict, draw, serve, promote, ui, server, tune.

Each module has `main(**options)` and, when it takes options, `add_arguments(parser)`; the helpers
here declare the options several commands share.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_address(parser: argparse.ArgumentParser, port: int) -> None:
    """--host and --port of a command that serves HTTP."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=int, default=port, help="(default: %(default)s)")


def add_model(parser: argparse.ArgumentParser) -> None:
    """--model and --touching of a command that reads images."""
    parser.add_argument(
        "--model",
        help="a .keras or .onnx file, or an MLflow URI like models:/mnist-cnn@champion (default: models/cnn.onnx)",
    )
    parser.add_argument(
        "--touching", type=Path, help="the touching-digits detector, .onnx (default: models/touching.onnx)"
    )
