"""A team's MLflow tracking server on PostgreSQL, with passwords (`python -m pipeline server`).

Keeps everything in the git-ignored `--dir` (default .mlflow-server): the PostgreSQL cluster
(`postgres/`, created on first start; as the `postgres` system user when run as root, which
PostgreSQL refuses to run as), the served artifacts (`artifacts/`), and the secrets, each in a file
only its owner can read (0600): the database password (`postgres-password`, and `pgpass`, which
libpq reads, so no password is ever on a command line), the MLflow admin's (`admin-password`,
generated and shown once, on first start) and the auth app's settings (`basic_auth.ini`).

PostgreSQL takes scram-sha-256 passwords on every connection, TCP or socket, and listens on
127.0.0.1 only; it holds three databases: `mlflow` (runs and models), `mlflow_auth` (users and
permissions: never the tracking database, mlflow#18373) and `optuna` (a search's study storage,
tune.yaml `storage`).  MLflow runs its basic-auth app: every request needs a user and password
(clients set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or ~/.mlflow/credentials), new
experiments and models are READ for everyone but their creator, and `server user add NAME
--permission read|edit|manage` gives a teammate a password and a team-wide permission.  Beyond a
loopback address only with TLS (`--cert`/`--key`, or `--self-signed`), so that passwords never cross
a network in clear; clients trust a self-signed certificate with MLFLOW_TRACKING_SERVER_CERT_PATH.
Ctrl-C (or SIGTERM) stops the server and then the database.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

from pipeline import environment
from pipeline.adapters import mlflow_auth
from pipeline.infra.mlflow_servers import WITHOUT_GENAI_JOBS
from pipeline.team.postgres import DATABASES, database_uri, start_database
from pipeline.team.private_files import secret, write_private
from pipeline.team.tls import is_ip, is_loopback, tls_files
from pipeline.team.users import ADMIN

# A client's idle keep-alive connection over TLS held Ctrl-C for 30 s (uvicorn waits for open
# connections to close): stop waiting after this many seconds.
UVICORN_SHUTDOWN = ["--timeout-graceful-shutdown", "5"]

# Each request's password is checked with scrypt (about 70 ms of the server's CPU), and a stage that
# logs a model makes hundreds: a checked password is trusted for this long (MLflow's credential
# cache, per worker).  A user removed or a password changed is refused at once by the worker that
# handled the change, and by the server's three others within this time.
AUTH_CACHE_S = 60


def host_headers(host: str, name: str, extra: str | None) -> str | None:
    """MLflow's --allowed-hosts: beyond loopback, its defaults (localhost, private addresses) and the
    name clients are told, with any port, and `extra`; None keeps MLflow's defaults."""
    if is_loopback(host) and not extra:
        return None
    return ",".join([*mlflow_auth.default_allowed_hosts(), name, f"{name}:*", *(extra.split(",") if extra else [])])


def mlflow_command(
    root: Path, host: str, port: int, db_port: int, tls: tuple[Path, Path] | None, allowed_hosts: str | None
) -> tuple[list[str], str]:
    """MLflow's server with its basic-auth app on the cluster's tracking database, and its URL for clients."""
    name = socket.gethostname() if is_ip(host) and ipaddress.ip_address(host).is_unspecified else host
    tls_options = ["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])] if tls else []
    command = [
        *[sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth"],
        *["--backend-store-uri", database_uri(db_port, DATABASES["tracking"])],
        *["--artifacts-destination", (root / "artifacts").as_uri(), "--host", host, "--port", str(port)],
        *(["--allowed-hosts", hosts] if (hosts := host_headers(host, name, allowed_hosts)) else []),
        *["--uvicorn-opts", shlex.join([*UVICORN_SHUTDOWN, *tls_options])],
    ]
    return command, f"{'https' if tls else 'http'}://{name}:{port}"


def serve(
    host: str = "127.0.0.1",
    port: int = 5002,
    db_port: int = 5433,
    folder: str = ".mlflow-server",
    cert: Path | None = None,
    key: Path | None = None,
    generate_cert: bool = False,
    allowed_hosts: str | None = None,
) -> None:
    """Start the database, then MLflow's server with its basic-auth app, until Ctrl-C or SIGTERM."""
    root = Path(folder).resolve()
    tls = tls_files(root, host, cert, key, generate_cert)  # (refused before anything is made)
    root.mkdir(parents=True, exist_ok=True)
    admin_password, first_start = secret(root / "admin-password")
    write_private(
        root / "basic_auth.ini",
        AUTH_CONFIG.format(database=database_uri(db_port, DATABASES["auth"]), admin=ADMIN, auth_cache_s=AUTH_CACHE_S),
    )
    stop_database = start_database(root, db_port)
    try:  # from here on, whatever fails stops the database it started
        (root / "artifacts").mkdir(exist_ok=True)
        command, url = mlflow_command(root, host, port, db_port, tls, allowed_hosts)
        (root / "server.json").write_text(json.dumps({"url": url, "cert": str(tls[0]) if tls else None}) + "\n")
        print(f"MLflow server on PostgreSQL, users and passwords required: MLFLOW_TRACKING_URI={url}")
        if tls:
            print(f"Clients trust its certificate with MLFLOW_TRACKING_SERVER_CERT_PATH={tls[0]}")
        if first_start:
            print(f"Admin user '{ADMIN}', password (shown once, kept in {root / 'admin-password'}): {admin_password}")
        print(f"Search storage (tune.yaml): {database_uri(db_port, DATABASES['study'])} (password: {root / 'pgpass'})")
        sys.stdout.flush()
        env = environment(
            MLFLOW_AUTH_CONFIG_PATH=str(root / "basic_auth.ini"),
            MLFLOW_AUTH_ADMIN_PASSWORD=admin_password,  # creates the admin on first start only
            MLFLOW_FLASK_SERVER_SECRET_KEY=secret(root / "flask-secret-key")[0],  # signs the UI's CSRF tokens
            PGPASSFILE=str(root / "pgpass"),
            **WITHOUT_GENAI_JOBS,
        )
        server = subprocess.Popen(command, env=env)
        signal.signal(signal.SIGTERM, lambda *_: server.terminate())
        try:
            server.wait()
        except KeyboardInterrupt:
            server.terminate()
            server.wait()
    finally:
        subprocess.run(stop_database, capture_output=True, check=False)


AUTH_CONFIG = """[mlflow]
default_permission = READ
database_uri = {database}
admin_username = {admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = {auth_cache_s}
"""
