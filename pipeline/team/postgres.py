"""The team server's PostgreSQL cluster: created once, passwords (scram-sha-256) on every connection,
listening on 127.0.0.1 only, with three databases: `mlflow` (runs and models), `mlflow_auth` (users
and permissions: never the tracking database, mlflow#18373) and `optuna` (a search's study storage,
tune.yaml `storage`).  As root, it runs as the `postgres` system user, as PostgreSQL requires.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from pipeline import PipelineError, environment
from pipeline.team.private_files import secret, write_private

USER = "mlflow"  # the database user (PostgreSQL's superuser of the cluster)
DATABASES = {"tracking": "mlflow", "auth": "mlflow_auth", "study": "optuna"}
HBA_LINES = [("local", ""), ("host", "127.0.0.1/32"), ("host", "::1/128")]  # every way in: password (scram)


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
    """Create (first time) and start the cluster in `folder`, passwords required on every connection,
    with its three databases; return the command that stops it.  A cluster made by an earlier
    version (trust, no password) is given the password and password authentication."""
    data = folder / "postgres"
    data.mkdir(parents=True, exist_ok=True)
    owner = _cluster_owner(data)
    password, new = secret(folder / "postgres-password")
    write_private(folder / "pgpass", f"127.0.0.1:{port}:*:{USER}:{password}\n")
    if not (data / "PG_VERSION").exists():
        password_file = folder / "initdb-password"  # the owner's to read, for the moment initdb runs
        write_private(password_file, password)
        if owner:
            shutil.chown(password_file, "postgres", "postgres")
        initdb = [postgres_tool("initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256", "--encoding=UTF8"]
        try:
            subprocess.run([*owner, *initdb, f"--pwfile={password_file}"], check=True, capture_output=True)
        finally:
            password_file.unlink()
    elif new:  # an earlier version's cluster: trust for everyone; set the password while it is stopped
        single = [postgres_tool("postgres"), "--single", "-D", str(data), "postgres"]
        subprocess.run(
            [*owner, *single],
            input=f"ALTER ROLE {USER} PASSWORD '{password}';\n",
            text=True,
            check=True,
            capture_output=True,
        )
    hba = data / "pg_hba.conf"  # passwords on every connection: the socket, IPv4 and IPv6 loopback
    hba.write_text("".join(f"{kind:6} all all {address:13} scram-sha-256\n" for kind, address in HBA_LINES))
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c password_encryption=scram-sha-256"
    pg_ctl = [postgres_tool("pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-o", options, "-w"]
    started = subprocess.run([*owner, *pg_ctl, "start"], capture_output=True, text=True, check=False)
    if started.returncode != 0:
        raise PipelineError(f"PostgreSQL did not start on port {port}: see {data / 'server.log'}")
    stop = [*owner, *pg_ctl, "stop", "-m", "fast"]
    try:
        _create_databases(folder, port)
    except BaseException:
        subprocess.run(stop, capture_output=True, check=False)
        raise
    return stop


def _create_databases(folder: Path, port: int) -> None:
    """The cluster's three databases, those missing created."""
    client = {"env": environment(PGPASSFILE=str(folder / "pgpass")), "capture_output": True, "text": True}
    address = ["-h", "127.0.0.1", "-p", str(port), "-U", USER]
    for database in DATABASES.values():
        query = f"SELECT 1 FROM pg_database WHERE datname = '{database}'"
        listed = subprocess.run(
            [postgres_tool("psql"), *address, "-d", "postgres", "-tAc", query], **client, check=True
        )
        if not listed.stdout.strip():
            subprocess.run([postgres_tool("createdb"), *address, database], **client, check=True)


def database_uri(port: int, name: str) -> str:
    """SQLAlchemy's URL of one of the cluster's databases, without the password (libpq reads `pgpass`)."""
    return f"postgresql+psycopg2://{USER}@127.0.0.1:{port}/{name}"
