#!/usr/bin/env bash
# EXAMPLE: label and taint GPU nodes by hand (a cluster without the GPU operator's feature discovery, or nodes
# outside a cloud node pool), as the pipeline's GPU steps and gpu-smoke-test.yaml expect them:
#   infra/overlays/gpu-nodepool-example/label-gpu-nodes.sh NODE [NODE ...]
# The taint keeps every pod without the toleration (all but GPU steps) off these nodes; undo with
#   kubectl taint node NODE nvidia.com/gpu=present:NoSchedule-   and   kubectl label node NODE nvidia.com/gpu.present-
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 NODE [NODE ...]   (kubectl get nodes lists them)" >&2
    exit 2
fi
for node in "$@"; do
    kubectl label node "$node" nvidia.com/gpu.present=true --overwrite
    kubectl taint node "$node" nvidia.com/gpu=present:NoSchedule --overwrite
done
