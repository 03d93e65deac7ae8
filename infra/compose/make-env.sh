#!/usr/bin/env bash
# Writes infra/compose/.env with random credentials (kept out of git), unless it exists.
set -euo pipefail
env_file="$(dirname "$0")/.env"
if [[ -e "$env_file" ]]; then echo "$env_file exists; not overwriting"; exit 0; fi
rand() { openssl rand -hex 24; }
umask 077
cat > "$env_file" <<ENV
POSTGRES_USER=mlflow
POSTGRES_PASSWORD=$(rand)
MINIO_ROOT_USER=mlflow-$(openssl rand -hex 4)
MINIO_ROOT_PASSWORD=$(rand)
MLFLOW_ADMIN_PASSWORD=$(rand)
MLFLOW_FLASK_SERVER_SECRET_KEY=$(rand)
ENV
echo "wrote $env_file (mode 600); MLflow login: admin / MLFLOW_ADMIN_PASSWORD"
