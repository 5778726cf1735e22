"""README.md as a newcomer reads it: every figure of its results tables is the committed file's, the
stage graph is dvc.yaml's, it stays short, and `make help` lists what it names."""

from __future__ import annotations

import json
import re
import sqlite3
import statistics
import subprocess
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal

import pytest
import yaml

from pipeline import environment
from tests.mnist_files import REPO
from tests.repos import last_line, stage

README = (REPO / "README.md").read_text()
MAX_BYTES = 20_000


def metrics(name: str) -> dict:
    return json.loads((REPO / "metrics" / f"{name}.json").read_text())


def percent(fraction: float) -> str:
    """As written: to two decimals, half up (0.97695 is 97.70%)."""
    return f"{(Decimal(str(fraction)) * 100).quantize(Decimal('0.01'), ROUND_HALF_UP)}%"


def thousands(count: int) -> str:
    return f"{count:,}"


# README's results table: a row's label -> its figures, CNN then baseline, from the files its last column names
RESULTS: dict[str, Callable[[], list[str]]] = {
    "test accuracy": lambda: [percent(metrics("CNN")["test_accuracy"]), percent(metrics("baseline")["accuracy"])],
    "test errors (of 10,000)": lambda: [str(metrics("CNN")["errors_test"]), str(metrics("baseline")["errors"])],
    "validation accuracy (the split every choice is made on)": lambda: [percent(metrics("CNN")["val_accuracy"]), ""],
    "training seconds": lambda: [
        f"{metrics('speed/train')['train_seconds']} ({metrics('CNN/train')['epochs_run']} epochs)",
        str(metrics("speed/baseline")["train_seconds"]),
    ],
    "parameters": lambda: [thousands(metrics("CNN/train")["params"]), thousands(metrics("baseline")["params"])],
    "int8 ONNX test accuracy": lambda: [percent(metrics("export")["int8_accuracy"]), ""],
    "photographed test digits read": lambda: [percent(metrics("photos")["photo_accuracy"]), ""],
    "numbers of 2-6 photographed digits read whole": lambda: [percent(metrics("numbers")["sequence_accuracy"]), ""],
    "the same, written and photographed another way (held out)": lambda: [
        percent(metrics("numbers")["outside_sequence_accuracy"]),
        "",
    ],
}


def bench_row(preset: str, bench: str = "bench") -> list[str]:
    """A preset's seeds, test accuracy mean ± sd (in points) and median training seconds, from metrics/`bench`.json."""
    figures = metrics(bench)["presets"][preset]
    seeds = figures["test_accuracy"]  # the sd of these, unrounded (the file's is rounded to 5 places)
    accuracy = percent(figures["test_accuracy_mean"]) + (
        f" ± {100 * statistics.stdev(seeds):.2f}" if len(seeds) > 1 else ""
    )
    return [str(len(figures["seeds"])), accuracy, str(figures["train_seconds_median"])]


def table_after(text: str, heading: str, header: str) -> dict[str, list[str]]:
    """The markdown table under `heading` whose header row starts with `header`: first cell -> the other cells."""
    section = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = section.split(f"\n{header}", 1)[1].split("\n\n", 1)[0].splitlines()[2:]  # past the header's rest and rule
    rows = [[cell.strip().replace("**", "") for cell in line.strip("|").split("|")] for line in lines]
    return {row[0]: row[1:] for row in rows}


def test_every_figure_of_the_results_table_is_its_committed_file_s():
    table = table_after(README, "## Results", "| | CNN")
    assert set(table) == set(RESULTS)
    for label, figures in RESULTS.items():
        assert table[label][:2] == figures(), label


def test_every_figure_of_the_bench_tables_is_the_committed_bench_s():
    """README's and docs/performance.md's: every preset metrics/bench.json holds, and only those."""
    presets = metrics("bench")["presets"]
    for text in (README, (REPO / "docs/performance.md").read_text()):
        table = table_after(text, "## Results" if text is README else "## The bench", "| preset")
        assert {re.match(r"`(\w+)`", label).group(1) for label in table} == set(presets)
        for label, cells in table.items():
            assert cells[:3] == bench_row(re.match(r"`(\w+)`", label).group(1)), label


def test_the_fashion_bench_table_is_the_committed_bench_s_beside_the_published_figures():
    """docs/performance.md's Fashion-MNIST table: every preset of metrics/bench-fashion_mnist.json and its
    logistic regression, from the file; the other rows are published figures (zalandoresearch/fashion-mnist)."""
    bench = metrics("bench-fashion_mnist")
    table = table_after((REPO / "docs/performance.md").read_text(), "## The bench on Fashion-MNIST", "| model")
    ours = {re.match(r"`(\w+)`", label).group(1): cells for label, cells in table.items() if label.startswith("`")}
    assert set(ours) == set(bench["presets"]) | {"baseline"}
    for name, cells in ours.items():
        if name == "baseline":
            assert cells[:3] == [
                "1",
                percent(bench["baseline"]["test_accuracy"]),
                str(bench["baseline"]["train_seconds"]),
            ]
        else:
            assert cells[:3] == bench_row(name, "bench-fashion_mnist"), name
    published = [float(cells[1].rstrip("%")) for label, cells in table.items() if not label.startswith("`")]
    assert len(published) >= 8


