"""YAML files as DVC writes them: params.yaml, tune.yaml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading `1e-06` as a number as YAML 1.2 does (YAML 1.1 reads a string):
    `dvc exp run -S train.learning_rate=0.000001` writes it so."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"), list("-+.0123456789")
)


def read_yaml(path: Path) -> Any:
    """The YAML file at `path`, parsed with YamlLoader."""
    return yaml.load(path.read_text(), Loader=YamlLoader)
