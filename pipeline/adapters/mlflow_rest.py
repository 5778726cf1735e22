"""One request to an MLflow server with the client's own credentials, outside MlflowClient.

MLflow's public client does not serve here: its requests retry for minutes on a server that is
down (MLFLOW_HTTP_REQUEST_MAX_RETRIES would change every request of the stage, not just the first),
and it raises on a refusal instead of giving the status to read.  So MLflow's credential lookup
(`mlflow.utils.credentials`: MLFLOW_TRACKING_USERNAME / _PASSWORD, ~/.mlflow/credentials, the
server's certificate) and its REST helper (`mlflow.utils.rest_utils`) are used here and nowhere else.
"""

from __future__ import annotations

from typing import Any

import requests
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request, http_request_safe


def request(uri: str, endpoint: str, method: str, **kwargs: Any) -> requests.Response:
    """`method` `endpoint` of the server at `uri`, as the client's user, MLflow's REST options in `kwargs`
    (max_retries, timeout, raise_on_status, params); MlflowException when the server cannot be reached."""
    return http_request(get_default_host_creds(uri), endpoint, method, **kwargs)


def checked_request(uri: str, endpoint: str, method: str, **kwargs: Any) -> requests.Response:
    """As `request`, raising MlflowException with the server's message on any status but 200."""
    return http_request_safe(get_default_host_creds(uri), endpoint, method, **kwargs)


def username(uri: str) -> str | None:
    """The user the client authenticates to `uri` as, if any."""
    return get_default_host_creds(uri).username
