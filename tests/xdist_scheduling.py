"""pytest-xdist's scheduling with units of our choosing: each test alone, except named groups of
modules, each group run together on one worker (its tests share what a fixture built once: a
reproduced repository, a team server).

pytest-xdist's public way, `--dist loadgroup` with `xdist_group` marks, does not serve: marks added
in `pytest_collection_modifyitems` do not reach its scheduler (pytest-dev/pytest-xdist#1241, #1295),
and a mark on every test of a module is a rule nothing enforces.  So its `LoadScopeScheduling` is
given our scope through its private `_split_scope`, here and nowhere else (tests/test_adapters.py).
"""

from __future__ import annotations

from typing import Any


def scheduling(config: Any, log: Any, groups: tuple[tuple[str, ...], ...]) -> Any:
    """pytest-xdist's load-scope scheduler, every test a unit of its own but those whose node id
    starts with one of a group's prefixes: each group is one unit."""
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return next((f"group {i}" for i, group in enumerate(groups) if nodeid.startswith(group)), nodeid)

    return Scheduling(config, log)
