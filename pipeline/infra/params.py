"""params.yaml as pydantic models: the schema of every tunable value.

Every key is required: the code holds no hidden defaults (what can change a result is a key here; what
cannot, such as a prediction batch or a timeout, is a named constant beside its code, with its reason).
Unknown keys are rejected, nothing is coerced (strict), and a bad value stops the stage before any work
with one line naming the key, the value and what was expected (a field's `description`).  Overrides
(`dvc exp run -S`, and `pipeline.infra.overrides` in the bench, tests and search) pass through here.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from pipeline import PipelineError, one_line
from pipeline.infra.data_params import DataParams, MlflowParams
from pipeline.infra.param_section import Section
from pipeline.infra.yaml_files import read_yaml

PARAMS_FILE = Path("params.yaml")
Schema = typing.TypeVar("Schema", bound=BaseModel)
Value = bool | int | float | str | None  # one value of params.yaml (a leaf)


class ParamsError(PipelineError):
    """params.yaml is missing, unreadable, or has a bad key or value."""


class PreprocessParams(Section):
    """preprocess stage."""

    seed: int
    val_fraction: float = Field(gt=0, lt=1, description="a fraction in (0, 1)")
    subset: int | None = Field(ge=100, description="null (all images) or a number of training images >= 100")


class AugmentParams(Section):
    """Random distortions of training images (never applied at evaluation or inference)."""

    enabled: bool
    flip: bool  # mirror left to right at random: right for garments, wrong for digits
    rotation_deg: float = Field(ge=0, le=180, description="degrees in [0, 180]")
    shift: float = Field(ge=0, lt=1, description="a fraction of the image in [0, 1)")
    zoom: float = Field(ge=0, lt=1, description="a fraction in [0, 1)")
    erasing: float = Field(ge=0, le=1, description="a probability in [0, 1]")  # of a rectangle replaced by noise


class ModelParams(Section):
    """The CNN architecture (train stage)."""

    arch: Literal["default", "fast", "tiny", "simple", "lenet5", "bn", "deep", "deotte", "resnet"]
    test_time_shift: int = Field(ge=0, le=4, description="a number of pixels in [0, 4] (0 = no shifted copies)")
    ensemble_size: int = Field(ge=1, le=20, description="a number of members in [1, 20] (1 = a single model)")


class TrainParams(Section):
    """train stage."""

    seed: int
    epochs: int = Field(ge=1, description="an integer >= 1")
    batch_size: int = Field(ge=1, description="an integer >= 1")
    learning_rate: float = Field(gt=0, lt=1, description="a learning rate in (0, 1)")
    adam_beta_1: float = Field(ge=0, lt=1, description="a decay rate in [0, 1)")
    adam_beta_2: float = Field(ge=0, lt=1, description="a decay rate in [0, 1)")
    lr_schedule: Literal["one_cycle", "plateau", "constant"]
    warmup_fraction: float = Field(ge=0, lt=1, description="a fraction of the training steps in [0, 1)")
    label_smoothing: float = Field(ge=0, lt=1, description="a share of each target in [0, 1) (0 = plain labels)")
    ema_momentum: float = Field(ge=0, lt=1, description="a momentum in [0, 1) (0 = no weight averaging)")
    ema_statistics_images: int = Field(ge=1, description="a number of training images >= 1")
    ema_statistics_batch_size: int = Field(ge=1, description="an integer >= 1")
    plateau_factor: float = Field(gt=0, lt=1, description="a factor in (0, 1)")
    plateau_patience: int = Field(ge=1, description="a number of epochs >= 1")
    early_stopping_patience: int = Field(ge=0, description="a number of epochs >= 0 (0 = never stop early)")
    distribute: Literal["none", "mirrored", "auto"]
    augment: AugmentParams


class EvaluateParams(Section):
    """evaluate stage."""

    batch_size: int = Field(ge=1, description="an integer >= 1")
    latency_runs: int = Field(ge=1, description="an integer >= 1")
    grid_size: int = Field(ge=1, le=100, description="a number of images in [1, 100]")
    explain_images: int = Field(ge=1, description="a number of test images >= 1")
    explain_seed: int
    explained_mistakes: int = Field(ge=1, le=100, description="a number of images in [1, 100]")
    occlusion_patch: int = Field(ge=1, le=28, description="a square's side in pixels, in [1, 28]")
    occlusion_stride: int = Field(ge=1, le=28, description="a step in pixels, in [1, 28]")
    deletion_steps: int = Field(ge=1, description="a number of steps >= 1")


class ExportParams(Section):
    """export stage: the CNN as ONNX (float32 and int8), and how closely each must match Keras."""

    opset: int = Field(ge=13, le=21, description="an ONNX opset version in [13, 21]")
    min_agreement: float = Field(gt=0, le=1, description="a share of test images in (0, 1]")
    max_accuracy_gap: float = Field(ge=0, lt=1, description="an accuracy difference in [0, 1)")
    int8_calibration_images: int = Field(ge=1, description="a number of training images >= 1")
    int8_max_added_errors: float = Field(ge=0, description="a share of Keras' test errors >= 0")
    int8_per_channel: bool
    int8_reduce_range: bool


class CompareParams(Section):
    """compare stage: the CNN against the baseline on the test set."""

    alpha: float = Field(gt=0, lt=1, description="a significance level in (0, 1)")


class PhotosParams(Section):
    """photos stage: test digits rendered as photos, read back through `predict`."""

    seed: int
    count: int = Field(ge=1, description="a number of test images >= 1")


class SegmenterParams(Section):
    """segmenter stage: the touching-digits detector, trained on numbers composed of training digits."""

    seed: int
    examples: int = Field(ge=10, description="a number of training blobs >= 10")
    epochs: int = Field(ge=1, description="an integer >= 1")
    batch_size: int = Field(ge=1, description="an integer >= 1")
    learning_rate: float = Field(gt=0, lt=1, description="a learning rate in (0, 1)")


class NumbersParams(Section):
    """numbers stage: numbers composed of test digits, photographed, read back through `predict`."""

    seed: int
    count: int = Field(ge=1, description="a number of composed numbers >= 1")
    min_digits: int = Field(ge=1, le=12, description="a number of digits in [1, 12]")
    max_digits: int = Field(ge=1, le=12, description="a number of digits in [1, 12]")
    touching: float = Field(ge=0, le=1, description="a share of adjacent pairs in [0, 1]")
    outside_numbers: int = Field(ge=0, description="a number of numbers >= 0")
    outside_digits: int = Field(ge=0, description="a number of single digits >= 0")

    @model_validator(mode="after")
    def _ordered(self) -> NumbersParams:
        if self.min_digits > self.max_digits:
            raise ValueError("expected min_digits <= max_digits")
        return self


class BaselineParams(Section):
    """baseline stage: multinomial logistic regression on the pixels."""

    seed: int
    C: float = Field(gt=0, description="an inverse regularisation strength > 0")
    solver: Literal["lbfgs", "newton-cg", "sag", "saga"]
    max_iter: int = Field(ge=1, description="an integer >= 1")
    pixel_scaling: Literal["unit", "standard"]


class Params(Section):
    """The whole of params.yaml."""

    data: DataParams
    preprocess: PreprocessParams
    model: ModelParams
    train: TrainParams
    evaluate: EvaluateParams
    export: ExportParams
    photos: PhotosParams
    segmenter: SegmenterParams
    numbers: NumbersParams
    baseline: BaselineParams
    compare: CompareParams

    @property
    def mlflow(self) -> MlflowParams:
        """The MLflow experiment and registered models of the dataset the pipeline runs on."""
        return self.data.current.mlflow


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate `path`; raise ParamsError naming the first bad key."""
    try:
        raw = read_yaml(path)
    except (OSError, yaml.YAMLError) as error:
        raise ParamsError(f"{path}: cannot read: {one_line(error)}") from None
    return parse_params(raw, path)


def parse_params(raw: Any, path: Path = PARAMS_FILE) -> Params:
    """Validate the parsed YAML `raw` (errors name `path` as its origin)."""
    return validate(Params, raw, path)


def validate(schema: type[Schema], raw: Any, path: Path) -> Schema:
    """`raw` (parsed YAML) as `schema`; raise ParamsError with one line naming `path`, the first bad
    key, its value and what the key expects."""
    try:
        return schema.model_validate(raw)
    except ValidationError as invalid:
        from pipeline.infra.params_errors import explain  # only on failure: no stage depends on its wording

        errors = invalid.errors()
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])  # typos explain the rest
        raise ParamsError(f"{path}: {explain(first, raw, schema)}") from None
