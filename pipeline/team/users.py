"""The team server's users (`python -m pipeline server user add|remove|list`), through MLflow's auth client.

Run on the server's machine by whoever started it: the admin's password is read from the server
folder's `admin-password`, the address (and certificate) from its `server.json`.  A user's
permission (read, edit or manage) holds on every experiment and registered model, present and
future: it is a role of that name, granting it on `*` (MLflow's role-based permissions); a user
without one reads everything (the auth app's default permission) and changes nothing but what they
create.  A new user's password is generated and shown once.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from pipeline import PipelineError, one_line
from pipeline.adapters import mlflow_auth

PERMISSIONS = ("read", "edit", "manage")
RESOURCES = ("experiment", "registered_model")  # what a role's permission covers, every one of each
WORKSPACE = "default"  # where grants live when MLflow's workspaces are off
ADMIN = "admin"  # the MLflow user that manages the others


def manage(folder: Path, user_action: str, name: str | None = None, permission: str | None = None) -> None:
    """Add, remove or list the users of the server started in `folder`, as its admin."""
    client = admin_client(folder)
    try:
        if user_action == "add":
            password = secrets.token_urlsafe(18)
            client.create_user(name, password)
            client.assign_role(name, role(client, permission).id)
            print(f"user {name} ({permission}) added; password (shown once): {password}")
        elif user_action == "remove":
            client.delete_user(name)
            print(f"user {name} removed")
        else:
            for user in sorted(mlflow_auth.list_users(client.tracking_uri), key=lambda user: user["username"]):
                roles = [r["name"] for r in user["roles"] if r["name"] in PERMISSIONS]
                print(f"{user['username']:20} {'admin' if user['is_admin'] else ', '.join(roles) or 'read'}")
    except Exception as error:  # noqa: BLE001 (MlflowException, or requests' connection errors)
        raise PipelineError(f"MLflow server {client.tracking_uri}: {one_line(error)}") from None


def admin_client(folder: Path):
    """MLflow's auth client on the server in `folder`, as its admin."""
    import mlflow.server  # the auth app's client, public through get_app_client

    info, password = folder / "server.json", folder / "admin-password"
    if not (info.exists() and password.exists()):
        raise PipelineError(f"{folder}: no server was started there (python -m pipeline server --dir {folder})")
    server = json.loads(info.read_text())
    os.environ |= {"MLFLOW_TRACKING_USERNAME": ADMIN, "MLFLOW_TRACKING_PASSWORD": password.read_text().strip()}
    if server["cert"]:
        os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"] = server["cert"]
    return mlflow.server.get_app_client("basic-auth", tracking_uri=server["url"])


def role(client, permission: str):
    """The role named `permission`, granting it on every experiment and registered model (made if missing)."""
    existing = {r.name: r for r in client.list_roles(WORKSPACE)}
    if permission in existing:
        return existing[permission]
    made = client.create_role(WORKSPACE, permission, f"{permission} on every experiment and registered model")
    for resource in RESOURCES:
        client.add_role_permission(made.id, resource, "*", permission.upper())
    return made
