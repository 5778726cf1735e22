"""`python -m pipeline server`: a team's MLflow tracking server on PostgreSQL, with passwords.

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

import argparse
import glob
import ipaddress
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from pipeline import PipelineError, environment
from pipeline.commands import add_address, users

USER = "mlflow"  # the database user (PostgreSQL's superuser of the cluster)
DATABASES = {"tracking": "mlflow", "auth": "mlflow_auth", "study": "optuna"}
ADMIN = "admin"  # the MLflow user that manages the others
HBA_LINES = [("local", ""), ("host", "127.0.0.1/32"), ("host", "::1/128")]  # every way in: password (scram)


def postgres_tool(name: str) -> str:
    """The PostgreSQL program `name` (initdb, pg_ctl, ...): on PATH, or where Debian installs it."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise PipelineError(f"PostgreSQL's {name} not found: install PostgreSQL (apt-get install postgresql)")
    return found


def secret(path: Path) -> tuple[str, bool]:
    """The secret kept in `path` (0600), generated there first if missing; and whether it was."""
    if path.exists():
        return path.read_text().strip(), False
    write_private(path, value := secrets.token_urlsafe(24))
    return value, True


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable and writable by its owner only, from the moment it exists."""
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(text)


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
    client = {"env": environment(PGPASSFILE=str(folder / "pgpass")), "capture_output": True, "text": True}
    address = ["-h", "127.0.0.1", "-p", str(port), "-U", USER]
    for database in DATABASES.values():
        query = f"SELECT 1 FROM pg_database WHERE datname = '{database}'"
        listed = subprocess.run(
            [postgres_tool("psql"), *address, "-d", "postgres", "-tAc", query], **client, check=True
        )
        if not listed.stdout.strip():
            subprocess.run([postgres_tool("createdb"), *address, database], **client, check=True)
    return [*owner, *pg_ctl, "stop", "-m", "fast"]


def database_uri(port: int, name: str) -> str:
    """SQLAlchemy's URL of one of the cluster's databases, without the password (libpq reads `pgpass`)."""
    return f"postgresql+psycopg2://{USER}@127.0.0.1:{port}/{name}"


def self_signed(folder: Path, host: str) -> tuple[Path, Path]:
    """A self-signed certificate and key for this machine's names and `host`, generated once into
    `folder`/tls (the key 0600); clients trust it with MLFLOW_TRACKING_SERVER_CERT_PATH."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert, key = folder / "tls" / "server.crt", folder / "tls" / "server.key"
    if cert.exists() and key.exists():
        return cert, key
    cert.parent.mkdir(parents=True, exist_ok=True)
    names, addresses = {socket.gethostname(), socket.getfqdn(), "localhost"}, {"127.0.0.1", "::1"}
    if not _is_ip(host):
        names.add(host)
    elif not ipaddress.ip_address(host).is_unspecified:
        addresses.add(host)
    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, socket.getfqdn())])
    now = datetime.datetime.now(datetime.UTC)
    alternatives = [*map(x509.DNSName, sorted(names)), *(x509.IPAddress(ipaddress.ip_address(a)) for a in addresses)]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(private, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = private.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_private(key, key_pem.decode())
    cert.write_bytes(certificate.public_bytes(pem))
    return cert, key


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback if _is_ip(host) else host == "localhost"


def tls_files(folder: Path, host: str, cert: Path | None, key: Path | None, generate: bool) -> tuple[Path, Path] | None:
    """The certificate and key to serve with, or None on a loopback address without them; beyond
    this machine without TLS, refused."""
    if generate:
        return self_signed(folder, host)
    if bool(cert) != bool(key):
        raise PipelineError("--cert and --key go together: the certificate and its private key")
    if cert:
        for path in (cert, key):
            if not path.is_file():
                raise PipelineError(f"{path}: no such file")
        return cert.resolve(), key.resolve()
    if not is_loopback(host):
        raise PipelineError(
            f"--host {host} serves beyond this machine: that needs TLS, so that passwords never cross the "
            "network in clear (give --cert and --key, or --self-signed)"
        )
    return None


def host_headers(host: str, name: str, extra: str | None) -> str | None:
    """MLflow's --allowed-hosts: beyond loopback, its defaults (localhost, private addresses) and the
    name clients are told, with any port, and `extra`; None keeps MLflow's defaults."""
    from mlflow.server.security_utils import get_default_allowed_hosts

    if is_loopback(host) and not extra:
        return None
    return ",".join([*get_default_allowed_hosts(), name, f"{name}:*", *(extra.split(",") if extra else [])])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_address(parser, 5002)
    parser.add_argument("--db-port", type=int, default=5433, help="PostgreSQL's (default: %(default)s)")
    parser.add_argument(
        "--dir", dest="folder", default=".mlflow-server", help="database, artifacts, secrets (default: %(default)s)"
    )
    parser.add_argument("--cert", type=Path, help="TLS certificate (PEM), with --key: serve HTTPS")
    parser.add_argument("--key", type=Path, help="TLS private key (PEM) of --cert")
    parser.add_argument(
        "--self-signed", dest="generate_cert", action="store_true", help="serve HTTPS with a generated certificate"
    )
    parser.add_argument("--allowed-hosts", help="Host headers MLflow accepts beyond localhost and private addresses")
    users.add_arguments(parser)


def main(
    host: str = "127.0.0.1",
    port: int = 5002,
    db_port: int = 5433,
    folder: str = ".mlflow-server",
    cert: Path | None = None,
    key: Path | None = None,
    generate_cert: bool = False,
    allowed_hosts: str | None = None,
    **user_command,
) -> None:
    root = Path(folder).resolve()
    if user_command.get("action"):
        return users.main(root, **user_command)
    tls = tls_files(root, host, cert, key, generate_cert)  # (refused before anything is made)
    root.mkdir(parents=True, exist_ok=True)
    admin_password, first_start = secret(root / "admin-password")
    write_private(
        root / "basic_auth.ini", AUTH_CONFIG.format(database=database_uri(db_port, DATABASES["auth"]), admin=ADMIN)
    )
    stop_database = start_database(root, db_port)
    (root / "artifacts").mkdir(exist_ok=True)
    name = socket.gethostname() if _is_ip(host) and ipaddress.ip_address(host).is_unspecified else host
    url = f"{'https' if tls else 'http'}://{name}:{port}"
    command = [
        *[sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth"],
        *["--backend-store-uri", database_uri(db_port, DATABASES["tracking"])],
        *["--artifacts-destination", (root / "artifacts").as_uri(), "--host", host, "--port", str(port)],
        *(["--allowed-hosts", hosts] if (hosts := host_headers(host, name, allowed_hosts)) else []),
        *(["--uvicorn-opts", shlex.join(["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])])] if tls else []),
    ]
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
    return None


AUTH_CONFIG = """[mlflow]
default_permission = READ
database_uri = {database}
admin_username = {admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"""
