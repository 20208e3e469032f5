"""Training checkpoints at a URI that outlives the pod (a local folder or s3://), resumable exactly.

    <checkpoint_uri>/step-00000120/    *.distcp + .metadata   model and optimizer, sharded (torch DCP)
                                       trainer.json           step, data position, scheduler, identity
                                       rng-<rank>.json        each rank's RNG states
                                       COMPLETE               written last, by rank 0, once every rank has finished

A folder without COMPLETE is a checkpoint whose writing was cut off: it is never loaded and is removed at the
next save. The last `keep` complete checkpoints are kept. Each records an identity (the initial model, the
stage, the settings that shape the trajectory, the world size); a checkpoint with another identity is refused,
naming what differs, rather than silently mixed into a different run.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass

import torch

from components.common import storage

log = logging.getLogger(__name__)

MARKER = "COMPLETE"


class CheckpointMismatch(RuntimeError):
    """The checkpoint at the URI was written by another model, stage or configuration."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, an unreachable store): the previous one is intact."""


def _cause(err: BaseException) -> str:
    """The first OSError behind `err` (torch DCP wraps each rank's failure), as its errno text; else `err`."""
    seen, todo = set(), [err]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno:
            return f"{e.strerror or e} (errno {e.errno})"
        failures = getattr(e, "failures", None)   # torch.distributed.checkpoint's CheckpointException
        wrapped = [f[0] if isinstance(f, tuple) else f for f in (failures or {}).values()]   # (error, traceback)
        todo += [e.__cause__, e.__context__, *(f for f in wrapped if isinstance(f, BaseException))]
    inner = [e for e in (f[0] if isinstance(f, tuple) else f for f in (getattr(err, "failures", None) or {}).values())
             if isinstance(e, BaseException)]
    first = inner[0] if inner else err
    return str(first).splitlines()[0] if str(first) else type(first).__name__


