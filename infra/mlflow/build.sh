#!/usr/bin/env bash
# Build (and with --push push) the MLflow server image, its base pinned by digest:
#
#   infra/mlflow/build.sh [--push] [--dry-run] [REGISTRY]
#
# REGISTRY    where the cluster pulls from (default ghcr.io/sealion-vl); the image is REGISTRY/sealion-vl-mlflow:TAG.
# TAG         (environment) default 3.17.2-1: the MLflow version and a build number, the tag the overlays use
#             (infra/overlays/*/kustomization.yaml, `images:`). A new Dockerfile gets a new build number.
# BASE_IMAGE  (environment) the base pinned by digest (python:3.11-slim@sha256:<64 hex>); by default the digest
#             python:3.11-slim has now, asked from the registry with `docker buildx imagetools inspect`.
# DOCKER      (environment) the client, default docker.
# --dry-run   print the commands instead of running them (needs BASE_IMAGE, as it asks no registry).
set -euo pipefail

cd "$(dirname "$0")"

PLACEHOLDER_DIGEST=sha256:0000000000000000000000000000000000000000000000000000000000000000
die() {
    printf 'infra/mlflow/build.sh: %s\n' "$*" >&2
    exit 1
}

push=0
dry_run=0
registry=ghcr.io/sealion-vl
while [ $# -gt 0 ]; do
    case $1 in
        --push) push=1 ;;
        --dry-run) dry_run=1 ;;
        -h | --help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
        -*) die "unknown option $1 (--help lists them)" ;;
        *) registry=${1%/} ;;
    esac
    shift
done
tag=${TAG:-3.17.2-1}
docker=${DOCKER:-docker}

base=${BASE_IMAGE:-}
if [ -z "$base" ]; then
    [ "$dry_run" = 0 ] || die "--dry-run needs BASE_IMAGE=python:3.11-slim@sha256:<digest>"
    digest=$("$docker" buildx imagetools inspect python:3.11-slim --format '{{.Manifest.Digest}}')
    base="python:3.11-slim@$digest"
fi
[[ $base != *@"$PLACEHOLDER_DIGEST" ]] || die "BASE_IMAGE is the placeholder digest: give the real one"
[[ $base =~ ^[^@[:space:]]+@sha256:[0-9a-f]{64}$ ]] || die "BASE_IMAGE '$base' is not pinned by digest"

image="$registry/sealion-vl-mlflow:$tag"
run() {
    if [ "$dry_run" = 1 ]; then echo "$*"; else echo "+ $*" >&2; "$@"; fi
}
run "$docker" build --build-arg "BASE_IMAGE=$base" -t "$image" .
if [ "$push" = 1 ]; then
    run "$docker" push "$image"
fi
echo "$image (from $base)" >&2
