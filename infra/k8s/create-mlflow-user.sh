#!/usr/bin/env bash
# Registers the Ray jobs' MLflow user (Secret lstm-pipeline-mlflow-client) on the running server
# (it owns the experiments it creates), through a port-forward and MLflow's basic-auth client. Run it from
# the project's venv (it needs mlflow) after `kubectl apply -f infra/k8s/mlflow.yaml`.
set -euo pipefail
ns=lstm-pipeline
secret() { kubectl -n "$ns" get secret "$1" -o jsonpath="{.data.$2}" | base64 -d; }
kubectl -n "$ns" rollout status deployment/mlflow
kubectl -n "$ns" port-forward svc/mlflow 15000:5000 >/dev/null & pf=$!
trap 'kill $pf' EXIT
sleep 2
MLFLOW_TRACKING_USERNAME=$(secret lstm-pipeline-mlflow-server admin_username) \
MLFLOW_TRACKING_PASSWORD=$(secret lstm-pipeline-mlflow-server admin_password) \
CLIENT_USER=$(secret lstm-pipeline-mlflow-client username) \
CLIENT_PASSWORD=$(secret lstm-pipeline-mlflow-client password) \
python - <<'PY'
import os
from mlflow.server import get_app_client

auth = get_app_client("basic-auth", tracking_uri="http://127.0.0.1:15000")
auth.create_user(username=os.environ["CLIENT_USER"], password=os.environ["CLIENT_PASSWORD"])
print(f"created MLflow user {os.environ['CLIENT_USER']}")
PY
