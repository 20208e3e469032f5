"""One storage layer: every path is a URI, a local path (or file://), s3://bucket/key, or anything else fsspec
knows (gs://, az://, ...), plus `models:/<name>/<version>` for versions in the MLflow Model Registry.

Remote access goes through fsspec, one filesystem object per protocol and settings in each process (fsspec
keeps it, and gives a forked DataLoader worker its own). `s3://` uses s3fs; an S3-compatible server (MinIO)
is named by AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or MLFLOW_S3_ENDPOINT_URL; credentials come from the usual
AWS_* variables. `localize` gives a local copy of an input (a cache validated against each object's ETag and
size, so a changed object is fetched again); `publish` copies a local result to a destination URI.
`fingerprint` identifies the content behind a URI: relative names, sizes and ETags or content hashes.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REGISTRY_SCHEME = "models:/"
_ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")
_CHUNK = 8 << 20  # bytes read at a time when hashing


def is_remote(uri: str) -> bool:
    """True for URIs with a scheme other than file:// (s3://, gs://, models:/, ...)."""
    uri = str(uri)
    return uri.startswith(REGISTRY_SCHEME) or ("://" in uri and not uri.startswith("file://"))


def local_path(uri: str) -> Path:
    """The local path of a local URI (plain path or file://)."""
    uri = str(uri)
    if is_remote(uri):
        raise ValueError(f"{uri} is remote: use localize() to copy it first")
    return Path(uri[len("file://"):] if uri.startswith("file://") else uri)


def join(base: str, *parts: str) -> str:
    """Join URI segments; an absolute local path or a URI in `parts` replaces what came before."""
    out = str(base)
    for part in parts:
        part = str(part)
        if is_remote(part) or part.startswith("file://") or os.path.isabs(part):
            out = part
        else:
            out = out.rstrip("/") + "/" + part
    return out


def parent(uri: str) -> str:
    uri = str(uri).rstrip("/")
    return uri.rsplit("/", 1)[0] if "/" in uri else "."


def s3_endpoint() -> str | None:
    """The S3-compatible endpoint named in the environment, if any."""
    return next((os.environ[v] for v in _ENDPOINT_VARS if os.environ.get(v)), None)


def options(uri: str) -> dict:
    """fsspec's settings for `uri`. S3: the endpoint named in the environment; a connection that cannot be made
    fails within seconds instead of botocore's 60 s per try; an answer awaited longer than SEAVL_S3_READ_TIMEOUT
    (120 s) is a timeout; errors, throttling, resets and timeouts are retried with exponential backoff and jitter
    (botocore's standard mode, SEAVL_S3_MAX_ATTEMPTS attempts, 5 by default)."""
    if not str(uri).startswith("s3://"):
        return {}
    read_timeout = float(os.environ.get("SEAVL_S3_READ_TIMEOUT", 120))
    return {"client_kwargs": {"endpoint_url": s3_endpoint()},
            "config_kwargs": {"connect_timeout": 10, "read_timeout": read_timeout,
                              "retries": {"max_attempts": int(os.environ.get("SEAVL_S3_MAX_ATTEMPTS", 5)),
                                          "mode": "standard"}}}


def filesystem(uri: str):
    """(fsspec filesystem, path within it) for `uri`. fsspec caches instances by their settings, so every call
    with the same protocol and endpoint returns the same object."""
    import fsspec
    from fsspec.core import url_to_fs

    uri = str(uri)
    if not is_remote(uri):
        return fsspec.filesystem("file"), str(local_path(uri).absolute())
    return url_to_fs(uri, **options(uri))


def check_reachable(uri: str) -> None:
    """At the start of a run: the store behind `uri` answers, at the first attempt (an endpoint that is down, or
    credentials it refuses, are a configuration to fix, not a fault to wait out); raises what the store said."""
    if not str(uri).startswith("s3://"):
        return
    from fsspec.core import url_to_fs

    opts = options(uri)
    opts["config_kwargs"] = {**opts["config_kwargs"], "connect_timeout": 5,
                             "retries": {"max_attempts": 1, "mode": "standard"}}
    fs, path = url_to_fs(uri, **opts, skip_instance_cache=True)
    fs.retries = 1      # s3fs's own loop around botocore's
    fs.exists(path)


