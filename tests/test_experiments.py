"""Reading DVC's queue: `dvc queue status` as DVC 3.67 prints it, and the experiments that finished in git's refs."""

import subprocess

import yaml

from pipeline.infra.yaml_files import YamlLoader
from pipeline.search.dvc_queue import as_override, experiment_file, experiment_refs, task_states

STATUS = """\
Task     Name            Created    Status
23a2f9b  fast-search-8   11:49 PM   Running
6d27ff3  fast-search-9   11:49 PM   Running
a2021fe  fast-search-10  11:50 PM   Queued
f70e36d  fast-search-8   11:40 PM   Failed
cfb38ff  fast-search-0   11:34 PM   Success

Worker status: 2 active, 0 idle
"""


def test_each_name_has_its_newest_task_and_a_task_no_executor_began_is_starting():
    executing = ["23a2f9b3c0ffee0000000000000000000000000", "cfb38ff0000000000000000000000000000000000"]
    assert task_states(STATUS, executing) == {
        "fast-search-8": "Running",  # queued again after a lost task, which failed
        "fast-search-9": "Starting",  # DVC says running, no executor folder yet (or ever: lost)
        "fast-search-10": "Queued",
        "fast-search-0": "Success",
    }


def test_an_override_reads_back_as_the_value_it_was():
    for value in (1e-06, 0.007957489130278422, 3, True, None, "fast", 2.0):
        key, text = as_override("train.x", value).split("=", 1)
        read = yaml.load(text, Loader=YamlLoader)
        assert (key, read, type(read)) == ("train.x", value, type(value))


def test_a_finished_experiment_is_found_by_its_name_in_git_s_refs(tmp_path, monkeypatch):
    """What DVC leaves when an experiment finishes: a commit under refs/exps/<baseline>/<name>."""
    monkeypatch.chdir(tmp_path)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "metrics.json").write_text('{"val_accuracy": 0.9}')
    subprocess.run([*git, "add", "metrics.json"], check=True)
    subprocess.run([*git, "commit", "-qm", "s-0"], check=True)
    assert experiment_refs() == {} and experiment_file("s-0", "metrics.json") is None
    ref = "refs/exps/ab/cdef0123/s-0"
    subprocess.run([*git, "update-ref", ref, "HEAD"], check=True)
    assert experiment_refs() == {"s-0": ref}
    assert experiment_file("s-0", "metrics.json") == '{"val_accuracy": 0.9}'
    assert experiment_file("s-1", "metrics.json") is None
