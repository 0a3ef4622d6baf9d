#!/usr/bin/env bash
# CI: authenticate to Google Cloud, without ever printing a secret.
#
# Preferred: Workload Identity Federation with CircleCI's OIDC token (no long-lived key). Needs, in
# the job's context: GCP_PROJECT_NUMBER, GCP_WIP_ID (pool), GCP_WIP_PROVIDER_ID (provider) and
# GCP_SERVICE_ACCOUNT_EMAIL (the service account the pool may impersonate).
# Fallback: a service-account key (JSON) in the context variable GCLOUD_SERVICE_KEY.
# Always: GCP_PROJECT and GCP_REGION.
#
# Exports GOOGLE_APPLICATION_CREDENTIALS (for the Python clients, DVC and edge.py) through
# $BASH_ENV and configures docker for Artifact Registry.
set -euo pipefail
set +x

: "${GCP_PROJECT:?set GCP_PROJECT in the CircleCI context}"
: "${GCP_REGION:?set GCP_REGION in the CircleCI context}"
CRED_DIR="${HOME}/.gcp"
umask 077
mkdir -p "${CRED_DIR}"
CRED_FILE="${CRED_DIR}/credentials.json"

OIDC_TOKEN="${CIRCLE_OIDC_TOKEN_V2:-${CIRCLE_OIDC_TOKEN:-}}"
if [[ -n "${GCP_WIP_ID:-}" && -n "${OIDC_TOKEN}" ]]; then
  : "${GCP_PROJECT_NUMBER:?set GCP_PROJECT_NUMBER for Workload Identity Federation}"
  : "${GCP_WIP_PROVIDER_ID:?set GCP_WIP_PROVIDER_ID for Workload Identity Federation}"
  : "${GCP_SERVICE_ACCOUNT_EMAIL:?set GCP_SERVICE_ACCOUNT_EMAIL for Workload Identity Federation}"
  printf '%s' "${OIDC_TOKEN}" > "${CRED_DIR}/oidc-token"
  gcloud iam workload-identity-pools create-cred-config \
    "projects/${GCP_PROJECT_NUMBER}/locations/global/workloadIdentityPools/${GCP_WIP_ID}/providers/${GCP_WIP_PROVIDER_ID}" \
    --service-account="${GCP_SERVICE_ACCOUNT_EMAIL}" \
    --credential-source-file="${CRED_DIR}/oidc-token" \
    --output-file="${CRED_FILE}" >/dev/null
  gcloud auth login --cred-file="${CRED_FILE}" --quiet >/dev/null
  echo "authenticated with Workload Identity Federation (OIDC) as ${GCP_SERVICE_ACCOUNT_EMAIL}"
elif [[ -n "${GCLOUD_SERVICE_KEY:-}" ]]; then
  printf '%s' "${GCLOUD_SERVICE_KEY}" > "${CRED_FILE}"
  gcloud auth activate-service-account --key-file="${CRED_FILE}" --quiet >/dev/null
  echo "authenticated with the service-account key from the context"
else
  echo "no credentials: set up Workload Identity Federation (GCP_WIP_ID, ...) or GCLOUD_SERVICE_KEY in the context" >&2
  exit 2
fi

echo "export GOOGLE_APPLICATION_CREDENTIALS='${CRED_FILE}'" >> "${BASH_ENV}"
echo "export GOOGLE_CLOUD_PROJECT='${GCP_PROJECT}'" >> "${BASH_ENV}"
gcloud config set project "${GCP_PROJECT}" --quiet >/dev/null
gcloud auth configure-docker "${GCP_REGION}-docker.pkg.dev" --quiet >/dev/null
