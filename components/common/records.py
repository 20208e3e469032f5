"""Record schemas and readers shared by the steps (see ARCHITECTURE.md, "Data contracts").

Manifests are JSONL or Parquet tables, local or s3://. Image fields may be relative paths: they are
resolved against the manifest's own folder, so a manifest and its images move together.
"""
from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from components.common import storage

CAPTION_REQUIRED = ("id", "image", "caption", "lang", "source")
SFT_REQUIRED = ("id", "messages")  # `images` may be absent: text-only conversations


def read_table(uri: str):
    """A manifest as a pandas DataFrame (JSONL, JSON lines or Parquet, chosen by suffix)."""
    import pandas as pd

    data = storage.read_bytes(uri)
    if str(uri).endswith(".parquet"):
        return pd.read_parquet(io.BytesIO(data))
    if str(uri).endswith((".jsonl", ".json")):
        rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
        return pd.DataFrame(rows)
    raise ValueError(f"unknown manifest format for {uri}: expected .jsonl or .parquet")


def iter_rows(uri: str, columns: list[str] | None = None) -> Iterator[dict]:
    """The records of a JSONL file, a folder of JSONL part files (in name order), a Parquet file, a folder of
    Parquet files (a curated dataset) or a `datasets.save_to_disk` folder (Arrow stream files named in its
    state.json), streamed in batches."""
    fs, path = storage.filesystem(uri)
    if not fs.exists(path):
        raise FileNotFoundError(f"{uri} does not exist")
    if str(uri).endswith((".jsonl", ".json")):
        with fs.open(path, "rb") as f:
            for n, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as err:
                        raise ValueError(f"{uri} line {n} is not JSON ({err})") from None
                    yield row
        return
    parts = sorted(p for p in fs.find(path) if p.endswith(".jsonl")) if fs.isdir(path) else []
    if parts:
        for part in parts:
            yield from iter_rows(storage.join(uri, part[len(path.rstrip("/")) + 1:]))
        return
    state = f"{path.rstrip('/')}/state.json"
    if fs.exists(state):   # datasets.save_to_disk
        import pyarrow as pa

        with fs.open(state, "rb") as f:
            files = [d["filename"] for d in json.load(f)["_data_files"]]
        for name in files:
            with fs.open(f"{path.rstrip('/')}/{name}", "rb") as f:
                for batch in pa.ipc.open_stream(f):
                    yield from (batch.select(columns) if columns else batch).to_pylist()
        return
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, filesystem=fs, format="parquet")
    missing = [c for c in columns or [] if c not in dataset.schema.names]
    if missing:
        raise ValueError(f"{uri} has no column(s) {missing} (its columns: {dataset.schema.names})")
    for batch in dataset.to_batches(columns=columns, batch_size=8192):
        yield from batch.to_pylist()


def mlflow_columns(uri: str) -> dict[str, str]:
    """{column: MLflow type} of a Parquet file or folder of Parquet files, read from the file footers alone."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    fs, path = storage.filesystem(uri)
    kinds = ((pa.types.is_string, "string"), (pa.types.is_large_string, "string"), (pa.types.is_integer, "long"),
             (pa.types.is_floating, "double"), (pa.types.is_boolean, "boolean"), (pa.types.is_binary, "binary"),
             (pa.types.is_timestamp, "datetime"))
    schema = ds.dataset(path, filesystem=fs, format="parquet").schema
    return {f.name: next((kind for test, kind in kinds if test(f.type)), "string") for f in schema}


ARCHIVE_SEP = "!/"   # `media/shard_0.tar!/images/a.jpg`: member images/a.jpg of the tar archive media/shard_0.tar


def split_member(ref: str) -> tuple[str, str | None]:
    """(archive or file, member or None) of an image reference that may name a member of a tar archive."""
    path, sep, member = str(ref).partition(ARCHIVE_SEP)
    return (path, member) if sep else (path, None)


@lru_cache(maxsize=64)
def _shard_index(uri: str) -> dict[str, tuple[int, int]]:
    """{member name: (offset, size)} of an uncompressed tar shard, from its headers alone."""
    import tarfile

    fs, path = storage.filesystem(uri)
    with fs.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
        return {m.name: (m.offset_data, m.size) for m in tar.getmembers() if m.isfile()}


def read_image_bytes(uri: str, member: str | None = None) -> bytes:
    """The bytes of an image file, or of member `member` of the tar shard at `uri`."""
    if not member:
        return storage.read_bytes(uri)
    fs, path = storage.filesystem(uri)
    if str(uri).endswith(".tar"):
        try:
            offset, size = _shard_index(uri)[member]
        except KeyError:
            raise FileNotFoundError(f"{member} is not in shard {uri}") from None
        return fs.cat_file(path, start=offset, end=offset + size)
    import tarfile

    with fs.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:   # compressed: no random access
        for info in tar:
            if info.name == member:
                return tar.extractfile(info).read()
    raise FileNotFoundError(f"{member} is not in shard {uri}")


def read_jsonl(uri: str) -> list[dict]:
    return [json.loads(line) for line in storage.read_text(uri).splitlines() if line.strip()]


def write_jsonl(rows: Iterable[dict], path: Path) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
            n += 1
    return n


def _json_default(value: Any):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def split_list(text: str) -> list[str]:
    """A comma-separated parameter ('en, th,,vi') as a list (['en', 'th', 'vi'])."""
    return [part.strip() for part in str(text).split(",") if part.strip()]


def require(row: dict, fields: tuple[str, ...], where: str) -> None:
    missing = [f for f in fields if f not in row]
    if missing:
        raise ValueError(f"{where}: record {row.get('id', '?')!r} lacks field(s) {missing}")


def resolve(manifest_uri: str, relative: str) -> str:
    """The URI of a file named in a manifest, relative names being taken from the manifest's folder."""
    return storage.join(storage.parent(manifest_uri), relative)


def load_image(uri: str, member: str | None = None):
    """An image (a file, or a member of a tar shard, given as `member` or as `archive.tar!/member`) as RGB
    PIL.Image; raises ValueError naming the URI if it cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    if member is None:
        uri, member = split_member(uri)
    data = read_image_bytes(uri, member)  # FileNotFoundError passes through
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot decode image {uri}: {err}") from err
    return img.convert("RGB")


def llava_to_messages(record: dict) -> dict:
    """A LLaVA/MAmmoTH-VL record ({id, image, conversations: [{from, value}]}) in the messages format.

    `<image>` placeholders in human turns become image slots, in place; a record whose `image` is a list
    has one slot per image. Roles: human -> user, gpt -> assistant.
    """
    images = record.get("image") or []
    images = [images] if isinstance(images, str) else list(images)
    messages = []
    for turn in record["conversations"]:
        role = {"human": "user", "gpt": "assistant"}.get(turn["from"])
        if role is None:
            raise ValueError(f"record {record.get('id')!r}: unknown speaker {turn['from']!r}")
        parts = turn["value"].split("<image>")
        content: list[dict] = []
        for i, text in enumerate(parts):
            if i > 0:
                content.append({"type": "image"})
            if text.strip():
                content.append({"type": "text", "text": text.strip()})
        messages.append({"role": role, "content": content})
    slots = sum(c["type"] == "image" for m in messages for c in m["content"])
    if slots < len(images) and messages and messages[0]["role"] == "user":
        # MAmmoTH-VL's trainer puts a missing placeholder at the front of the first turn.
        messages[0]["content"] = [{"type": "image"}] * (len(images) - slots) + messages[0]["content"]
    return {"id": record.get("id"), "messages": messages, "images": images}
