"""A schema's validation error as one line naming the key, the value and what the key expects.

Imported only when validation fails (pipeline.infra.params.validate): its wording cannot change a
stage's outputs, so it is no stage's dependency (tests/test_architecture.py)."""

from __future__ import annotations

import difflib
import functools
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo


def explain(error: dict, raw: Any, schema: type[BaseModel]) -> str:
    """One pydantic error as a line naming the key, the value and what the key expects."""
    loc = error["loc"]
    if error["type"] == "extra_forbidden":
        siblings = _field_at(loc[:-1], schema)[2].model_fields
        close = difflib.get_close_matches(str(loc[-1]), siblings, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"expected one of {', '.join(siblings)}"
        return f"unknown key '{_key(loc)}': {hint}"
    if error["type"] == "value_error":  # a rule across keys (SourceParams)
        return f"{_key(loc)}: {error['ctx']['error']}"
    field, depth, _ = _field_at(loc, schema)
    expected = (field.description or _in_words(field.annotation)) if field else _in_words(schema)
    if error["type"] == "missing":
        return f"missing key '{_key(loc)}' ({expected})"
    value = functools.reduce(lambda value, part: value[part], loc[:depth], raw)
    return f"{_key(loc[:depth])} = {value!r}: expected {expected}"


def _field_at(loc: tuple, schema: type[BaseModel]) -> tuple[FieldInfo | None, int, type[BaseModel] | None]:
    """The deepest field of `schema` named by `loc`, how many parts of `loc` name it (the rest index
    into its list or mapping), and the model its own keys belong to."""
    field, depth, model, keyed = None, 0, schema, False
    for i, part in enumerate(loc):
        if isinstance(part, int) or keyed:  # a list's index, or a mapping's key (its value's fields follow)
            keyed = False
            continue
        if model is None or part not in model.model_fields:
            break
        field, depth = model.model_fields[part], i + 1
        keyed = typing.get_origin(field.annotation) is dict
        model = next((t for t in (field.annotation, *typing.get_args(field.annotation)) if _is_model(t)), None)
    return field, depth, model


def _in_words(tp: Any) -> str:
    """What type `tp` accepts, in words."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(args)
    if typing.get_origin(tp) is types.UnionType:
        return " or ".join(map(_in_words, args))
    if _is_model(tp):
        return "a mapping of " + ", ".join(tp.model_fields)
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}[tp]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _key(loc: tuple) -> str:
    """A location as params.yaml's key: data.sources[1].url."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".") or "top level"
