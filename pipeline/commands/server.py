"""`python -m pipeline server`: a shared MLflow tracking server on PostgreSQL, serving the artifacts.

Keeps a PostgreSQL cluster in `<dir>/postgres` (created on first start; as the `postgres` system
user when run as root, which PostgreSQL refuses to run as), starts it on 127.0.0.1:`db_port`,
creates the `mlflow` database, and runs `mlflow server` on it with `--artifacts-destination
<dir>/artifacts`, so clients store artifacts through the server (`mlflow-artifacts:` URIs) and need
no access to its disk.  Clients set `MLFLOW_TRACKING_URI=http://<host>:<port>`; everything else is
unchanged.  It also creates the `optuna` database, a search's study storage (tune.yaml `storage`):
a database of its own, since Optuna and MLflow both keep alembic's version table under its default name.  Ctrl-C (or SIGTERM) stops the server and then the database.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from pipeline import PipelineError, environment
from pipeline.commands import add_address

DATABASE = USER = "mlflow"
STUDY_DATABASE = "optuna"


def postgres_tool(name: str) -> str:
    """The PostgreSQL program `name` (initdb, pg_ctl, ...): on PATH, or where Debian installs it."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise PipelineError(f"PostgreSQL's {name} not found: install PostgreSQL (apt-get install postgresql)")
    return found


def _cluster_owner(folder: Path) -> list[str]:
    """The prefix that runs a command as the cluster's owner: as root, the `postgres` user, who is given `folder`."""
    if os.geteuid() != 0:
        return []
    shutil.chown(folder, "postgres", "postgres")
    return ["runuser", "-u", "postgres", "--"]


def start_database(folder: Path, port: int) -> list[str]:
    """Create (first time) and start the cluster in `folder`; return the command that stops it."""
    data = folder / "postgres"
    data.mkdir(parents=True, exist_ok=True)
    owner = _cluster_owner(data)
    if not (data / "PG_VERSION").exists():
        initdb = [postgres_tool("initdb"), "-D", str(data), "-U", USER, "--auth=trust", "--encoding=UTF8"]
        subprocess.run([*owner, *initdb], check=True, capture_output=True)
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"  # this machine only, socket in the folder
    pg_ctl = [postgres_tool("pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-o", options, "-w"]
    started = subprocess.run([*owner, *pg_ctl, "start"], capture_output=True, text=True, check=False)
    if started.returncode != 0:
        raise PipelineError(f"PostgreSQL did not start on port {port}: see {data / 'server.log'}")
    for database in (DATABASE, STUDY_DATABASE):
        exists = subprocess.run(
            [
                postgres_tool("psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                USER,
                "-d",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{database}'",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not exists:
            subprocess.run(
                [postgres_tool("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, database], check=True
            )
    return [*owner, *pg_ctl, "stop", "-m", "fast"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_address(parser, 5002)
    parser.add_argument("--db-port", type=int, default=5433, help="PostgreSQL's (default: %(default)s)")
    parser.add_argument(
        "--dir", dest="folder", default=".mlflow-server", help="database and artifacts (default: %(default)s)"
    )


def main(host: str = "127.0.0.1", port: int = 5002, db_port: int = 5433, folder: str = ".mlflow-server") -> None:
    root = Path(folder).resolve()
    stop_database = start_database(root, db_port)
    (root / "artifacts").mkdir(exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"postgresql+psycopg2://{USER}@127.0.0.1:{db_port}/{DATABASE}",
        "--artifacts-destination",
        (root / "artifacts").as_uri(),
        "--host",
        host,
        "--port",
        str(port),
    ]
    print(f"MLflow server on PostgreSQL: MLFLOW_TRACKING_URI=http://{host}:{port}", flush=True)
    print(f"Search storage (tune.yaml): postgresql+psycopg2://{USER}@{host}:{db_port}/{STUDY_DATABASE}", flush=True)
    env = environment()
    server = subprocess.Popen(command, env=env)
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())
    try:
        server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait()
    finally:
        subprocess.run(stop_database, capture_output=True, check=False)
