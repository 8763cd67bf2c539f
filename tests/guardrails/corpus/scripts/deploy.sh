#!/usr/bin/env bash
set -euo pipefail

# Deploy the orders service to the staging cluster.
export AWS_ACCESS_KEY_ID=AKIACSQL5YKAWMFQMOXG
export AWS_SECRET_ACCESS_KEY=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
export AWS_DEFAULT_REGION=eu-west-1
export KUBECONFIG="$HOME/.kube/staging"

IMAGE="registry.acme.dev/orders:$(git rev-parse --short HEAD)"
docker build -t "$IMAGE" .
docker push "$IMAGE"

kubectl -n orders set image deployment/orders orders="$IMAGE"
kubectl -n orders rollout status deployment/orders --timeout=300s

curl -sS -X POST -H 'Content-type: application/json' \
  --data "{\"text\":\"orders deployed: $IMAGE\"}" \
  "https://hooks.slack.com/services/T02ACME/B05DEPLOY/$SLACK_WEBHOOK_SECRET"

SLACK_BOT_TOKEN=xoxb-142793513785-9121164229995-0KwoVc2UVQ0p0QfeKTK0FPev ./notify.sh "#deploys"
echo "done in ${SECONDS}s"
