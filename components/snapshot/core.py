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
        storage.check_reachable(uri)
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


def suite_fingerprint(uri: str) -> str:
    """Content fingerprint of an evaluation suite: its file and every dataset, image root and judge it names.
    A suite that cannot be read, or that names a missing file, fails here, before any GPU is asked for."""
    import hashlib
    import json

    from components.evaluate.seahelm.suite import load_suite

    suite = load_suite(uri)
    missing = [u for u in suite.uris() if not _exists("eval_suite", u)]
    if missing:
        raise FileNotFoundError(f"the evaluation suite {uri} names missing data: {', '.join(missing)}")
    parts = [storage.fingerprint(u) for u in [uri, *suite.uris()]]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def _canonical(value) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def normalized(value):
    """A parameter value as one text whichever way it arrived: KFP hands the values of a dictionary of pipeline
    parameters over as text (kfp.local writes 8 as "8.0"), a direct call as numbers and booleans. Only what is
    written as a number changes ("8.0" and 8 -> "8", True -> "true"); other text ("0123", a commit) is kept."""
    import re

    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalized(v) for v in value]
    if isinstance(value, bool) or value in ("True", "False"):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+\.0+", value):
        return value.split(".")[0]
    return value


def training_fingerprint(fingerprints: dict[str, str], settings: dict) -> str:
    """What decides the trained weights: the content of the captions, conversations, base model, replay data and
    evaluation suite (whose images are kept out of the captions), and `settings` (the curation and training
    settings, the training GPUs, the code version). Equal fingerprints train the same model, so a scheduled run
    may skip (skip_if_unchanged)."""
    import hashlib

    inputs = {k: fingerprints.get(k, "") for k in ("caption", "sft", "base", "replay", "eval")}
    return hashlib.sha256(_canonical({"inputs": inputs, "settings": normalized(settings)}).encode()).hexdigest()


# what a run's configuration hash leaves out: its code version (a tag of its own), where it is tracked, and
# switches that change how much is recomputed, not what comes out
NOT_CONFIGURATION = {"git_commit", "mlflow_experiment", "skip_if_unchanged", "reuse_training"}


def config_hash(parameters: dict) -> str:
    """A hash of a run's parameters (NOT_CONFIGURATION left out): runs with the same configuration share it."""
    import hashlib

    kept = {k: normalized(v) for k, v in parameters.items() if k not in NOT_CONFIGURATION}
    return hashlib.sha256(_canonical(kept).encode()).hexdigest()[:16]


def skip_decision(skip_if_unchanged: bool, training: str, champion_version: str, champion_training: str
                  ) -> tuple[bool, str]:
    """(skip, why): skip training, evaluation and registration only when asked to and the champion was trained
    from the same training fingerprint."""
    if not champion_version:
        return False, "no champion yet: training"
    if training != champion_training:
        was = f"{champion_training[:12]}" if champion_training else "not recorded"
        return False, (f"training inputs changed since champion version {champion_version} (training fingerprint "
                       f"{training[:12]}, champion's {was}): training")
    if not skip_if_unchanged:
        return False, (f"training inputs unchanged since champion version {champion_version}, but "
                       "skip_if_unchanged is false: training")
    return True, (f"skipped: the data, base model, evaluation suite, settings and code are unchanged since champion "
                  f"version {champion_version} was trained (training fingerprint {training[:12]}): nothing to "
                  "train, evaluate or register")


RESERVED_ROLES = {"candidate", "base", "cpt", "champion"}


def reference_list(models: dict[str, str]) -> list[dict[str, str]]:
    """[{"role", "uri", "fingerprint"}] of the reference models ({name: URI}), in name order: what the pipeline's
    ParallelFor evaluates; each name is its role, a report column, so it may not be one of the pipeline's own.
    (The key is not "name": a KFP loop item's `.name` is the loop variable's own name, not a field.)"""
    clash = sorted(RESERVED_ROLES & set(models))
    if clash:
        raise ValueError(f"reference model names {clash} clash with the pipeline's roles {sorted(RESERVED_ROLES)}")
    fingerprints = fingerprint_inputs({f"reference_models.{name}": uri for name, uri in models.items()})
    return [{"role": name, "uri": uri, "fingerprint": fingerprints[f"reference_models.{name}"]}
            for name, uri in sorted(models.items())]
