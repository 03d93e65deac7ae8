"""Secrets never leave the process: redact them before anything is logged, tagged, saved or printed.

What counts as a secret:
  - the credentials of a URI: `user:password@` (the password may hold `@` or `/`), and a token used
    as the user (`https://ghp_...@github.com`, `https://dapi...@host`);
  - URI query values whose key names a credential (`?secret_key=`, `?token=`, `X-Amz-Signature`,
    Azure SAS `sig=`, `key=`, `pwd=`, `auth=`, `code=`) and fragments that carry values (`#access_token=`);
  - `Bearer`/`Basic`/`Token` authorization values, connection-string parts (`AccountKey=`,
    `SharedAccessSignature=`, `Password=`), `NAME=value` for a credential-named variable;
  - well-known token shapes (GitHub, Hugging Face, Databricks, GitLab, Slack, OpenAI-style keys);
  - config keys that name one (password, secret, token, api_key, access_key, credentials), and
    everything below such a key (e.g. the choices of a `tune.space` entry);
  - the values of credential environment variables set in this process (3 characters or more).
"""

from __future__ import annotations

import os
import re
from typing import Any

MASK = "***"
_SECRET_PARTS = ("password", "passwd", "secret", "credential", "signature", "private_key", "api_key", "access_key")
_SECRET_WORDS = {"token", "pwd", "apikey", "sig", "sas", "auth", "accountkey", "pat"}
_SECRET_QUERY_KEYS = {"key", "code", "pass", "session"}  # secrets only as a URI's query keys
SECRET_ENV = (
    "RAY_AUTH_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_KEY",
    "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_SAS_TOKEN",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_SECRET",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS_JSON",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "POSTGRES_PASSWORD",
    "MINIO_ROOT_PASSWORD",
)
_END = r"(?=[\s'\"<>,)\]}]|$)"
# scheme://user:password@host: the password runs to the token's last "@" (it may hold "@" and "/")
_USERINFO = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s'\"]*):[^\s'\"]+@(?=[^\s'\"@]*" + _END + ")")
_TOKEN_USER = re.compile(
    r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://)(?:[A-Za-z0-9_-]{20,}|(?:ghp|gho|ghs|ghu|github_pat|glpat|hf|dapi)[A-Za-z0-9_-]+)@"
)
_QUERY = re.compile(r"(?P<key>[?&;](?P<name>[^=&;#\s'\"]+)=)(?P<value>[^&;#\s'\"]+)")
_FRAGMENT = re.compile(r"(?P<head>://[^\s#'\"]*#)[^\s'\"]*=[^\s'\"]*")
_AUTH_HEADER = re.compile(r"\b(?P<head>(?:Bearer|Basic|Token)\s+)[A-Za-z0-9._~+/=-]{8,}")
_CONNECTION = re.compile(
    r"(?P<head>\b(?:AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd)=)[^;&\s'\"]+", re.IGNORECASE
)
_ASSIGNMENT = re.compile(r"(?P<head>\b(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*[=:]\s*)(?P<value>[^\s'\",;&]+)")
_TOKEN_SHAPES = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|hf_[A-Za-z0-9]{20,}|dapi[0-9a-f]{32}(?:-\d+)?"
    r"|glpat-[A-Za-z0-9_-]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,})\b"
)


def is_secret_key(key: str) -> bool:
    """Whether a (dotted) key names a credential: `tracking.password`, `secret_key`, `hf_token`,
    but not `tokenizer` or `max_tokens`."""
    last = key.lower().rsplit(".", 1)[-1].replace("-", "_")
    words = set(re.split(r"[^a-z0-9]+", last))
    return any(part in last for part in _SECRET_PARTS) or bool(words & _SECRET_WORDS)


def _env_secrets() -> list[str]:
    return sorted((v for k in SECRET_ENV if (v := os.environ.get(k, ""))), key=len, reverse=True)


def redact(text: str) -> str:
    """`text` with every secret it carries replaced by ***."""
    for value in _env_secrets():
        # long values wherever they appear; short ones only as a whole word (not inside other words);
        # one or two characters would mask every such word (NAME=value and keys still catch them)
        if len(value) < 3:
            continue
        pattern = re.escape(value) if len(value) >= 6 else rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])"
        text = re.sub(pattern, MASK, text)
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    text = _TOKEN_USER.sub(lambda m: f"{m['head']}{MASK}@", text)
    text = _QUERY.sub(lambda m: f"{m['key']}{MASK}" if _secret_query(m["name"]) else m[0], text)
    text = _FRAGMENT.sub(lambda m: f"{m['head']}{MASK}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m['head']}{MASK}", text)
    text = _CONNECTION.sub(lambda m: f"{m['head']}{MASK}", text)
    text = _ASSIGNMENT.sub(lambda m: f"{m['head']}{MASK}" if _masks(m) else m[0], text)
    text = _TOKEN_SHAPES.sub(MASK, text)
    return text


def _secret_query(name: str) -> bool:
    return is_secret_key(name) or name.lower() in _SECRET_QUERY_KEYS


def _masks(match: re.Match) -> bool:
    name, value = match["name"], match["value"]
    return value != MASK and (name.upper() in SECRET_ENV or is_secret_key(name))


def redact_value(key: str, value: Any) -> Any:
    """A config value under `key`: masked whole (any nesting) when the key names a secret."""
    if is_secret_key(key) and value not in (None, "", [], {}):
        return MASK
    if isinstance(value, dict | list):
        return redact_tree(value, key=key)
    return redact(value) if isinstance(value, str) else value


def redact_tree(data: Any, *, key: str = "") -> Any:
    """A config dict (any nesting) with secret-named keys masked with all below them, and secrets
    inside strings redacted."""
    if is_secret_key(key) and data not in (None, "", [], {}):
        return MASK
    if isinstance(data, dict):
        return {k: redact_tree(v, key=str(k)) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_tree(v, key=key) for v in data]
    return redact(data) if isinstance(data, str) else data


def has_secret(text: str) -> bool:
    return redact(text) != text
