"""The layout keeps its promises: layers only look down, no import cycles, small modules, third-party
internals only in adapters, an edit reruns only the stages it can change, docs/architecture.md current."""

from __future__ import annotations

import ast
import re

import pytest

from tests.architecture import (
    LAYERS,
    REPO,
    downstream,
    import_closure,
    imported,
    layer,
    module_file,
    modules,
    reruns,
    stages,
    table,
)

SEARCH = [m for m in modules() if m.startswith("pipeline/search/") and m != "pipeline/search/handover.py"]
NOT_A_STAGE_DEP = [
    *(m for m in SEARCH if m != "pipeline/search/__init__.py"),  # the package's docstring: the hand-over's too
    *(m for m in modules() if m.startswith(("pipeline/commands/", "pipeline/team/"))),
    "pipeline/infra/params_errors.py",  # error wording: needed only when a stage fails
    "pipeline/adapters/mlflow_auth.py",
    "pipeline/reading/models.py",
    "pipeline/__main__.py",
]


def _imports(file: str) -> set[str]:
    """The package files `file` imports (any import, error handlers' included)."""
    found = set()
    for name, _ in imported(REPO / file):
        path = module_file(name)
        if path.exists():
            found.add(str(path.relative_to(REPO)))
    return found - {file}


def test_docs_architecture_md_is_current():
    assert (REPO / "docs/architecture.md").read_text() == table(), "run `make architecture`"


@pytest.mark.parametrize("module", modules())
def test_a_module_imports_only_from_its_layer_or_lower_ones(module):
    higher = {found for found in _imports(module) if layer(found) > layer(module)}
    assert not higher, f"{module} ({LAYERS[layer(module)]}) imports from higher layers: {sorted(higher)}"


def test_no_import_cycles():
    graph = {module: _imports(module) for module in modules()}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for found in sorted(graph[module]):
            if state.get(found) == "open":
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(found) :], found]))
            if found not in state:
                visit(found, [*path, found])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("module", modules())
def test_modules_are_small(module):
    assert len((REPO / module).read_text().splitlines()) <= 250


@pytest.mark.parametrize("module", NOT_A_STAGE_DEP)
def test_an_edit_to_the_search_commands_server_or_error_wording_reruns_no_stage(module):
    assert reruns(module) == []


def test_an_edit_to_the_export_or_quantization_reruns_export_and_what_follows_never_train():
    assert reruns("pipeline/ml/onnx_export.py") == ["export"]
    assert "train" not in downstream({"export"})


def test_an_experiment_starts_tensorflow_once_after_training_in_the_export_stage():
    """Every stage a retrained CNN reruns but export imports neither TensorFlow nor Keras, even lazily."""
    starting = {stage for stage in downstream({"train"}) if {"tensorflow", "keras"} & libraries_imported_by(stage)}
    assert starting == {"export"}


def test_the_photos_of_numbers_are_cut_without_the_cnn_so_a_retrained_one_reuses_the_cut():
    assert "cut" not in downstream({"train"})
    assert {"cut", "numbers"} <= downstream({"compose", "segmenter"})


def test_an_edit_to_the_segmentation_reruns_neither_train_evaluate_nor_export():
    for module in ("pipeline/images/segmentation.py", "pipeline/reading/numbers.py"):
        assert not {"train", "evaluate", "export"} & set(reruns(module))


def test_an_edit_to_a_figure_s_style_reruns_no_training():
    assert not {"train", "baseline", "segmenter"} & set(reruns("pipeline/report/plots.py"))


def test_the_held_out_photos_share_no_code_with_the_numbers_the_project_learns_and_measures_on():
    """pipeline/images/other_hands.py is the outside check: it must not draw as the composition, the
    camera or the detector's examples draw, or a change to them would move both sides of the check."""
    shared = import_closure("pipeline.images.other_hands") - {"pipeline/__init__.py", "pipeline/images/__init__.py"}
    assert shared == {"pipeline/images/other_hands.py"}


def test_only_the_search_s_hand_over_is_a_dependency_of_train():
    assert {m for m in modules() if m.startswith("pipeline/search/") and "train" in reruns(m)} == {
        "pipeline/search/__init__.py",
        "pipeline/search/handover.py",
    }
    assert "pipeline/adapters/optuna_trials.py" not in import_closure("pipeline.stages.train")


def libraries_imported_by(stage: str) -> set[str]:
    """The top-level packages that the modules a stage runs import, anywhere in them."""
    return {
        alias.name.split(".")[0]
        for file in import_closure(f"pipeline.stages.{stage}")
        for node in ast.walk(ast.parse((REPO / file).read_text()))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }


def test_no_stage_imports_the_search_library():
    """Optuna, the search's library, is loaded by name in a trial only (pipeline/search/handover.py)."""
    for stage in stages():
        assert "optuna" not in libraries_imported_by(stage), f"{stage} imports optuna"


# Third-party private names: each lives in one adapter, so an upgrade breaks in one place.
INTERNALS = {
    r"\._storage\b|\._trial_id\b|optuna\.trial\.Trial\(": "pipeline/adapters/optuna_trials.py",
    r"mlflow\.utils\.(credentials|rest_utils)": "pipeline/adapters/mlflow_rest.py",
    r"mlflow\.server\.(auth\.routes|security_utils)": "pipeline/adapters/mlflow_auth.py",
    r"\b_split_scope\b": "tests/xdist_scheduling.py",
    r"\.dvc/tmp/exps/run": "pipeline/adapters/dvc_executors.py",
}


@pytest.mark.parametrize("pattern", INTERNALS)
def test_a_third_party_internal_is_named_in_its_adapter_only(pattern):
    files = [*REPO.glob("pipeline/**/*.py"), *REPO.glob("tests/**/*.py"), *REPO.glob("bench/*.py")]
    using = {str(f.relative_to(REPO)) for f in files if re.search(pattern, f.read_text())}
    assert using - {"tests/test_architecture.py", "tests/test_adapters.py"} == {INTERNALS[pattern]}
