#!/usr/bin/env bash
# CI: install the Google Cloud CLI (with the GKE auth plugin and kubectl) and helm from their apt
# repositories, on the Debian/Ubuntu CircleCI image. Versions are pinned by the variables below.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-3.19.0}"

sudo apt-get update -qq
sudo apt-get install -y -qq --no-install-recommends apt-transport-https ca-certificates curl gnupg >/dev/null

curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg \
  | sudo gpg --dearmor --yes -o /usr/share/keyrings/cloud.google.gpg
echo "deb [signed-by=/usr/share/keyrings/cloud.google.gpg] https://packages.cloud.google.com/apt cloud-sdk main" \
  | sudo tee /etc/apt/sources.list.d/google-cloud-sdk.list >/dev/null
sudo apt-get update -qq
sudo apt-get install -y -qq --no-install-recommends \
  google-cloud-cli google-cloud-cli-gke-gcloud-auth-plugin kubectl >/dev/null

curl -fsSL "https://get.helm.sh/helm-v${HELM_VERSION}-linux-amd64.tar.gz" -o /tmp/helm.tgz
tar -xzf /tmp/helm.tgz -C /tmp linux-amd64/helm
sudo install -m 0755 /tmp/linux-amd64/helm /usr/local/bin/helm

gcloud --version | head -1
helm version --short
