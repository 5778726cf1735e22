"""`python -m pipeline <stage|command>`: run one stage of dvc.yaml, or a command, with params.yaml settings."""

from __future__ import annotations

import argparse
import importlib
import logging
import resource
import sys

from pipeline import PipelineError, one_line

STAGES = {
    "download": "fetch MNIST from the first source that verifies -> data/raw/mnist.npz",
    "preprocess": "stratified train/validation split, data stats -> data/processed/",
    "train": "fit the CNN named by model.arch in an MLflow training run -> models/cnn.keras",
    "evaluate": "validation and test metrics (test scored once, never used to choose), speed, figures",
    "export": "the CNN as ONNX, float32 and int8, checked against Keras on the test set -> models/cnn.onnx",
    "photograph": "test digits rendered as photos and read back as predict reads a file -> data/photos.npz",
    "photos": "the exported model on the photographed digits: accuracy vs the same digits in MNIST",
    "baseline": "logistic regression on the same split, in an MLflow training run of its own",
    "compare": "CNN vs baseline: table, McNemar's test, plot",
    "record": "the execution's one MLflow pipeline run: every param, metric, curve and report",
}
COMMANDS = {
    "promote": "alias the CNN version with the best validation accuracy as 'champion' in the model registry",
    "ui": "serve the MLflow UI on the pipeline's store and print the runs table's address",
    "predict": "the digit in each image file (PNG, JPEG, BMP, GIF, ...), normalised as MNIST was made",
    "draw": "a web page to draw a digit on and watch the model's prediction live",
    "serve": "the registered CNN (alias champion) over REST with mlflow models serve",
    "server": "a shared MLflow tracking server on PostgreSQL, serving artifacts (for a team)",
}
MODEL_HELP = "a .keras or .onnx file, or an MLflow URI like models:/mnist-cnn@champion (default: models/cnn.onnx)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="stage", required=True, metavar="stage")
    for stage, summary in (STAGES | COMMANDS).items():
        commands.add_parser(stage, help=summary, description=summary)
    for server, port in (("ui", 5000), ("draw", 8000), ("serve", 5001), ("server", 5002)):
        command = commands.choices[server]
        command.add_argument(
            "--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)"
        )
        command.add_argument("--port", type=int, default=port, help="(default: %(default)s)")
    commands.choices["serve"].add_argument("--alias", default="champion", help="(default: %(default)s)")
    commands.choices["server"].add_argument(
        "--db-port", type=int, default=5433, help="PostgreSQL's (default: %(default)s)"
    )
    commands.choices["server"].add_argument(
        "--dir", dest="folder", default=".mlflow-server", help="database and artifacts (default: %(default)s)"
    )
    predict = commands.choices["predict"]
    predict.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or quoted globs")
    formats = predict.add_mutually_exclusive_group()
    formats.add_argument("--json", dest="output", action="store_const", const="json", default="table")
    formats.add_argument("--csv", dest="output", action="store_const", const="csv")
    for command in (predict, commands.choices["draw"]):
        command.add_argument("--model", help=MODEL_HELP)
    options = vars(parser.parse_args(argv))
    stage = options.pop("stage")
    logging.basicConfig(level=logging.INFO, format="%(module)s: %(message)s", stream=sys.stderr)
    try:
        status = (
            importlib.import_module(f"pipeline.{'stages' if stage in STAGES else 'commands'}.{stage}").main(**options)
            or 0
        )
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a full disk, an unwritable or missing file: its errno says which, in one line
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 1
    if stage in STAGES:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        print(f"{stage}: peak memory {peak_mib:.0f} MiB", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
