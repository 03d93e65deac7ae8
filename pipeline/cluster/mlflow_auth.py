"""`cluster up --auth basic`: the local MLflow server behind MLflow's basic-auth app.

The admin's password is generated, kept in the state dir in a file only its owner can read
(`mlflow_password`, mode 0600), and never printed: `cluster up` prints a shell line that reads it.
The server reads its settings from `mlflow_auth.ini` (also 0600) through MLFLOW_AUTH_CONFIG_PATH;
users other than the admin get no permission unless the admin grants it (MLflow's REST API).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Auth = Literal["none", "basic"]
ADMIN = "admin"


@dataclass(frozen=True)
class AuthFiles:
    config: Path
    password: Path
    flask_key: Path  # the server's CSRF secret (MLFLOW_FLASK_SERVER_SECRET_KEY)

    def server_env(self) -> dict[str, str]:
        key = self.flask_key.read_text()
        return {"MLFLOW_AUTH_CONFIG_PATH": str(self.config), "MLFLOW_FLASK_SERVER_SECRET_KEY": key}


def write_auth(state_dir: Path) -> AuthFiles:
    """The basic-auth app's config and the admin's password, both readable by their owner only."""
    password = state_dir / "mlflow_password"
    if not password.exists():  # a restarted cluster keeps its admin (MLflow reads the password once)
        _private(password, secrets.token_urlsafe(24))
    flask_key = state_dir / "mlflow_flask_key"
    if not flask_key.exists():
        _private(flask_key, secrets.token_hex(32))
    config = state_dir / "mlflow_auth.ini"
    _private(
        config,
        "\n".join(
            [
                "[mlflow]",
                "default_permission = NO_PERMISSIONS",
                f"database_uri = sqlite:///{state_dir / 'mlflow_auth.db'}",
                f"admin_username = {ADMIN}",
                f"admin_password = {password.read_text().strip()}",
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
                "",
            ]
        ),
    )
    return AuthFiles(config=config, password=password, flask_key=flask_key)


def _private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