def identity_hash(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fs_options(uri: str) -> dict:
    """torch DCP's filesystem for `uri`: the project's S3 settings (endpoint, timeouts, retries with backoff), and
    no listing cache: other ranks and an earlier attempt write here, and a stale listing would hide their files."""
    return {**storage.options(uri), "use_listings_cache": False} if storage.is_remote(uri) else {}


def _bytes(state) -> int:
    """Bytes of the tensors in a (nested) state dict, this rank's shard of each."""
    if isinstance(state, dict):
        return sum(_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_bytes(v) for v in state)
    if isinstance(state, torch.Tensor):
        local = state.to_local() if hasattr(state, "to_local") else state
        return local.numel() * local.element_size()
    return 0


def _rng_state() -> dict:
    state = {"torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()}
    if torch.cuda.is_available():
        state["cuda"] = base64.b64encode(torch.cuda.get_rng_state().numpy().tobytes()).decode()
    return state


def _set_rng_state(state: dict) -> None:
    import numpy as np

    torch.set_rng_state(torch.from_numpy(np.frombuffer(base64.b64decode(state["torch"]), dtype=np.uint8).copy()))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(
            torch.from_numpy(np.frombuffer(base64.b64decode(state["cuda"]), dtype=np.uint8).copy()))


@dataclass
class Restored:
    step: int
    position: int       # micro-batches this rank had consumed
    path: str


class Checkpoints:
    def __init__(self, uri: str, identity: dict, keep: int = 2):
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.uri, self.identity, self.keep = uri.rstrip("/"), identity, keep
        self.fs, self.root = storage.filesystem(self.uri)

    def _dirs(self) -> list[tuple[int, str, bool]]:
        """(step, folder, complete) of every step folder, oldest first, as the store has it now."""
        self.fs.invalidate_cache(self.root)
        if not self.fs.exists(self.root):
            return []
        out = []
        for entry in self.fs.ls(self.root, detail=False):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("step-") and name[5:].isdigit():
                out.append((int(name[5:]), entry, self.fs.exists(f"{entry.rstrip('/')}/{MARKER}")))
        return sorted(out)

    def latest(self) -> str | None:
        """The newest complete checkpoint's URI, after checking it belongs to this run; None when there is none."""
        complete = [d for d in self._dirs() if d[2]]
        if not complete:
            return None
        step, path, _ = complete[-1]
        uri = storage.join(self.uri, path.rstrip("/").rsplit("/", 1)[-1])
        try:
            meta = json.loads(storage.read_text(f"{uri}/trainer.json"))
            meta["identity"].items()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise CheckpointMismatch(
                f"the checkpoint at {uri} cannot be resumed: {uri}/trainer.json is unreadable ({err}). Remove that "
                f"step folder to resume from the one before, or give this run its own checkpoint URI.") from None
        if meta["identity"] != self.identity:
            differs = sorted(k for k in set(meta["identity"]) | set(self.identity)
                             if meta["identity"].get(k) != self.identity.get(k))
            detail = "; ".join(f"{k}: checkpoint {meta['identity'].get(k)!r}, now {self.identity.get(k)!r}"
                               for k in differs)
            raise CheckpointMismatch(
                f"the checkpoint at {uri} was written by another run ({detail}). Resume with the settings it was "
                f"written with, or give this run its own checkpoint URI.")
        return uri

    def save(self, step: int, position: int, model, optimizer, scheduler, dist) -> str:
        """Every rank calls this at the same step. Writes the shards, then (rank 0) the marker; prunes."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint._fsspec_filesystem import FsspecWriter
        from torch.distributed.checkpoint.state_dict import get_state_dict

        uri = f"{self.uri}/step-{step:08d}"
        model_sd, optim_sd = get_state_dict(model, optimizer)
        try:
            dcp.save({"model": model_sd, "optim": optim_sd},
                     storage_writer=FsspecWriter(uri, sync_files=False, **_fs_options(uri)))
            storage.write_bytes(f"{uri}/rng-{dist.rank}.json", json.dumps(_rng_state()).encode())
            dist.barrier()
            if dist.main:
                meta = {"step": step, "position": position, "scheduler": scheduler.state_dict(),
                        "identity": self.identity, "world": dist.world}
                storage.write_bytes(f"{uri}/trainer.json", json.dumps(meta, indent=1).encode())
                storage.write_bytes(f"{uri}/{MARKER}", b"")
        except (Exception, dcp.api.CheckpointException) as err:   # the latter is a BaseException
            raise self._write_failed(step, uri, err, _bytes(model_sd) + _bytes(optim_sd)) from err
        if dist.main:
            self._prune()
        dist.barrier()
        log.info("checkpoint %s written", uri)
        return uri

    def _write_failed(self, step: int, uri: str, err: BaseException, needed: int) -> CheckpointWriteError:
        """The unfinished folder removed (it holds space, and is never loaded anyway), and what the user learns:
        why, and that the last complete checkpoint is untouched and is where a restart resumes. torch.save reports
        a full disk as a zip writer's position error, so a local disk's free space is looked at too."""
        cause = _cause(err)
        if not storage.is_remote(uri):
            free = shutil.disk_usage(self.root if os.path.exists(self.root) else "/").free
            if free < needed:
                cause = (f"{cause if 'No space left' in cause else 'No space left on device'}: this rank's share of "
                         f"the checkpoint is {needed / 2**20:.1f} MiB and its disk has {free / 2**20:.1f} MiB free")
        try:
            self.fs.rm(self.fs._strip_protocol(uri), recursive=True)
        except (OSError, FileNotFoundError) as rm_err:
            log.warning("could not remove the unfinished checkpoint %s: %s", uri, rm_err)
        complete = [d for d in self._dirs() if d[2] and d[0] != step]
        previous = (f"the last complete checkpoint, step {complete[-1][0]}, is intact and a restart resumes from it"
                    if complete else "there is no earlier complete checkpoint: a restart begins at step 0")
        return CheckpointWriteError(f"checkpoint step {step} could not be written to {uri}: {cause}. "
                                    f"Nothing else was changed: {previous}.")

    def _prune(self) -> None:
        dirs = self._dirs()
        complete = [d for d in dirs if d[2]]
        keep = {d[1] for d in complete[-self.keep:]}
        newest = complete[-1][0] if complete else -1
        for step, path, done in dirs:
            if path not in keep and (done or step < newest):
                self.fs.rm(path, recursive=True)

    def load(self, uri: str, model, optimizer, scheduler, dist) -> Restored:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint._fsspec_filesystem import FsspecReader
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        meta = json.loads(storage.read_text(f"{uri}/trainer.json"))
        model_sd, optim_sd = get_state_dict(model, optimizer)
        state = {"model": model_sd, "optim": optim_sd}
        dcp.load(state, storage_reader=FsspecReader(uri, **_fs_options(uri)))
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
        scheduler.load_state_dict(meta["scheduler"])
        rng = f"{uri}/rng-{dist.rank}.json"
        if storage.exists(rng):
            _set_rng_state(json.loads(storage.read_text(rng)))
        log.info("resumed from %s at step %d", uri, meta["step"])
        return Restored(step=meta["step"], position=meta["position"], path=uri)
