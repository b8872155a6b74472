#!/usr/bin/env bash
# Build the LLM Twin images with the names and tag the DAG factory and the chart use.
# The registry and tag come from one place, configs/execution.yaml (images.registry / images.tag);
# TWIN_IMAGE_REGISTRY / TWIN_IMAGE_TAG override them, as they do for the factory.
#
#   images/build.sh                 # all four images
#   images/build.sh twin-core airflow
#   PUSH=1 images/build.sh          # and push them
#   BUILDER="docker buildx build --platform linux/amd64 --load" images/build.sh
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 images/build.sh twin-serving   # a GPU predictor
#     (torch's CUDA build instead of the CPU one in twin-core / twin-serving; twin-trainer has CUDA already)
set -euo pipefail
cd "$(dirname "$0")/.."

read_exec() {  # read_exec KEY -> value of images.KEY in configs/execution.yaml
  awk -v key="$1" '
    /^images:/ {inside=1; next}
    inside && /^[^ #]/ {inside=0}
    inside && $1 == key":" {v=$2; gsub(/["'\'']/, "", v); print v; exit}
  ' configs/execution.yaml
}

REGISTRY="${TWIN_IMAGE_REGISTRY:-$(read_exec registry)}"
TAG="${TWIN_IMAGE_TAG:-$(read_exec tag)}"
REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
BUILDER="${BUILDER:-docker build}"
ALL=(twin-core twin-serving airflow twin-trainer)
[ -n "$REGISTRY" ] && [ -n "$TAG" ] || { echo "cannot read images.registry/tag from configs/execution.yaml" >&2; exit 2; }

for name in "${@:-${ALL[@]}}"; do
  [ -f "images/$name/Dockerfile" ] || { echo "unknown image $name (one of: ${ALL[*]})" >&2; exit 2; }
  ref="$REGISTRY/$name:$TAG"
  echo ">>> $ref"
  $BUILDER -f "images/$name/Dockerfile" -t "$ref" \
    --build-arg VERSION="$TAG" --build-arg REVISION="$REVISION" \
    ${TORCH_INDEX_URL:+--build-arg TORCH_INDEX_URL="$TORCH_INDEX_URL"} .
  if [ "${PUSH:-0}" = "1" ]; then docker push "$ref"; fi
done