def test_another_dataset_s_figures_are_the_committed_bench_s():
    section = README.split("\n## Another dataset\n", 1)[1].split("\n## ", 1)[0]
    stated = re.search(
        r"scores ([\d.]+%) ± ([\d.]+) on test over (\d) seeds \(params.yaml's recipe as it is: ([\d.]+%)\)", section
    )
    default, reference = (bench_row(name, "bench-fashion_mnist") for name in ("default", "mnist_recipe"))
    assert [f"{stated[1]} ± {stated[2]}", stated[3], stated[4]] == [default[1], default[0], reference[1].split(" ")[0]]
    assert "`metrics/bench-fashion_mnist.json`" in section


def test_another_dataset_s_command_is_the_benched_default():
    """The README's one Fashion-MNIST command sets exactly the params of the preset its figures are of."""
    command = " ".join(readme_commands("## Another dataset")).replace("\\ ", "")  # its two lines, joined
    overrides = dict(override.split("=") for override in re.findall(r"-S (\S+)", command))
    preset = yaml.safe_load((REPO / "bench/presets-fashion_mnist.yaml").read_text())["presets"]["default"]
    assert command.startswith("dvc exp run ") and overrides.pop("data.dataset") == "fashion_mnist"
    assert overrides == {key: str(value).lower() for key, value in preset["params"].items()}


def test_the_quickstart_s_repro_time_is_the_committed_loop_s():
    took, training, name = re.search(
        r"took (\d+) s, of which (\d+) s training \(`(bench/loop-\w+\.json)`\)", README
    ).groups()
    repro = json.loads((REPO / name).read_text())["repro"]
    assert [int(took), int(training)] == [round(repro["total_seconds"]), round(repro["train_seconds"])]


def test_the_stage_graph_is_dvc_dag_s():
    graph = subprocess.run(
        ["dvc", "dag", "--mermaid"], cwd=REPO, env=environment(), capture_output=True, text=True, check=True
    ).stdout
    assert f"```mermaid\n{graph.strip()}\n```" in README
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert f" in {len(stages)} DVC stages" in README


def test_the_readme_is_short_and_its_links_lead_somewhere():
    assert len(README.encode()) <= MAX_BYTES
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith("http"):
            assert (REPO / target).exists(), target


def test_make_help_lists_every_target_the_readme_names():
    listed = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    targets = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert set(re.findall(r"`make ([a-z-]+)", README)) <= targets
    assert {"repro", "test", "test-fast", "ui", "serve", "draw", "server", "tune", "bench", "help"} <= targets


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")))
def test_each_doc_s_links_lead_somewhere(path):
    folder = (REPO / path).parent
    for target in re.findall(r"\]\(([^)#]+)\)", (REPO / path).read_text()):
        if not target.startswith("http"):
            assert (folder / target).exists() or (REPO / target).exists(), f"{path}: {target}"


def readme_commands(heading: str) -> list[str]:
    """The commands of the first bash block under `heading`, comments left out."""
    block = README.split(f"\n{heading}\n", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def troubleshooting_symptoms() -> list[str]:
    """The first cell's quoted message of each row of README's troubleshooting table."""
    table = README.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    return [m.group(2) for line in table.splitlines() if (m := re.match(r"\| (``?)(.+?)\1[ |]", line))]


def program_says(folder, command: str, **env: str) -> str:
    """The one line `python -m pipeline <command>` ends with when it fails, run in `folder` (its own params.yaml)."""
    result = stage(folder, command, **env)
    assert result.returncode == 1, result.stderr
    return last_line(result)


@pytest.mark.e2e  # four processes of the pipeline's CLI
def test_the_troubleshooting_table_quotes_the_program_s_own_words(tmp_path, repo_params):
    """Each `error: ...` the table lists is produced here, by its own code path (`...`: what varies)."""
    repo_params["data"] |= {"cache_dir": "cache", "timeout_s": 5}
    for source in repo_params["data"]["datasets"]["mnist"]["sources"]:  # the default sources, by name, no network
        source |= {"url": "http://127.0.0.1:9/", "wheel": None, "find_links": None, "deb": None, "apt_source": None}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params, sort_keys=False))
    store = tmp_path / "mlflow.db"
    said = [program_says(tmp_path, "download"), program_says(tmp_path, "promote")]  # promote: dvc.lock missing
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process writes the store for longer than a stage waits
    try:
        said.append(program_says(tmp_path, "promote"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    said.append(program_says(tmp_path, "serve", MLFLOW_TRACKING_URI=f"sqlite:///{store}"))
    quoted = [symptom for symptom in troubleshooting_symptoms() if symptom.startswith("error: ")]
    patterns = {symptom: re.escape(symptom).replace(re.escape("..."), ".+") for symptom in quoted}
    unmatched = [line for line in said[:1] + said[2:] if not any(re.fullmatch(p, line) for p in patterns.values())]
    assert not unmatched, f"README's troubleshooting does not quote these as the program writes them: {unmatched}"
    assert all(any(re.fullmatch(p, line) for line in said) for p in patterns.values()), quoted
