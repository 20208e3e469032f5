"""snapshot: what a pipeline run depends on, resolved by content before any other step runs.

KFP caches a task on its argument values (and artifact URIs), never on the bytes behind a URI. So the first
step fingerprints every input URI by content (relative names, sizes, ETags or hashes: components/common/
storage.py); the fingerprints are inputs of the steps that read those URIs, and a cached step is reused
exactly when what it reads is unchanged. A missing input fails the run here, before any GPU is asked for.
"""
from __future__ import annotations

from components.common import storage


def _exists(name: str, uri: str) -> bool:
    try:
        return storage.exists(uri)
    except Exception as err:  # an unreachable endpoint or refused credentials: say which input needed them
        raise OSError(f"cannot read pipeline input {name}={uri}: {err}") from err


def fingerprint_inputs(inputs: dict[str, str]) -> dict[str, str]:
    """{name: content fingerprint} of each input URI; '' for an input left empty. FileNotFoundError naming
    every missing input; OSError naming the input whose storage cannot be read."""
    missing = [f"{name}={uri}" for name, uri in inputs.items() if uri and not _exists(name, uri)]
    if missing:
        raise FileNotFoundError(f"pipeline input(s) not found: {', '.join(missing)}")
    return {name: storage.fingerprint(uri) if uri else "" for name, uri in inputs.items()}


def cache_salt(reuse_training: bool) -> str:
    """The training steps' `cache_salt`: '' lets KFP reuse an identical earlier training; a fresh random value
    (the snapshot step is never cached, so it is new every run) makes their cache keys new: they train again."""
    import uuid

    return "" if reuse_training else uuid.uuid4().hex
