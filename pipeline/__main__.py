"""`python -m pipeline <stage|command>`: run one stage of dvc.yaml, or a command, with params.yaml settings.

`SUBCOMMANDS` is the whole table: a new stage or command joins it in one line.  A command module
declares its own options in `add_arguments(parser)` (imported only when that command runs, so a stage
never loads a server's or a search's libraries) and takes them as keyword arguments of `main`.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import resource
import sys
from typing import NamedTuple

from pipeline import PipelineError, one_line


class Subcommand(NamedTuple):
    module: str
    summary: str


SUBCOMMANDS = {  # name: (module, summary)
    "download": Subcommand("pipeline.stages.download", "fetch MNIST from the first source that verifies"),
    "preprocess": Subcommand("pipeline.stages.preprocess", "stratified train/validation split, data stats"),
    "train": Subcommand("pipeline.stages.train", "fit the CNN named by model.arch, in an MLflow training run"),
    "export": Subcommand("pipeline.stages.export", "the CNN scored once, explained, and as ONNX float32 and int8"),
    "evaluate": Subcommand("pipeline.stages.evaluate", "validation and test metrics and figures (test never chooses)"),
    "photograph": Subcommand("pipeline.stages.photograph", "test digits rendered as photos and read back"),
    "photos": Subcommand("pipeline.stages.photos", "the exported model on the photographed digits"),
    "segmenter": Subcommand("pipeline.stages.segmenter", "the touching-digits detector of predict's segmentation"),
    "compose": Subcommand("pipeline.stages.compose", "numbers composed of test digits and photographed, once"),
    "cut": Subcommand("pipeline.stages.cut", "the composed numbers cut into digits where no CNN is needed"),
    "numbers": Subcommand("pipeline.stages.numbers", "the composed numbers read as predict reads them"),
    "card": Subcommand("pipeline.stages.card", "reports/model_card.md from this execution's metrics"),
    "baseline": Subcommand("pipeline.stages.baseline", "logistic regression, in an MLflow training run"),
    "compare": Subcommand("pipeline.stages.compare", "CNN vs baseline: table, McNemar's test, plot"),
    "record": Subcommand("pipeline.stages.record", "the execution's one MLflow pipeline run"),
    "predict": Subcommand("pipeline.commands.predict", "the number in each image file (--explain DIR: saliency maps)"),
    "draw": Subcommand("pipeline.commands.draw", "a web page to draw digits on, with the live reading and map"),
    "serve": Subcommand("pipeline.commands.serve", "the registered CNN (alias champion) over REST"),
    "promote": Subcommand("pipeline.commands.promote", "alias 'champion' the CNN version best on validation"),
    "ui": Subcommand("pipeline.commands.ui", "the MLflow UI on the pipeline's store; prints the runs table"),
    "server": Subcommand("pipeline.commands.server", "a shared MLflow server on PostgreSQL, for a team"),
    "tune": Subcommand("pipeline.commands.tune", "hyperparameter search: Optuna trials as DVC experiments"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.split("\n")[0])
    subparsers = parser.add_subparsers(dest="subcommand", required=True, metavar="stage|command")
    for name, subcommand in SUBCOMMANDS.items():
        subparsers.add_parser(name, help=subcommand.summary, description=subcommand.summary)
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    module = importlib.import_module(SUBCOMMANDS[chosen].module) if chosen in SUBCOMMANDS else None
    if hasattr(module, "add_arguments"):
        module.add_arguments(subparsers.choices[chosen])
    options = vars(parser.parse_args(argv))
    del options["subcommand"]
    logging.basicConfig(level=logging.INFO, format="%(module)s: %(message)s", stream=sys.stderr)
    try:
        status = module.main(**options) or 0
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a full disk, an unwritable or missing file: its errno says which, in one line
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 1
    if module.__name__.startswith("pipeline.stages."):
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        print(f"{chosen}: peak memory {peak_mib:.0f} MiB", file=sys.stderr)
    return status


if __name__ == "__main__":
    status = main()
    # The process ends here: spare it the interpreter's last garbage collections over every object
    # TensorFlow, MLflow and pandas made (1.2 s at the exit of a stage that imports TensorFlow, 0.5 s
    # of one that imports MLflow).  Exit handlers and stream flushes still run.
    gc.freeze()
    sys.exit(status)
