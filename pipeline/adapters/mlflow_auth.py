"""The MLflow server's own defaults and auth routes, for the team server (pipeline.team).

MLflow's public API does not serve: the basic-auth client (`mlflow.server.get_app_client`) can add,
delete and grant users but not list them, so the auth app's users/list route is read from
`mlflow.server.auth.routes`; and `mlflow server --allowed-hosts` replaces MLflow's default host
patterns rather than adding to them, so extending them needs `mlflow.server.security_utils`' list.
"""

from __future__ import annotations

from pipeline.adapters import mlflow_rest


def list_users(uri: str) -> list[dict]:
    """The server's users, each with `username`, `is_admin` and `roles` (the auth app's users/list)."""
    from mlflow.server.auth.routes import LIST_USERS  # (mlflow.server imports its web apps: only when needed)

    return mlflow_rest.checked_request(uri, LIST_USERS, "GET").json()["users"]


def default_allowed_hosts() -> list[str]:
    """MLflow's default Host-header patterns (localhost and private addresses, any port)."""
    from mlflow.server.security_utils import get_default_allowed_hosts

    return get_default_allowed_hosts()
