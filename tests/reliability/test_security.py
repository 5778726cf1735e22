"""Security: models load in Keras' safe mode, nothing untrusted is unpickled (the download's pickle:
tests/stages/test_download.py), servers listen on this machine only unless told otherwise, and temp files
are private and unguessable."""

from __future__ import annotations

import stat
import subprocess
import sys

import keras
import numpy as np
import pytest

from pipeline import PipelineError, environment
from pipeline.commands.draw import make_server
from pipeline.infra.files import atomic_write, load_npz
from pipeline.infra.params import load_params
from pipeline.reading.models import load_predictor
from tests.mnist_files import REPO
from tests.servers import free_port, listening_addresses, wait_until_up


def test_a_keras_model_carrying_code_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Lambda(lambda x: x * 2)])  # arbitrary code
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(PipelineError, match=r"lambda.keras: not a loadable Keras model \(.*safe_mode") as refused:
        load_predictor(tmp_path / "lambda.keras")
    assert "\n" not in str(refused.value)


def test_npz_with_pickled_objects_is_refused(tmp_path):
    np.savez(tmp_path / "evil.npz", x=np.array([{"code": "object"}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle=False"):
        load_npz(tmp_path / "evil.npz")


@pytest.mark.e2e
def test_the_draw_page_listens_on_this_machine_only_by_default(digit_model, tmp_path):
    """The real `python -m pipeline draw`'s socket, from the kernel's tables (ui and serve: the same check
    where their tests start them, tests/commands/test_ui.py::running_ui and tests/servers.py::served_predictions;
    server and its PostgreSQL: tests/test_team.py::team_server)."""
    port, log = free_port(), tmp_path / "draw.log"
    command = [sys.executable, "-m", "pipeline", "draw", "--port", str(port), "--model", str(digit_model.keras_path)]
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=REPO, env=environment(), stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/", process, log)
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_draw_server_binds_loopback_by_default():
    server = make_server(lambda images: np.full((len(images), 10), 0.1), None, load_params().evaluate, port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def test_temp_files_are_private_unique_and_beside_their_target(tmp_path):
    target = tmp_path / "out" / "mnist.npz"
    with atomic_write(target) as first, atomic_write(target) as second:
        assert first.parent == target.parent and first != second  # random names: none to guess or pre-plant
        assert stat.S_IMODE(first.stat().st_mode) == 0o600  # created private (mkstemp: O_CREAT | O_EXCL)
        first.write_bytes(b"one")
        second.write_bytes(b"two")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644 and target.read_bytes() == b"one"
    assert [p.name for p in target.parent.iterdir()] == ["mnist.npz"]