def exists(uri: str) -> bool:
    """Whether `uri` names an existing file or folder (exactly: `s3://b/m` does not match `s3://b/m1`)."""
    fs, path = filesystem(uri)
    return fs.exists(path)


def read_bytes(uri: str) -> bytes:
    """The bytes of the file at `uri`; FileNotFoundError naming it when there is none."""
    fs, path = filesystem(uri)
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{uri} does not exist") from None


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def write_bytes(uri: str, data: bytes) -> None:
    """Write `data` whole or not at all: a local file is written beside its place and renamed into it, so that a
    process killed meanwhile leaves no truncated file; an object store's PUT is whole by itself."""
    fs, path = filesystem(uri)
    if is_remote(uri):
        fs.pipe_file(path, data)
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", suffix=".partial",
                                     delete=False) as f:
        f.write(data)
    os.replace(f.name, target)


@contextmanager
def folder_in_place(dest: Path) -> Iterator[Path]:
    """A folder to write `dest`'s content into, put in its place (replacing an older `dest`) only once the block
    has finished: a process killed while writing leaves `dest` absent or as it was, never half-written."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    name = glob.escape(dest.name)
    for stale in [*dest.parent.glob(f".{name}.*.partial"), *dest.parent.glob(f".{name}.old")]:   # a killed writer's
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial"))
    try:
        yield work
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            dest.rename(old)
            work.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            work.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cache_dir() -> Path:
    """Where remote inputs are copied to, and where the demo is built: $SEAVL_CACHE (on a cluster, the step's
    scratch volume), else ~/.cache/seavl. OSError, naming it, when the folder cannot be written: a model of tens
    of gigabytes must not quietly land somewhere else."""
    path = Path(os.environ.get("SEAVL_CACHE") or Path.home() / ".cache" / "seavl")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as err:
        raise OSError(f"the download cache {path} (SEAVL_CACHE) cannot be written: {err}") from None
    return path


def _listing(fs, path: str) -> dict[str, dict]:
    """{relative name: info} of the file at `path` (relative name "") or of every file under the folder, as the
    store has it now (fsspec's listing cache is dropped first: another process may have changed it)."""
    fs.invalidate_cache(path)
    if fs.isdir(path):
        found = fs.find(path, detail=True)
        root = path.rstrip("/") + "/"
        return {name[len(root):]: info for name, info in found.items() if name.startswith(root)}
    try:
        return {"": fs.info(path)}
    except FileNotFoundError:
        return {}


def _version_token(fs, info: dict) -> str:
    """What changes when a remote object changes: its ETag (S3), MD5/CRC (GCS), else fsspec's own key."""
    for key in ("ETag", "etag", "md5Hash", "crc32c", "VersionId"):
        if info.get(key):
            return str(info[key]).strip('"')
    return str(fs.ukey(info["name"]))


def localize(uri: str, dest: Path | None = None) -> Path:
    """A local path holding `uri` (a file or a folder). Local URIs are returned as they are. Remote ones are
    copied into the cache (or into `dest`); a later call downloads only what changed since (another ETag or
    size), and drops files that are gone. `models:/name/version` is fetched from the MLflow registry."""
    uri = str(uri)
    if not is_remote(uri):
        path = local_path(uri)
        if not path.exists():
            raise FileNotFoundError(f"{uri} does not exist")
        return path
    identity = _registered_identity(uri) if uri.startswith(REGISTRY_SCHEME) else uri
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    dest = Path(dest) if dest is not None else cache_dir() / "remote" / key / name
    if uri.startswith(REGISTRY_SCHEME):
        return _localize_registered(uri, dest)
    fs, path = filesystem(uri)
    listing = _listing(fs, path)
    if not listing:
        raise FileNotFoundError(f"{uri} does not exist")
    index_path = dest.parent / f".{dest.name}.index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    wanted = {rel: [info.get("size"), _version_token(fs, info)] for rel, info in listing.items()}
    for rel, token in wanted.items():
        target = dest / rel if rel else dest
        if index.get(rel) == token and target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        fs.get_file(f"{path.rstrip('/')}/{rel}" if rel else path, str(partial))
        partial.replace(target)
        index[rel] = token
        index_path.write_text(json.dumps(index))
    for rel in set(index) - set(wanted):
        (dest / rel if rel else dest).unlink(missing_ok=True)
        del index[rel]
    index_path.write_text(json.dumps(index))
    return dest


def registered_version(uri: str):
    """The MLflow ModelVersion that `models:/NAME@ALIAS` or `models:/NAME/VERSION` names (MlflowException when
    there is none)."""
    from mlflow.tracking import MlflowClient

    ref = uri[len(REGISTRY_SCHEME):].strip("/")
    client = MlflowClient()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return client.get_model_version_by_alias(name, alias)
    name, version = ref.rsplit("/", 1)
    return client.get_model_version(name, version)


def _registered_identity(uri: str) -> str:
    """What names a registered version's bytes: the registry it lives in and the version's source and run, not
    just `models:/name/version` (another tracking server, or a recreated registry, reuses those)."""
    import mlflow

    mv = registered_version(uri)
    return "|".join([mlflow.get_registry_uri(), mv.name, str(mv.version), mv.source, str(mv.run_id),
                     str(mv.creation_timestamp)])


def _localize_registered(uri: str, dest: Path) -> Path:
    """A registered model version is immutable: download it once, check it against its checksums, and return its
    save_pretrained folder (the `weights/` of an MLflow model version: components/common/vlm_pyfunc.py)."""
    import mlflow

    from components.common.vlm_pyfunc import weights_folder

    done = dest.parent / f".{dest.name}.done"
    fresh = not done.exists()
    if fresh:
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest))
    folder = weights_folder(dest, check=fresh)   # checksums checked once, on download
    if fresh:
        done.touch()
    return folder


