"""Secrets never leave the process: redact them before anything is logged, tagged or printed.

What counts as a secret:
  - the user:password part of a URI (http://user:pw@host, postgresql://u:pw@db/mlflow, s3://KEY:SECRET@bucket);
  - URI query values whose key names a credential (?secret_key=..., ?token=..., ?X-Amz-Signature=...);
  - config keys that name one (password, secret, token, api_key, access_key, credentials);
  - the values of credential environment variables set in this process (RAY_AUTH_TOKEN, AWS_SECRET_ACCESS_KEY, ...).
"""

from __future__ import annotations

import os
import re
from typing import Any

MASK = "***"
_SECRET_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "credential",
    "signature",
    "private_key",
)
SECRET_ENV = (
    "RAY_AUTH_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCESS_KEY",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "POSTGRES_PASSWORD",
    "MINIO_ROOT_PASSWORD",
)
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@:\s]*):(?P<pw>[^/@\s]+)@")
_QUERY = re.compile(
    r"(?P<key>[?&;][^=&;\s]*(?:" + "|".join(_SECRET_WORDS) + r")[^=&;\s]*=)(?P<value>[^&;\s]+)", re.IGNORECASE
)


def is_secret_key(key: str) -> bool:
    last = key.lower().rsplit(".", 1)[-1]
    return any(word in last for word in _SECRET_WORDS)


def _env_secrets() -> list[str]:
    return [v for k in SECRET_ENV if len(v := os.environ.get(k, "")) >= 6]


def redact(text: str) -> str:
    """`text` with every secret it carries replaced by ***."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _QUERY.sub(lambda m: f"{m['key']}{MASK}", text)
    for value in _env_secrets():
        text = text.replace(value, MASK)
    return text


def redact_value(key: str, value: Any) -> Any:
    if is_secret_key(key) and value not in (None, ""):
        return MASK
    return redact(value) if isinstance(value, str) else value


def redact_tree(data: Any, *, key: str = "") -> Any:
    """A config dict (any nesting) with secret-named keys masked and secrets inside strings redacted."""
    if isinstance(data, dict):
        return {k: redact_tree(v, key=str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_tree(v, key=key) for v in data]
    return redact_value(key, data)


def has_secret(text: str) -> bool:
    return redact(text) != text
