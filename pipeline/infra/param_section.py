"""The base of params.yaml's schema (`pipeline.infra.params`): a section that takes every key, exactly."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A mapping of params.yaml: every key required, none unknown, no value coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
