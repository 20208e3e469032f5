"""Reading a corpus as units of work, each streamed record by record, never whole.

An input is a JSONL or Parquet manifest, a folder/prefix of them, or a folder/prefix of WebDataset tar shards
(img2dataset's `{key}.jpg`, `{key}.txt`, `{key}.json`), local or s3://. `plan_units` lists the units (byte
ranges of a JSONL file, row groups of a Parquet file, one tar shard each) from metadata alone; `read_unit`
streams one unit. A record that cannot be read is yielded with its problem, never raised: the caller sends it
to quarantine and goes on.
"""
from __future__ import annotations

import json
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from components.common import storage

JSONL_SUFFIXES = (".jsonl", ".json")
PARQUET_SUFFIXES = (".parquet",)
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
JSONL_SPLIT_BYTES = 64 * 2**20      # a JSONL file is read as ranges of about this size, in parallel
PARQUET_SPLIT_ROWS = 200_000        # row groups are bundled into units of about this many rows
BATCH_ROWS = 8_192                  # Parquet rows decoded at a time
SNIFF_BYTES = 64 * 2**10            # what is read of a JSONL file to tell that its first record is one


class InputError(ValueError):
    """The input as a whole cannot be read (nothing there, an unknown format, an empty manifest)."""


@dataclass(frozen=True)
class Unit:
    """A piece of the input that one worker reads from start to end."""
    kind: str            # "jsonl" | "parquet" | "shard"
    uri: str
    index: int           # position in the plan: fixes the reading order across workers
    root: str            # images must lie under this folder/prefix
    start: int = 0       # jsonl: first byte; parquet: first row group
    end: int = -1        # jsonl: end byte (exclusive); parquet: end row group (exclusive)
    source: str = ""     # default `source` for records that do not name one

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> Unit:
        return Unit(**json.loads(text))


@dataclass
class Record:
    """One input record as read: its fields, or the problem that kept it from being read."""
    position: int                       # row number (Parquet), sample number (shard) or byte offset (JSONL)
    fields: dict = field(default_factory=dict)
    problem: tuple[str, str] | None = None   # (reason code, detail)
    image_bytes: bytes | None = None    # shards carry the image; manifests name a file
    member: str | None = None           # the image's member name inside a shard
    raw: str | None = None              # the raw line, when it could not be parsed


def _kind(uri: str) -> str | None:
    name = uri.lower()
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(SHARD_SUFFIXES):
        return "shard"
    return None


def list_inputs(uri: str) -> tuple[str, list[str]]:
    """(kind, files) of an input: one manifest or shard, or every shard (else manifest) under a folder."""
    fs, path = storage.filesystem(uri)
    protocol = uri.split("://", 1)[0] + "://" if "://" in uri else ""
    if _kind(uri):
        if not fs.exists(path):
            raise InputError(f"input {uri} does not exist")
        return _kind(uri), [uri]
    if not fs.isdir(path):
        raise InputError(f"input {uri} does not exist, or is neither a manifest (.jsonl, .parquet), a shard (.tar) "
                         f"nor a folder of them")
    fs.invalidate_cache()
    files = sorted(p for p in fs.find(path) if _kind(p))
    by_kind: dict[str, list[str]] = {}
    for p in files:
        by_kind.setdefault(_kind(p), []).append(protocol + p if protocol and "://" not in p else p)
    for kind in ("shard", "parquet", "jsonl"):   # img2dataset writes a .parquet beside each .tar: shards win
        if by_kind.get(kind):
            return kind, by_kind[kind]
    raise InputError(f"no shards (.tar) or manifests (.jsonl, .parquet) under {uri}")


def plan_units(uri: str, image_root: str = "") -> list[Unit]:
    """The units of work of an input, from file sizes and Parquet footers; raises InputError if there are none."""
    kind, files = list_inputs(uri)
    fs, path = storage.filesystem(uri)
    root = image_root or (uri if fs.isdir(path) else storage.parent(uri))
    source = posixpath.basename(uri.rstrip("/")).split(".")[0] or "input"
    units: list[Unit] = []
    for f in files:
        if kind == "jsonl":
            size = fs.size(storage.filesystem(f)[1])
            _check_first_record(f)
            for start in range(0, size, JSONL_SPLIT_BYTES):
                units.append(Unit("jsonl", f, len(units), root, start, min(start + JSONL_SPLIT_BYTES, size), source))
        elif kind == "parquet":
            groups = _row_groups(f)
            start, rows = 0, 0
            for i, n in enumerate(groups):
                rows += n
                if rows >= PARQUET_SPLIT_ROWS or i == len(groups) - 1:
                    units.append(Unit("parquet", f, len(units), root, start, i + 1, source))
                    start, rows = i + 1, 0
        else:
            units.append(Unit("shard", f, len(units), root, source=source))
    if not units:
        raise InputError(f"{uri} holds no records")
    return units


def _check_first_record(uri: str) -> None:
    """Refuse a .jsonl file whose first record is not a JSON object: it is no manifest (a CSV, a JSON array, a
    binary file), and each of its lines would only be quarantined. A broken line further on is quarantined."""
    fs, path = storage.filesystem(uri)
    with fs.open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    lines = head.split(b"\n")
    n = next((i for i, line in enumerate(lines) if line.strip()), None)
    if n is None or (n == len(lines) - 1 and len(head) == SNIFF_BYTES):
        return   # nothing but blank lines, or a first record longer than we read: the row checks judge it
    record = _parse_line(0, lines[n])
    if record.problem and not record.fields:
        raise InputError(f"{uri} is not a JSONL manifest (one JSON object per line): its first record is unreadable "
                         f"({record.problem[1]})")


