#!/usr/bin/env bash
# Creates the Secrets the manifests reference, with random passwords generated here (never in git).
# Object storage: pass your S3-compatible endpoint and keys in the environment:
#   S3_ENDPOINT_URL=https://s3.example.com S3_ACCESS_KEY_ID=... S3_SECRET_ACCESS_KEY=... infra/k8s/create-secrets.sh
# The MLflow client user (the Ray jobs' identity) is registered on the server once it runs:
#   infra/k8s/create-mlflow-user.sh
set -euo pipefail
ns=lstm-pipeline
: "${S3_ENDPOINT_URL:?set S3_ENDPOINT_URL (and S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY)}"
: "${S3_ACCESS_KEY_ID:?set S3_ACCESS_KEY_ID}"
: "${S3_SECRET_ACCESS_KEY:?set S3_SECRET_ACCESS_KEY}"
rand() { openssl rand -hex 24; }
pg_user=mlflow
pg_password=$(rand)
db_uri="postgresql://${pg_user}:${pg_password}@postgres.${ns}.svc.cluster.local:5432/mlflow"
auth_ini=$(printf '[mlflow]\ndefault_permission = READ\ndatabase_uri = %s\nadmin_username = admin\n' "$db_uri")
apply() { kubectl -n "$ns" create secret generic "$@" --dry-run=client -o yaml | kubectl apply -f -; }

apply lstm-pipeline-ray-token --from-literal=auth_token="$(rand)"
apply lstm-pipeline-postgres --from-literal=username="$pg_user" --from-literal=password="$pg_password"
apply lstm-pipeline-mlflow-server \
  --from-literal=backend_store_uri="$db_uri" \
  --from-literal=basic_auth_ini="$auth_ini" \
  --from-literal=admin_username=admin \
  --from-literal=admin_password="$(rand)" \
  --from-literal=flask_secret_key="$(rand)"
apply lstm-pipeline-mlflow-client --from-literal=username=lstm-pipeline --from-literal=password="$(rand)"
apply lstm-pipeline-s3 \
  --from-literal=endpoint_url="$S3_ENDPOINT_URL" \
  --from-literal=access_key_id="$S3_ACCESS_KEY_ID" \
  --from-literal=secret_access_key="$S3_SECRET_ACCESS_KEY"
echo "secrets created in namespace $ns"
