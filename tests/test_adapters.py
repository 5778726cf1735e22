"""Each adapter's third-party internal still does what the adapter promises: an upgrade that moves
one fails here, in one place."""

from __future__ import annotations

import http.server
import json
import threading

import optuna
import pytest

from pipeline.adapters import mlflow_auth, mlflow_rest, optuna_trials
from tests.xdist_scheduling import scheduling


def test_optuna_trials_notes_a_copy_and_resumes_a_trial_by_id():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    asked = study.ask()
    copy = study.get_trials(deepcopy=False)[0]  # a FrozenTrial: its own set_user_attr is not stored
    optuna_trials.note(study, copy, "experiment", "s-0")
    assert optuna_trials.trial_id(copy) == optuna_trials.trial_id(asked)
    resumed = optuna_trials.resume(study, optuna_trials.trial_id(copy))
    resumed.report(0.5, step=1)
    study.tell(asked, 0.7)
    (told,) = study.get_trials()
    assert told.user_attrs == {"experiment": "s-0"} and told.intermediate_values == {1: 0.5} and told.value == 0.7


@pytest.fixture
def status_server():
    """A local HTTP server answering every GET with the status and JSON body the test sets, and
    recording each request's Authorization header."""
    answer = {"status": 200, "body": {}, "seen": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            answer["seen"].append((self.path, self.headers.get("Authorization")))
            body = json.dumps(answer["body"]).encode()
            self.send_response(answer["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    answer["uri"] = f"http://127.0.0.1:{server.server_port}"
    yield answer
    server.shutdown()


def test_mlflow_rest_sends_the_client_s_credentials_and_gives_the_status(status_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ada")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "secret")
    status_server["status"] = 401
    response = mlflow_rest.request(status_server["uri"], "/api/2.0/x", "GET", max_retries=0, raise_on_status=False)
    assert response.status_code == 401 and mlflow_rest.username(status_server["uri"]) == "ada"
    assert status_server["seen"][0][0] == "/api/2.0/x" and status_server["seen"][0][1].startswith("Basic ")


def test_mlflow_auth_lists_users_through_the_auth_route(status_server):
    status_server["body"] = {"users": [{"username": "admin", "is_admin": True, "roles": []}]}
    assert mlflow_auth.list_users(status_server["uri"]) == status_server["body"]["users"]
    assert status_server["seen"][0][0].endswith("/mlflow/users/list")
    assert any(host.startswith("localhost") for host in mlflow_auth.default_allowed_hosts())


def test_xdist_scheduling_keeps_each_group_of_modules_together_and_apart_from_the_others(pytestconfig, monkeypatch):
    monkeypatch.setattr(pytestconfig.option, "tx", ["2*popen"])
    scheduler = scheduling(pytestconfig, None, (("tests/a.py", "tests/b.py"), ("tests/c.py",)))
    units = {node: scheduler._split_scope(node) for node in ("a.py::one", "b.py::two", "c.py::one", "c.py::two")}
    units = {node: scheduler._split_scope(f"tests/{node}") for node in units}
    assert units["a.py::one"] == units["b.py::two"] != units["c.py::one"] == units["c.py::two"]
    assert scheduler._split_scope("tests/d.py::test_one") == "tests/d.py::test_one"
