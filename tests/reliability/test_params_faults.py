"""Every key of params.yaml given a wrong type, an out-of-range value, a misspelt name, or removed;
every section removed: one line naming the key and what was expected, before any work."""

from __future__ import annotations

import copy
import typing
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from pipeline.__main__ import main as cli
from pipeline.infra.params import Params, ParamsError, parse_params
from tests.mnist_files import REPO

pytestmark = pytest.mark.reliability
RAW = yaml.safe_load((REPO / "params.yaml").read_text())
WRONG_TYPE = {"a": "mapping"}  # no key of params.yaml takes a mapping of this shape


def schema_leaves(model: type[BaseModel] = Params, raw: Any = RAW, path: tuple = ()) -> list[tuple[tuple, FieldInfo]]:
    """(path into the YAML, the key's field) for every leaf key of params.yaml."""
    leaves = []
    for name, field in model.model_fields.items():
        tp, value, here = field.annotation, raw[name], (*path, name)
        item = typing.get_args(tp)[0] if typing.get_origin(tp) is list else None
        entry = typing.get_args(tp)[1] if typing.get_origin(tp) is dict else None
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            leaves += schema_leaves(tp, value, here)
        elif isinstance(entry, type) and issubclass(entry, BaseModel):
            for key, element in value.items():  # every key of every entry
                leaves += schema_leaves(entry, element, (*here, key))
        elif item is not None and issubclass(item, BaseModel):
            leaves.append((here, field))  # the list itself (it is constrained) ...
            for i, element in enumerate(value):  # ... and every key of every element
                leaves += schema_leaves(item, element, (*here, i))
        else:
            leaves.append((here, field))
    return leaves


def shown(path: tuple) -> str:
    """A path as the loader names it: data.datasets.mnist.sources[1].url."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def out_of_range(field: FieldInfo) -> Any:
    """A value of the right type that the key's constraints refuse, or None if the key has none."""
    tp = field.annotation
    if typing.get_origin(tp) is Literal:
        return "nonsense"
    if not field.metadata:
        return None
    base = {typing.get_origin(tp) or tp} | set(typing.get_args(tp))
    for kind, value in ((float, -1.0), (int, -1), (str, ""), (list, []), (dict, {})):
        if kind in base:
            return value
    raise AssertionError(f"no out-of-range value for {tp}")


def mutated(path: tuple, change) -> dict:
    raw = copy.deepcopy(RAW)
    *parents, last = path
    container = raw
    for part in parents:
        container = container[part]
    change(container, last)
    return raw


def _set(value):
    def change(container, key):
        container[key] = value

    return change


def _rename(container, key):
    container[_misspelt(key)] = container.pop(key)


def _misspelt(key: str) -> str:
    """`key` with an s added (a letter doubled where that is a key too: data.dataset beside data.datasets)."""
    return f"{key}s" if f"{key}s" not in {"datasets"} else f"{key[:-1]}{key[-1] * 2}"


def _delete(container, key):
    del container[key]


LEAVES = schema_leaves()
CASES = {}
for path, field in LEAVES:
    key = shown(path)
    CASES[f"{key}: wrong type"] = (mutated(path, _set(WRONG_TYPE)), f"{key}")
    if (bad := out_of_range(field)) is not None:
        CASES[f"{key}: out of range"] = (mutated(path, _set(bad)), f"{key} = {bad!r}: expected ")
    if not isinstance(path[-1], int):
        CASES[f"{key}: misspelt"] = (
            mutated(path, _rename),
            f"unknown key '{key[: -len(path[-1])]}{_misspelt(path[-1])}': did you mean '{path[-1]}'?",
        )
        CASES[f"{key}: missing"] = (mutated(path, _delete), f"missing key '{key}' (")
for section in RAW:
    CASES[f"{section}: section missing"] = (
        mutated((section,), _delete),
        f"missing key '{section}' (a mapping of {', '.join(RAW[section])})",
    )
CASES["model.arch: unknown architecture"] = (
    mutated(("model", "arch"), _set("resnet50")),
    "model.arch = 'resnet50': expected one of default, fast, tiny, simple, lenet5, bn, deep, deotte, resnet",
)


def yaml_keys(raw: Any = RAW, path: tuple = ()) -> set[tuple]:
    """Every key path of the YAML itself: mappings and lists are walked, a source's `files` is one value."""
    items = raw.items() if isinstance(raw, dict) else enumerate(raw) if isinstance(raw, list) else []
    keys = {path} if path and (not items or path[-1] == "files" or isinstance(raw, list)) else set()
    for name, value in items:
        if path[-1:] != ("files",):
            keys |= yaml_keys(value, (*path, name))
    return keys


# the cases below cover every key: the schema walk and the YAML's own keys agree
assert {path for path, _ in LEAVES} == {path for path in yaml_keys() if not isinstance(path[-1], int)}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_params_are_named_in_one_line(case):
    raw, expected = CASES[case]
    with pytest.raises(ParamsError) as caught:
        parse_params(raw)
    message = str(caught.value)
    assert message.startswith("params.yaml: ") and "\n" not in message
    assert expected in message


STAGE_FAULTS = {  # each stage or command, with a bad value in a section it reads
    "download": ("data.timeout_s", -1),
    "preprocess": ("preprocess.val_fraction", 2),
    "train": ("train.epochs", 0),
    "evaluate": ("evaluate.batch_size", 0),
    "export": ("export.opset", 1),
    "photograph": ("photos.count", 0),
    "photos": ("evaluate.batch_size", 0),
    "segmenter": ("segmenter.epochs", 0),
    "compose": ("numbers.touching", 1.5),
    "card": ("numbers.max_digits", 13),
    "baseline": ("baseline.C", 0),
    "record": ("data.datasets.mnist.mlflow.experiment", ""),
    "promote": ("data.datasets.mnist.mlflow.cnn_model_name", ""),
}


@pytest.mark.parametrize("stage", STAGE_FAULTS)
def test_each_stage_stops_before_any_work(tmp_path, monkeypatch, capsys, stage):
    """In a folder holding nothing but params.yaml, the params error comes first: no data is read,
    nothing is written, one line is printed (run in-process through the CLI's entry point)."""
    key, value = STAGE_FAULTS[stage]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(mutated(tuple(key.split(".")), _set(value))))
    monkeypatch.chdir(tmp_path)
    assert cli([stage]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: params.yaml: {key} = {value!r}: expected ")
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]