def _row_groups(uri: str) -> list[int]:
    import pyarrow.parquet as pq

    fs, path = storage.filesystem(uri)
    try:
        with fs.open(path, "rb") as f:
            meta = pq.ParquetFile(f).metadata
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a bad footer
        raise InputError(f"{uri} is not a readable Parquet file: {err}") from err
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def read_unit(unit: Unit) -> Iterator[Record]:
    """The records of `unit`, in order."""
    return {"jsonl": _read_jsonl, "parquet": _read_parquet, "shard": _read_shard}[unit.kind](unit)


def _read_jsonl(unit: Unit) -> Iterator[Record]:
    fs, path = storage.filesystem(unit.uri)
    with fs.open(path, "rb") as f:
        offset = unit.start
        if unit.start > 0:   # the line that crosses `start` belongs to the unit before
            f.seek(unit.start - 1)
            offset = unit.start - 1 + len(f.readline())
        while offset < unit.end:
            line = f.readline()
            if not line:
                break
            position, offset = offset, offset + len(line)
            if not line.strip():
                continue
            yield _parse_line(position, line)


def _parse_line(position: int, line: bytes) -> Record:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as err:
        raw = line.decode("utf-8", "replace")
        try:   # keep what can be read of the record (its id above all) for the quarantine
            fields = json.loads(raw)
        except json.JSONDecodeError:
            fields = {}
        return Record(position, fields if isinstance(fields, dict) else {}, raw=raw, problem=(
            "caption_not_utf8", f"the line is not valid UTF-8 ({err.reason} at byte {err.start})"))
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as err:
        return Record(position, problem=("record_unreadable", f"not JSON: {err.msg} at column {err.colno}"), raw=text)
    if not isinstance(fields, dict):
        return Record(position, problem=("record_unreadable", f"a JSON {type(fields).__name__}, not an object"),
                      raw=text)
    return Record(position, fields)


def _read_parquet(unit: Unit) -> Iterator[Record]:
    import pyarrow.parquet as pq

    fs, path = storage.filesystem(unit.uri)
    with fs.open(path, "rb") as f:
        pf = pq.ParquetFile(f)
        position = sum(pf.metadata.row_group(i).num_rows for i in range(unit.start))
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=range(unit.start, unit.end)):
            for fields in batch.to_pylist():
                yield Record(position, fields)
                position += 1


def _read_shard(unit: Unit) -> Iterator[Record]:
    """Samples of a tar shard, members grouped by key (the name up to its first dot, as WebDataset does).

    A truncated or corrupt shard ends the stream with one `shard_truncated` record for the sample that was
    being read (if any) plus a problem-only record at position -1 describing the shard; the samples read
    before the damage are kept."""
    fs, path = storage.filesystem(unit.uri)
    position = 0
    key, members = None, {}
    try:
        with fs.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                base = posixpath.basename(info.name)
                k, _, ext = base.partition(".")
                k = posixpath.join(posixpath.dirname(info.name), k)
                if key is not None and k != key:
                    yield _sample(position, key, members)
                    position += 1
                    members = {}
                key = k
                members[ext.lower()] = tar.extractfile(info).read()
    except (tarfile.TarError, EOFError, OSError, ValueError) as err:
        if key is not None:
            yield Record(position, {"id": posixpath.basename(key)}, problem=("shard_truncated", f"{err}"))
        yield Record(-1, problem=("shard_truncated", f"shard {unit.uri} is damaged after {position} sample(s): {err}"
                                  f"{_expected(unit.uri)}"))
        return
    if key is not None:
        yield _sample(position, key, members)


def shard_samples(shard_uri: str) -> int | None:
    """img2dataset's count of the shard's samples (`successes` in the `_stats.json` beside it), None without one."""
    stats = shard_uri.rsplit(".tar", 1)[0] + "_stats.json"
    try:
        return int(json.loads(storage.read_text(stats))["successes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _expected(shard_uri: str) -> str:
    """img2dataset's count of the shard's samples, when its `_stats.json` is beside it."""
    n = shard_samples(shard_uri)
    return "" if n is None else f"; its stats file lists {n} sample(s)"


def _unsafe_name(key: str) -> bool:
    """A member name that is absolute or climbs (`../`): no shard writer makes one. Members are never extracted
    (read into memory by name), but such a name is refused rather than carried into the curated data."""
    return key.startswith("/") or ".." in key.split("/")


def _sample(position: int, key: str, members: dict[str, bytes]) -> Record:
    if _unsafe_name(key):
        return Record(position, {"id": posixpath.basename(key)},
                      problem=("member_name_unsafe", f"member name {key!r} is absolute or leaves the archive"))
    fields: dict = {}
    if "json" in members:
        try:
            meta = json.loads(members["json"].decode("utf-8"))
            if isinstance(meta, dict):
                fields.update(meta)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            return Record(position, {"id": posixpath.basename(key)}, problem=("record_unreadable",
                                                                              f"{key}.json is not JSON: {err}"))
    fields.setdefault("id", fields.get("key") or posixpath.basename(key))
    if "txt" in members:
        try:
            fields["caption"] = members["txt"].decode("utf-8")
        except UnicodeDecodeError as err:
            return Record(position, fields, problem=("caption_not_utf8", f"{key}.txt is not valid UTF-8 "
                                                                         f"({err.reason} at byte {err.start})"))
    ext = next((e for e in IMAGE_EXTENSIONS if e in members), None)
    if ext is None:
        return Record(position, fields, problem=("image_missing", f"no image member ({'/'.join(IMAGE_EXTENSIONS)}) "
                                                                  f"for key {key}"))
    return Record(position, fields, image_bytes=members[ext], member=f"{key}.{ext}")
