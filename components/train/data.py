"""Training data as a stream: rows read on demand from the curated Parquet (or JSONL) files, batched by length.

Nothing holds the corpus. `RowSource` knows only each file's row counts (Parquet footers; one streamed pass
over a JSONL file for its line offsets) and reads the row group or line range a window needs.

The order is a pure function of (seed, epoch, position), so a restarted step resumes exactly where it stopped
from one number, the micro-batches each rank has consumed:
- each epoch visits the primary rows in a seeded order (ShuffledPass): units (Parquet row groups, 20k-line
  JSONL ranges) in random order, taken `shuffle_units` at a time with their rows permuted together;
- consecutive primary rows of that order form windows of `batch_size x window_batches` rows; each window takes the next
  `replay_fraction x` as many text-only replay rows from the replay source, cycling;
- a window's rows are shuffled, sorted by token length and cut into batches, whose order is shuffled again:
  length-grouped batches, so padding stays at a few percent without packing;
- global micro-batch g goes to rank g % world; on each rank DataLoader workers take turns, and DataLoader
  returns their batches in turn, so the order does not depend on the number of workers.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from components.common import records, storage
from components.common.chat import attach_images, caption_conversation
from components.common.languages import caption_prompt

JSONL_UNIT_ROWS = 20_000


class EmptyDataset(ValueError):
    """The training data holds no rows: said before any model is loaded."""


@dataclass(frozen=True)
class Unit:
    file: str
    rows: int
    row_group: int | None = None       # Parquet
    byte_range: tuple[int, int] | None = None  # JSONL: [start, end) of whole lines


def _files(uri: str) -> list[str]:
    fs, path = storage.filesystem(uri)
    if not fs.exists(path):
        raise FileNotFoundError(f"training data {uri} does not exist")
    if fs.isdir(path):
        found = sorted(p for p in fs.find(path) if p.endswith((".parquet", ".jsonl")))
        if not found:
            raise EmptyDataset(f"{uri} holds no .parquet or .jsonl files")
        return [storage.join(uri, p[len(path.rstrip("/")) + 1:]) for p in found]
    return [uri]


def _jsonl_units(uri: str) -> list[Unit]:
    """Line ranges of about JSONL_UNIT_ROWS non-empty lines, found in one streamed pass."""
    fs, path = storage.filesystem(uri)
    units, start, pos, rows = [], 0, 0, 0
    with fs.open(path, "rb") as f:
        for line in f:
            pos += len(line)
            if line.strip():
                rows += 1
            if rows == JSONL_UNIT_ROWS:
                units.append(Unit(uri, rows, byte_range=(start, pos)))
                start, rows = pos, 0
    if rows:
        units.append(Unit(uri, rows, byte_range=(start, pos)))
    return units


class RowSource:
    """Rows of a Parquet file, a JSONL file or a folder of them, addressed by (unit, offset) and read one unit
    at a time (the last few kept)."""

    def __init__(self, uri: str, columns: list[str] | None = None, cache_units: int = 18):
        import pyarrow.parquet as pq

        self.uri, self.columns = uri, columns
        self.units: list[Unit] = []
        for file in _files(uri):
            if file.endswith(".parquet"):
                fs, path = storage.filesystem(file)
                with fs.open(path, "rb") as f:
                    meta = pq.ParquetFile(f).metadata
                self.units += [Unit(file, meta.row_group(i).num_rows, row_group=i)
                               for i in range(meta.num_row_groups) if meta.row_group(i).num_rows]
            else:
                self.units += _jsonl_units(file)
        self.rows = sum(u.rows for u in self.units)
        self._cache: OrderedDict[int, list[dict]] = OrderedDict()
        self._cache_units = cache_units
        self._passes: dict[tuple[str, int], ShuffledPass] = {}

    def __len__(self) -> int:
        return self.rows

    def unit_rows(self, i: int) -> list[dict]:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        unit = self.units[i]
        fs, path = storage.filesystem(unit.file)
        if unit.row_group is not None:
            import pyarrow.parquet as pq

            with fs.open(path, "rb") as f:
                table = pq.ParquetFile(f).read_row_group(unit.row_group, columns=self.columns)
            rows = table.to_pylist()
        else:
            start, end = unit.byte_range
            with fs.open(path, "rb") as f:
                f.seek(start)
                data = f.read(end - start)
            try:
                rows = [json.loads(line) for line in data.splitlines() if line.strip()]
            except json.JSONDecodeError as err:
                raise ValueError(f"{unit.file}: a line is not JSON ({err})") from None
        self._cache[i] = rows
        while len(self._cache) > self._cache_units:
            self._cache.popitem(last=False)
        return rows

    def read(self, seed: str, start: int, count: int, group_units: int) -> list[dict]:
        """`count` rows from position `start` of this source's shuffled order; position p falls in pass p // rows
        (an epoch), each pass in its own order (ShuffledPass)."""
        out = []
        for pos in range(start, start + count):
            cycle, p = divmod(pos, self.rows)
            order = self._passes.get((seed, cycle))
            if order is None:
                order = self._passes[(seed, cycle)] = ShuffledPass(self, f"{seed}/{cycle}", group_units)
                while len(self._passes) > 2:
                    self._passes.pop(next(iter(self._passes)))
            unit, offset = order.locate(p)
            out.append(self.unit_rows(unit)[offset])
        return out


class ShuffledPass:
    """One pass over a source in a seeded random order, addressable by position without reading anything.

    The units (row groups, line ranges) are put in a random order and taken `group_units` at a time; the rows of
    each group are permuted together. Any window of positions therefore mixes rows of many units (a shard of one
    source or language does not become a run of batches), while each unit is read once per pass and only a
    group's units are held at a time."""

    def __init__(self, source: RowSource, seed: str, group_units: int):
        self.source, self.seed = source, seed
        order = list(range(len(source.units)))
        random.Random(f"{seed}/units").shuffle(order)
        self.groups = [order[i:i + group_units] for i in range(0, len(order), group_units)]
        self.bounds = _cumulative([sum(source.units[u].rows for u in g) for g in self.groups])
        self._perm: tuple[int, object, list[int]] | None = None

    def locate(self, pos: int) -> tuple[int, int]:
        """(unit index, row within it) of position `pos` of the pass."""
        g = _locate(self.bounds, pos)
        if self._perm is None or self._perm[0] != g:
            units = self.groups[g]
            size = self.bounds[g + 1] - self.bounds[g]
            rng = np.random.default_rng(int(hashlib.sha256(f"{self.seed}/{g}".encode()).hexdigest()[:16], 16))
            self._perm = (g, rng.permutation(size), _cumulative([self.source.units[u].rows for u in units]))
        _, perm, unit_bounds = self._perm
        j = int(perm[pos - self.bounds[g]])
        k = _locate(unit_bounds, j)
        return self.groups[g][k], j - unit_bounds[k]


