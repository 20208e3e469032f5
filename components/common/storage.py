"""One storage layer: every path is a URI, a local path (or file://) or s3://bucket/key.

S3 access goes through boto3 and honours the usual variables (AWS_*, and AWS_ENDPOINT_URL_S3 or
MLFLOW_S3_ENDPOINT_URL for S3-compatible servers such as MinIO). Steps call `localize` to get a local
copy of an input and `publish` to copy a local result to its destination URI.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def local_path(uri: str) -> Path:
    """The local path of a local URI (plain path or file://)."""
    uri = str(uri)
    if is_s3(uri):
        raise ValueError(f"{uri} is remote: use localize() to copy it first")
    return Path(uri[len("file://"):] if uri.startswith("file://") else uri)


def join(base: str, *parts: str) -> str:
    """Join URI segments; an absolute local path or a URI in `parts` replaces what came before."""
    out = str(base)
    for part in parts:
        part = str(part)
        if is_s3(part) or part.startswith("file://") or os.path.isabs(part):
            out = part
        else:
            out = out.rstrip("/") + "/" + part
    return out


def parent(uri: str) -> str:
    uri = str(uri).rstrip("/")
    return uri.rsplit("/", 1)[0] if "/" in uri else "."


def s3_client():
    import boto3

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint or None)


def exists(uri: str) -> bool:
    if not is_s3(uri):
        return local_path(uri).exists()
    bucket, key = split_s3(uri)
    resp = s3_client().list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/"), MaxKeys=1)
    return resp.get("KeyCount", 0) > 0


def read_bytes(uri: str) -> bytes:
    if not is_s3(uri):
        return local_path(uri).read_bytes()
    bucket, key = split_s3(uri)
    return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def write_bytes(uri: str, data: bytes) -> None:
    if not is_s3(uri):
        path = local_path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    bucket, key = split_s3(uri)
    s3_client().put_object(Bucket=bucket, Key=key, Body=data)


def cache_dir() -> Path:
    """Where remote inputs are copied to, and where the demo is built: $SEAVL_CACHE or ~/.cache/seavl."""
    return Path(os.environ.get("SEAVL_CACHE") or Path.home() / ".cache" / "seavl")


def localize(uri: str, dest: Path | None = None) -> Path:
    """A local path holding `uri` (a file or a folder). Local URIs are returned as they are; s3:// ones are
    downloaded, once, into the cache (or into `dest`)."""
    if not is_s3(uri):
        path = local_path(uri)
        if not path.exists():
            raise FileNotFoundError(f"{uri} does not exist")
        return path
    bucket, key = split_s3(uri)
    dest = dest or cache_dir() / "s3" / hashlib.sha256(uri.encode()).hexdigest()[:16] / Path(key).name
    client = s3_client()
    paginator = client.get_paginator("list_objects_v2")
    keys = [o["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=key.rstrip("/"))
            for o in page.get("Contents", [])]
    if not keys:
        raise FileNotFoundError(f"{uri} does not exist")
    if keys == [key]:  # a single object
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key, str(dest))
        return dest
    prefix = key.rstrip("/") + "/"
    for k in keys:
        if not k.startswith(prefix):
            continue  # a sibling whose name merely starts with the same characters
        target = dest / k[len(prefix):]
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, k, str(target))
    return dest


def publish(local: Path, uri: str) -> str:
    """Copy a local file or folder to `uri` (a local path or s3://); returns `uri`."""
    local = Path(local)
    if not is_s3(uri):
        dest = local_path(uri)
        if dest.resolve() == local.resolve():
            return uri
        if local.is_dir():
            shutil.copytree(local, dest, dirs_exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(local, dest)
        return uri
    bucket, key = split_s3(uri)
    client = s3_client()
    if local.is_dir():
        for f in sorted(p for p in local.rglob("*") if p.is_file()):
            client.upload_file(str(f), bucket, f"{key.rstrip('/')}/{f.relative_to(local).as_posix()}")
    else:
        client.upload_file(str(local), bucket, key)
    return uri


def fingerprint(paths: list[Path]) -> str:
    """sha256 over the bytes of `paths` (files, or every file under folders), in a stable order."""
    h = hashlib.sha256()
    for root in paths:
        files = sorted(p for p in Path(root).rglob("*") if p.is_file()) if Path(root).is_dir() else [Path(root)]
        for f in files:
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()
