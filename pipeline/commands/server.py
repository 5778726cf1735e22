"""`python -m pipeline server`: a team's MLflow tracking server on PostgreSQL, with passwords
(pipeline.team.mlflow_server), and `server user add|remove|list` (pipeline.team.users)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.commands import add_address
from pipeline.team import mlflow_server, users
from pipeline.team.users import PERMISSIONS


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
    add_user_arguments(parser)


def add_user_arguments(parser: argparse.ArgumentParser) -> None:
    """`user add NAME --permission P`, `user remove NAME`, `user list`, under `server`."""
    commands = parser.add_subparsers(dest="action", metavar="user")
    user = commands.add_parser("user", help="add, remove or list the server's users (run where the server runs)")
    actions = user.add_subparsers(dest="user_action", required=True, metavar="add|remove|list")
    add = actions.add_parser("add", help="a new user, with a generated password (shown once)")
    add.add_argument("name")
    add.add_argument("--permission", choices=PERMISSIONS, required=True, help="on every experiment and model")
    actions.add_parser("remove", help="delete a user").add_argument("name")
    actions.add_parser("list", help="every user and their permission")


def main(
    folder: str = ".mlflow-server",
    action: str | None = None,
    user_action: str | None = None,
    name=None,
    permission=None,
    **server,
) -> None:
    if action:
        return users.manage(Path(folder).resolve(), user_action, name, permission)
    return mlflow_server.serve(folder=folder, **server)
