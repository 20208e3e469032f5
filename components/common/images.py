"""Container images the steps run in (built from docker/). `seavl compile --image-registry` rewrites the
registry part in the compiled YAML, so these names are the defaults, not the only choice."""
from __future__ import annotations

VERSION = "0.1.0"
REGISTRY = "ghcr.io/sealion-vl"
GPU_IMAGE = f"{REGISTRY}/sealion-vl-gpu:{VERSION}"   # train, evaluate: CUDA torch + the package
CPU_IMAGE = f"{REGISTRY}/sealion-vl-cpu:{VERSION}"   # validate, register: CPU torch + the package
