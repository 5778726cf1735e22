"""Params changed in code as `dvc exp run -S` changes params.yaml: the bench, the search and the tests' one way."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pipeline.infra.params import Params, ParamsError, parse_params


def with_overrides(params: Params, overrides: dict[str, Any], origin: str = "overrides") -> Params:
    """`params` with dotted keys replaced, as `dvc exp run -S` does: `{"train.epochs": 1}`.

    The result is validated like params.yaml; a bad or unknown key raises ParamsError naming it
    (and `origin`, where the overrides came from)."""
    raw = params.model_dump()
    for key, value in overrides.items():
        *parents, last = key.split(".")
        section = raw
        for depth, part in enumerate(parents):
            if not isinstance(section.get(part), dict):
                raise ParamsError(f"{origin}: unknown key '{'.'.join(parents[: depth + 1])}' in '{key}'")
            section = section[part]
        section[last] = copy.deepcopy(value)
    return parse_params(raw, Path(origin))
