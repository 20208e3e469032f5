#!/usr/bin/env bash
# Build the two images the pipeline's steps run in (docker/Dockerfile.gpu, docker/Dockerfile.cpu) from the
# repository root, and with --push push them:
#
#   BASE_IMAGE=python:3.11-slim@sha256:<digest> docker/build.sh [--push] [--dry-run] [--only gpu|cpu] \
#       [--build-arg KEY=VALUE ...] [[--registry] REGISTRY]
#
# REGISTRY   where the cluster pulls from (default ghcr.io/sealion-vl, components/common/images.py); images are
#            REGISTRY/sealion-vl-gpu:TAG and REGISTRY/sealion-vl-cpu:TAG (with --build-arg WITH_VLLM=1, whose
#            torch is vLLM's, the GPU image is REGISTRY/sealion-vl-gpu-vllm:TAG, so that it never replaces the other).
# TAG        (environment) the image tag; default `seavl image-tag`, the tag `seavl compile` writes.
# BASE_IMAGE, GPU_BASE_IMAGE, CPU_BASE_IMAGE
#            (environment) the base image pinned by digest (name:tag@sha256:<64 hex>); GPU_/CPU_ win over BASE_IMAGE,
#            which wins over the Dockerfile's ARG default. The all-zero placeholder digest is refused.
# DOCKER     (environment) the client, default docker (podman and `buildah bud` take the same arguments).
# --dry-run  print the commands instead of running them.
#
# TORCH_VERSION is read from the Makefile's TORCH_SPEC (the one pin; requirements.lock must pin the same) and
# IMAGE_TAG is the tag: neither (nor BASE_IMAGE) can be given with --build-arg.
set -euo pipefail

cd "$(dirname "$0")/.."

PLACEHOLDER_DIGEST=sha256:0000000000000000000000000000000000000000000000000000000000000000

die() {
    printf 'docker/build.sh: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"
    exit "${1:-0}"
}

set_registry() {
    [ "$registry_given" = 0 ] || die "one REGISTRY only (got '$registry' and '$1')"
    registry=${1%/}
    registry_given=1
}

push=0
dry_run=0
registry=ghcr.io/sealion-vl
registry_given=0
kinds=(gpu cpu)
extra=()
gpu_suffix=
while [ $# -gt 0 ]; do
    case $1 in
        --push) push=1 ;;
        --dry-run) dry_run=1 ;;
        --only)
            [ $# -ge 2 ] || die "--only needs gpu or cpu"
            case $2 in gpu | cpu) kinds=("$2") ;; *) die "--only takes gpu or cpu, not '$2'" ;; esac
            shift ;;
        --build-arg)
            [ $# -ge 2 ] || die "--build-arg needs KEY=VALUE"
            case $2 in
                IMAGE_TAG=* | TORCH_VERSION=* | BASE_IMAGE=*)
                    die "${2%%=*} is not a --build-arg here (TAG, the Makefile's TORCH_SPEC and BASE_IMAGE set it)" ;;
                WITH_VLLM=1) extra+=(--build-arg "$2") gpu_suffix=-vllm ;;
                *=*) extra+=(--build-arg "$2") ;;
                *) die "--build-arg needs KEY=VALUE, not '$2'" ;;
            esac
            shift ;;
        --registry)
            [ $# -ge 2 ] || die "--registry needs a registry"
            shift
            set_registry "$1" ;;
        -h | --help) usage 0 ;;
        -*) die "unknown option $1 (--help lists them)" ;;
        *) set_registry "$1" ;;
    esac
    shift
done
[ -n "$registry" ] || die "an empty REGISTRY"

# One torch version everywhere: the Makefile's pin.
torch_version=$(sed -n 's/^TORCH_SPEC[[:space:]]*?=[[:space:]]*torch==\([^[:space:]]*\).*/\1/p' Makefile)
[[ $torch_version =~ ^[0-9][0-9A-Za-z.+]*$ ]] || die "no 'TORCH_SPEC ?= torch==<version>' line in the Makefile"
# The lock the images install under pins it too (`make lock` holds it there); another would fail the build late.
locked_torch=$(sed -n 's/^torch==\([^[:space:]]*\).*/\1/p' requirements.lock 2> /dev/null)
[ "$locked_torch" = "$torch_version" ] ||
    die "requirements.lock pins torch '${locked_torch}', the Makefile's TORCH_SPEC torch==$torch_version: run make lock"

if [ -z "${TAG:-}" ]; then
    if command -v seavl > /dev/null; then
        TAG=$(seavl image-tag)
    elif [ -x .venv/bin/seavl ]; then
        TAG=$(.venv/bin/seavl image-tag)
    else
        die "set TAG, or install the project (make install) so that \`seavl image-tag\` gives it"
    fi
fi
[[ $TAG =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "'$TAG' is not a valid image tag"

base_image() {  # the base image of docker/Dockerfile.$1, checked
    local kind=$1 var override default image
    case $kind in
        gpu) var=GPU_BASE_IMAGE override=${GPU_BASE_IMAGE:-${BASE_IMAGE:-}} ;;
        cpu) var=CPU_BASE_IMAGE override=${CPU_BASE_IMAGE:-${BASE_IMAGE:-}} ;;
    esac
    default=$(sed -n 's/^ARG BASE_IMAGE=\([^[:space:]]*\).*/\1/p' "docker/Dockerfile.$kind")
    image=${override:-$default}
    if [[ $image == *@"$PLACEHOLDER_DIGEST" ]]; then
        die "refusing to build: the base image of Dockerfile.$kind is the placeholder digest ($image)." \
            "Pin the real one: BASE_IMAGE=python:3.11-slim@sha256:<digest> (both images) or $var=... (this one)." \
            "The digest: docker buildx imagetools inspect python:3.11-slim, or after a pull" \
            "docker inspect --format '{{index .RepoDigests 0}}' python:3.11-slim"
    fi
    [[ $image =~ ^[^@[:space:]]+@sha256:[0-9a-f]{64}$ ]] ||
        die "refusing to build: the base image of Dockerfile.$kind ('$image') is not pinned by digest" \
            "(name:tag@sha256:<64 hex>; set BASE_IMAGE or $var)"
    printf '%s\n' "$image"
}

show() {  # a command, quoted for the shell
    printf '%q' "$1"
    shift
    [ $# -eq 0 ] || printf ' %q' "$@"
    printf '\n'
}

run() {
    if [ "$dry_run" = 1 ]; then
        show "$@"
    else
        printf '+ ' >&2
        show "$@" >&2
        "$@"
    fi
}

docker=${DOCKER:-docker}
[ "$dry_run" = 1 ] || command -v "$docker" > /dev/null || die "no '$docker' here (set DOCKER, or use --dry-run)"

# Every check before the first build, so that nothing is half built.
bases=()
for kind in "${kinds[@]}"; do
    base=$(base_image "$kind")
    bases+=("$base")
done

images=()
for i in "${!kinds[@]}"; do
    kind=${kinds[$i]}
    name=sealion-vl-$kind
    [ "$kind" != gpu ] || name=$name$gpu_suffix
    image="$registry/$name:$TAG"
    run "$docker" build -f "docker/Dockerfile.$kind" \
        --build-arg "BASE_IMAGE=${bases[$i]}" \
        --build-arg "TORCH_VERSION=$torch_version" \
        --build-arg "IMAGE_TAG=$TAG" \
        ${extra[@]+"${extra[@]}"} \
        -t "$image" .
    images+=("$image")
done

if [ "$push" = 1 ]; then
    for image in "${images[@]}"; do
        run "$docker" push "$image"
    done
fi