def _cumulative(sizes: list[int]) -> list[int]:
    return list(accumulate(sizes, initial=0))


def _locate(bounds: list[int], pos: int) -> int:
    """The index of the range [bounds[k], bounds[k + 1]) holding `pos`."""
    return bisect_right(bounds, pos) - 1


@dataclass(frozen=True)
class Layout:
    """Where every micro-batch comes from, computed from row counts alone."""
    rows: int               # primary rows per epoch
    batch_size: int
    window_batches: int
    replay_fraction: float = 0.0
    has_replay: bool = False

    @property
    def window_rows(self) -> int:
        return self.batch_size * self.window_batches

    @property
    def windows_per_epoch(self) -> int:
        return math.ceil(self.rows / self.window_rows)

    def replay_rows(self, primary: int) -> int:
        return round(primary * self.replay_fraction) if self.has_replay else 0

    def window_size(self, w: int) -> tuple[int, int]:
        """(primary rows, replay rows) of window w of an epoch."""
        primary = min(self.window_rows, self.rows - w * self.window_rows)
        return primary, self.replay_rows(primary)

    def batches_in_window(self, w: int) -> int:
        return math.ceil(sum(self.window_size(w)) / self.batch_size)

    @property
    def batches_per_epoch(self) -> int:
        full = self.batches_in_window(0)
        last = self.windows_per_epoch - 1
        return full * last + self.batches_in_window(last)

    def locate(self, g: int) -> tuple[int, int, int]:
        """(epoch, window, batch within window) of global micro-batch g."""
        epoch, rest = divmod(g, self.batches_per_epoch)
        full = self.batches_in_window(0)
        w = min(rest // full, self.windows_per_epoch - 1)
        return epoch, w, rest - w * full


def caption_sample(row: dict) -> list[dict]:
    image = records.load_image(row["image"], row.get("member"))
    return attach_images(caption_conversation(row["caption"], caption_prompt(row["lang"])), [image])


def chat_messages(row: dict) -> dict:
    """A conversation row in the messages format: curated Parquet (messages as JSON), JSONL in the messages
    format, or LLaVA-style `conversations` (MAmmoTH-VL), converted on read."""
    if "messages" not in row:
        return records.llava_to_messages(row)
    if isinstance(row["messages"], str):
        return {**row, "messages": json.loads(row["messages"])}
    return row


def chat_sample(row: dict, manifest_uri: str) -> list[dict]:
    row = chat_messages(row)
    images = [records.load_image(*records.split_member(records.resolve(manifest_uri, p)))
              for p in row.get("images") or []]
    return attach_images(row["messages"], images)


def _text_of(messages: list[dict]) -> str:
    parts = []
    for m in messages:
        content = m["content"]
        parts += [content] if isinstance(content, str) else [c.get("text", "") for c in content]
    return "\n".join(parts)


def _check_kind(kind: str, uri: str, row: dict) -> None:
    """Refuse data of the other stage (conversations given to CPT, captions to SFT), seen in its first row."""
    needed = ["image", "caption", "lang"] if kind == "captions" else []
    missing = [k for k in needed if k not in row]
    if kind == "conversations" and "messages" not in row and "conversations" not in row:
        missing = ["messages (or LLaVA-style conversations)"]
    if missing:
        raise ValueError(f"{uri} is not {kind} data: its rows have no {', '.join(missing)} (the first has "
                         f"{sorted(row)})")


def sample_sizes(rows: list[dict], count_tokens: Callable[[list[str]], list[int]]) -> tuple[list[int], list[int]]:
    """(text tokens, images) of each row as a training sample: a caption with its language's instruction (rows
    of `_kind` captions) or a conversation's text. What batches are grouped by, and what `seavl check` predicts
    a stage's cost from."""
    texts, images = [], []
    for r in rows:
        if r["_kind"] == "captions":
            texts.append(caption_prompt(r["lang"]) + "\n" + r["caption"])
            images.append(1)
        else:
            conv = chat_messages(r)
            texts.append(_text_of(conv["messages"]))
            images.append(len(conv.get("images") or []))
    return count_tokens(texts), images


class Stream:
    """Samples of one stage: the primary source (captions or conversations) plus optional replay, batched by
    length. `window(epoch, w)` returns that window's batches as lists of rows; `sample(row)` turns a row into a
    conversation with its images loaded."""

    CAPTION_COLUMNS = ["image", "member", "caption", "lang"]

    def __init__(self, kind: str, uri: str, batch_size: int, *, replay_uri: str = "", replay_fraction: float = 0.0,
                 window_batches: int = 64, shuffle_units: int = 16, seed: int = 0, image_tokens: int = 256,
                 count_tokens: Callable[[list[str]], list[int]] | None = None):
        if kind not in ("captions", "conversations"):
            raise ValueError(f"unknown training data kind {kind!r}: 'captions' or 'conversations'")
        if not 0 <= replay_fraction <= 1:
            raise ValueError(f"replay fraction must be within [0, 1], got {replay_fraction}")
        self.kind, self.uri, self.seed, self.shuffle_units = kind, uri, seed, shuffle_units
        cache = shuffle_units + 2
        self.primary = RowSource(uri, self.CAPTION_COLUMNS if kind == "captions" else None, cache_units=cache)
        if not len(self.primary):
            raise EmptyDataset(f"{uri} holds no rows to train on")
        _check_kind(kind, uri, self.primary.unit_rows(0)[0])
        self.replay = RowSource(replay_uri, cache_units=cache) if replay_uri and replay_fraction > 0 else None
        if self.replay is not None and not len(self.replay):
            raise EmptyDataset(f"replay data {replay_uri} holds no rows")
        self.layout = Layout(len(self.primary), batch_size, window_batches, replay_fraction,
                             has_replay=self.replay is not None)
        self.image_tokens = image_tokens
        self.count_tokens = count_tokens or (lambda texts: [max(1, len(t.encode()) // 4) for t in texts])

    def __len__(self) -> int:
        return len(self.primary) + (self.layout.replay_rows(len(self.primary)) if self.replay else 0)

    def window(self, epoch: int, w: int) -> list[list[dict]]:
        lay = self.layout
        n_primary, n_replay = lay.window_size(w)
        start = epoch * lay.rows + w * lay.window_rows
        rows = [{**r, "_kind": self.kind} for r in
                self.primary.read(f"{self.seed}/primary", start, n_primary, self.shuffle_units)]
        if n_replay:
            start = (epoch * lay.windows_per_epoch + w) * lay.replay_rows(lay.window_rows)
            rows += [{**r, "_kind": "replay"}
                     for r in self.replay.read(f"{self.seed}/replay", start, n_replay, self.shuffle_units)]
        rng = random.Random(f"{self.seed}/window/{epoch}/{w}")
        rng.shuffle(rows)
        lengths = self.token_lengths(rows)
        ranked = [rows[i] for i in sorted(range(len(rows)), key=lambda i: lengths[i])]
        batches = [ranked[i:i + lay.batch_size] for i in range(0, len(ranked), lay.batch_size)]
        rng.shuffle(batches)
        return batches

    def token_lengths(self, rows: list[dict]) -> list[int]:
        return [t + n * self.image_tokens for t, n in zip(*sample_sizes(rows, self.count_tokens), strict=True)]

    def sample(self, row: dict) -> list[dict]:
        if row["_kind"] == "captions":
            return caption_sample(row)
        return chat_sample(row, self.uri if row["_kind"] == "conversations" else self.replay.uri)


def micro_batches(stream: Stream, rank: int, world: int, start: int, worker: int = 0, workers: int = 1
                  ) -> Iterator[tuple[int, list[dict]]]:
    """(k, rows) for this rank's micro-batches k = start, start+1, ... that fall to `worker`; endless."""
    cached: tuple[tuple[int, int], list[list[dict]]] | None = None
    k = start + worker
    while True:
        epoch, w, j = stream.layout.locate(k * world + rank)
        if cached is None or cached[0] != (epoch, w):
            cached = ((epoch, w), stream.window(epoch, w))
        yield k, cached[1][j]
        k += workers


def iterable(stream: Stream, collate: Callable[[list], dict], rank: int, world: int, start: int):
    """A torch IterableDataset of collated micro-batches for this rank from micro-batch `start` on; with
    DataLoader workers, worker i takes every n-th batch and DataLoader interleaves them back in order."""
    from torch.utils.data import IterableDataset, get_worker_info

    class _Batches(IterableDataset):
        def __iter__(self):
            info = get_worker_info()
            worker, workers = (info.id, info.num_workers) if info else (0, 1)
            for k, rows in micro_batches(stream, rank, world, start, worker, workers):
                batch = collate([stream.sample(r) for r in rows])
                batch["micro_batch"] = k
                yield batch

    return _Batches()
