"""`python -m pipeline <stage>`: run one stage of dvc.yaml (or a command) with its params.yaml settings."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from pipeline import PipelineError

STAGES = {
    "download": "fetch MNIST from the first source that verifies -> data/raw/mnist.npz",
    "preprocess": "stratified train/validation split, data stats -> data/processed/",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="stage", required=True, metavar="stage")
    for stage, summary in STAGES.items():
        commands.add_parser(stage, help=summary, description=summary)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(module)s: %(message)s", stream=sys.stderr)
    try:
        importlib.import_module(f"pipeline.{args.stage}").main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