# Written last when a folder is published: a reader of a model folder checks for config.json first
# (models.check_weights), so a folder whose upload was cut off is refused rather than half-read.
LAST = ("config.json",)


def publish(local: Path, uri: str) -> str:
    """Copy a local file or folder to `uri` (a local path or a remote URI); returns `uri`. A local folder is put
    in place whole (folder_in_place); a remote one gets the files of LAST after every other file."""
    local = Path(local)
    if not is_remote(uri):
        dest = local_path(uri)
        if dest.resolve() == local.resolve():
            return uri
        if local.is_dir():
            with folder_in_place(dest) as work:
                shutil.copytree(local, work, dirs_exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            partial = dest.with_name(f".{dest.name}.partial")
            shutil.copy2(local, partial)
            partial.replace(dest)
        return uri
    fs, path = filesystem(uri)
    if local.is_dir():
        for f in sorted((p for p in local.rglob("*") if p.is_file()), key=lambda p: (p.name in LAST, str(p))):
            fs.put_file(str(f), f"{path.rstrip('/')}/{f.relative_to(local).as_posix()}")
    else:
        fs.put_file(str(local), path)
    return uri


def _sha256(fs, path: str) -> str:
    h = hashlib.sha256()
    with fs.open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(uri: str, hashes: dict[str, str] | None = None) -> str:
    """A sha256 identifying the content at `uri` (a file, or every file under a folder or prefix): each file's
    name relative to `uri`, its size, and a content hash (local files) or its ETag (remote objects). The same
    content under another root gives the same fingerprint; any added, removed, renamed or changed file gives
    another. `hashes` ({relative name: sha256}) are local files' hashes already computed, so that they are not
    read twice. FileNotFoundError when nothing is there."""
    fs, path = filesystem(uri)
    listing = _listing(fs, path)
    if not listing:
        raise FileNotFoundError(f"{uri} does not exist")
    remote = is_remote(uri)
    h = hashlib.sha256()
    for rel in sorted(listing):
        info = listing[rel]
        content = _version_token(fs, info) if remote else (hashes or {}).get(rel) or _sha256(fs, info["name"])
        h.update(json.dumps([rel, info.get("size"), content]).encode())
    return h.hexdigest()
