"""pytest-xdist's scheduling with units of our choosing: each test alone, except named modules, which
run together on one worker (they share a repository built once).

pytest-xdist's public way, `--dist loadgroup` with `xdist_group` marks, does not serve: marks added
in `pytest_collection_modifyitems` do not reach its scheduler (pytest-dev/pytest-xdist#1241, #1295),
and a mark on every test of a module is a rule nothing enforces.  So its `LoadScopeScheduling` is
given our scope through its private `_split_scope`, here and nowhere else (tests/test_adapters.py).
"""

from __future__ import annotations

from typing import Any


def scheduling(config: Any, log: Any, together: tuple[str, ...]) -> Any:
    """pytest-xdist's load-scope scheduler, every test a unit of its own but those whose node id
    starts with one of `together`, which are one unit."""
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "together" if nodeid.startswith(together) else nodeid

    return Scheduling(config, log)
