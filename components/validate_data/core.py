"""validate_data: curate and validate a caption corpus (CPT) or an instruction set (SFT) at any size.

Three pure stages, one code path for a laptop and a cluster:
  plan(input)            list the input's units (manifest ranges, row groups, shards) and split them in groups
  check_group(group)     stream each unit, check every row; write candidates + quarantine (Parquet) per unit
  merge(groups)          deduplicate across groups (key columns only), run the dataset expectations, write
                         DIR/curated/ (Parquet), DIR/quarantine.parquet, DIR/metrics.json, Data Docs, a report
Locally `validate()` runs the groups in worker processes; in the pipeline `dsl.ParallelFor` runs them as tasks.
A broken row is quarantined with its reason; only dataset-level expectations raise `DataValidationError`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from components.common import records, storage
from components.common.languages import LANGUAGES
from components.common.tracking import Logged
from components.validate_data import dedupe, schema
from components.validate_data.schema import ORDINAL, PAIR_KEY, UNIT
from components.validate_data.sources import InputError, Unit, plan_units, read_unit

log = logging.getLogger(__name__)
WRITE_ROWS = 20_000   # rows buffered before a Parquet row group is written
SAMPLE_ROWS = 10_000  # curated rows the schema expectations look at


class ValidateConfig(BaseModel):
    """What `seavl validate --config FILE` and the pipeline's parameters set. Defaults suit the release corpus."""
    model_config = ConfigDict(extra="forbid")

    kind: str = Field("auto", description="captions | conversations | auto (conversations when records have "
                                          "`messages` or `conversations`)")
    languages: str = Field(",".join(LANGUAGES), description="comma-separated ISO 639-1 codes accepted")
    min_caption_chars: int = 1
    max_caption_chars: int = 1000
    min_side: int = Field(64, description="smallest image side in pixels (Gemma 3 upsamples to 896)")
    max_aspect: float = Field(3.0, description="longest/shortest side; beyond it Gemma's square crop loses most")
    max_pixels: int = Field(89_478_485, description="decompression-bomb limit (Pillow's default)")
    lang_min_chars: int = Field(20, description="shorter text is too little to identify its language")
    lang_min_confidence: float = Field(0.6, description="confidence the detector needs to overrule a declared lang")
    lang_high_accuracy: bool = Field(False, description="lingua's high-accuracy mode on every row (~9x slower)")
    lang_extra: str = Field("en", description="languages the detector also weighs so that text in them is named "
                                              "(and set aside unless accepted); each one slows it")
    min_sea_score: float = Field(0.3, description="Southeast-Asian relevance threshold: 0.39 is a caption in a "
                                                  "language of the region, 0.63 one term such as a place or dish")
    clip_model: str = Field("", description="transformers CLIP folder for image-text similarity; empty: none")
    min_clip_score: float = Field(-1.0, description="rows below this image-text cosine are set aside")
    near_duplicate_bits: int = Field(3, description="pHash bits two images may differ by and be near duplicates; "
                                                    "-1 turns it off")
    eval_sets: str = Field("", description="comma-separated evaluation suites (.yaml) or item files whose images "
                                           "must not be trained on")
    image_root: str = Field("", description="images must lie under this folder/prefix (default: the input's)")
    max_conversation_chars: int = 32_000
    sample_size: int = Field(0, description="conversations: keep a seeded selection of this many (0: all)")
    mixture: str = Field("", description="conversations: source=weight,... for the selection (empty: as found)")
    seed: int = 0
    max_quarantined_fraction: float = 0.10
    min_language_share: float = Field(0.01, description="each requested language's least share of curated rows")
    examples: int = Field(5, description="how many example rows an error quotes")

    @property
    def language_list(self) -> list[str]:
        return records.split_list(self.languages)

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]


class DataValidationError(ValueError):
    """A critical dataset expectation failed; the message names it and quotes example rows. `logged` holds what
    the step's run still records: every expectation's result, the Data Docs, the report."""

    def __init__(self, message: str, logged: Logged):
        super().__init__(message)
        self.logged = logged


@dataclass
class Outputs:
    """Where merge writes: the CLI puts everything under one folder; the component maps KFP artifacts."""
    curated: Path
    quarantine: Path
    metrics: Path
    data_docs: Path
    report: Path

    @staticmethod
    def under(root: Path) -> Outputs:
        root = Path(root)
        return Outputs(root / "curated", root / "quarantine.parquet", root / "metrics.json", root / "data_docs",
                       root / "report.html")


@dataclass
class ValidationReport:
    kind: str
    rows_in: int
    rows_curated: int
    rows_quarantined: int
    rows_not_selected: int
    fingerprint: str
    reasons: dict[str, int]
    per_language: dict[str, int]
    per_source: dict[str, int]
    shards: int
    shards_damaged: list[str]
    seconds: float
    results: list[dict] = field(default_factory=list)

    @property
    def failed_critical(self) -> list[dict]:
        return [r for r in self.results if r["critical"] and not r["success"]]

    def metrics(self) -> dict[str, float]:
        out = {"data/rows_in": self.rows_in, "data/rows_curated": self.rows_curated,
               "data/rows_quarantined": self.rows_quarantined, "data/rows_not_selected": self.rows_not_selected,
               "data/quarantined_fraction": self.rows_quarantined / max(self.rows_in, 1),
               "data/units": self.shards, "data/shards_damaged": len(self.shards_damaged),
               "data/rows_per_second": self.rows_in / max(self.seconds, 1e-9),
               "data/expectations_evaluated": len(self.results),
               "data/expectations_failed": sum(not r["success"] for r in self.results),
               "data/critical_failed": len(self.failed_critical)}
        out.update({f"data/quarantined/{k}": v for k, v in self.reasons.items()})
        out.update({f"data/rows/{k}": v for k, v in self.per_language.items()})
        return out

    def to_json(self) -> str:
        return json.dumps(dict(self.__dict__.items()) | {"metrics": self.metrics()}, indent=2,
                          ensure_ascii=False, default=str)

    def logged(self, input_uri: str, cfg: ValidateConfig, out: Outputs) -> Logged:
        """What the step's run records: config, counts, every expectation's result, Data Docs and report."""
        import tempfile

        top = Path(tempfile.mkdtemp())   # the run's top folder: validation.json (every figure), report.html
        for src, name in ((out.metrics, "validation.json"), (out.report, "report.html")):
            if src.exists():
                shutil.copy(src, top / name)
        artifacts = {"": top}
        if out.data_docs.exists():
            artifacts["data_docs"] = out.data_docs
        return Logged(params={"input": input_uri, **cfg.model_dump()}, pipeline_metrics=self.metrics(),
                      tags={"data.fingerprint": self.fingerprint} if self.fingerprint else {}, artifacts=artifacts)


# --- plan ----------------------------------------------------------------------------------------------------

def detect_kind(units: list[Unit], cfg: ValidateConfig) -> str:
    if cfg.kind in ("captions", "conversations"):
        return cfg.kind
    if cfg.kind != "auto":
        raise ValueError(f"kind must be captions, conversations or auto, got {cfg.kind!r}")
    for unit in units[:3]:
        for record in read_unit(unit):
            if record.fields:
                return "conversations" if {"messages", "conversations"} & set(record.fields) else "captions"
    return "captions"


def plan(input_uri: str, cfg: ValidateConfig, groups: int) -> tuple[str, list[list[Unit]]]:
    """(kind, units split into at most `groups` groups of neighbouring units). Raises InputError."""
    units = plan_units(input_uri, cfg.image_root)
    kind = detect_kind(units, cfg)
    n = max(1, min(groups, len(units)))
    size = -(-len(units) // n)
    return kind, [units[i:i + size] for i in range(0, len(units), size)]


def task_groups(cfg: ValidateConfig, groups: list[list[Unit]], fingerprint: str) -> list[str]:
    """Each group as one JSON string carrying the settings and the input's content fingerprint: what a
    pipeline's check task receives (its cache key, so a changed input is checked again)."""
    config = json.loads(cfg.model_dump_json())
    return [json.dumps({"config": config, "units": [json.loads(u.to_json()) for u in g], "fingerprint": fingerprint})
            for g in groups]


def check_task_group(group: str, work_dir: Path) -> dict:
    """check_group for one of task_groups' strings; keeps the settings in `work_dir/config.json` for merge."""
    spec = json.loads(group)
    cfg = ValidateConfig(**spec["config"])
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    (Path(work_dir) / "config.json").write_text(cfg.model_dump_json())
    return check_group([Unit(**u) for u in spec["units"]], cfg.kind, cfg, Path(work_dir))


def group_config(work_dir: Path) -> ValidateConfig:
    return ValidateConfig.model_validate_json((Path(work_dir) / "config.json").read_text())


# --- check ---------------------------------------------------------------------------------------------------

class _Writer:
    """Rows to a Parquet file in row groups of WRITE_ROWS, memory bounded; no file when there are no rows."""

    def __init__(self, path: Path, arrow_schema, always: bool = False):
        self.path, self.schema, self.rows, self.writer, self.count = path, arrow_schema, [], None, 0
        self.always = always  # write the file (empty) even without rows

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.count += 1
        if len(self.rows) >= WRITE_ROWS:
            self.flush()

    def add_table(self, table) -> None:
        """Rows already in an arrow table of this schema (written as they are)."""
        self.flush()
        if table.num_rows:
            self._open()
            self.writer.write_table(table)
            self.count += table.num_rows

    def _open(self) -> None:
        import pyarrow.parquet as pq

        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(str(self.path) + ".partial", self.schema)

    def flush(self) -> None:
        import pyarrow as pa

        if not self.rows:
            return
        table = pa.Table.from_pylist(self.rows, schema=self.schema)
        self._open()
        self.writer.write_table(table)
        self.rows = []

    def close(self) -> None:
        self.flush()
        if self.always:
            self._open()
        if self.writer is not None:
            self.writer.close()
            Path(str(self.path) + ".partial").replace(self.path)  # complete files only


def candidate_schema(kind: str):
    import pyarrow as pa

    base = schema.CAPTIONS if kind == "captions" else schema.CONVERSATIONS
    return base.append(pa.field(ORDINAL, pa.int64())).append(pa.field(UNIT, pa.string())).append(
        pa.field(PAIR_KEY, pa.string()))


def check_group(units: list[Unit], kind: str, cfg: ValidateConfig, work_dir: Path, progress: bool = False) -> dict:
    """Check every record of `units`; writes `work_dir/candidates-<unit>.parquet`, `quarantine-<unit>.parquet`
    and, last, `stats.json` (its presence marks the group complete, so a rerun skips it). Returns the stats."""
    from tqdm import tqdm

    from components.validate_data.rows import RowChecker, quarantine_row

    work_dir = Path(work_dir)
    done = work_dir / "stats.json"
    if done.exists():
        return json.loads(done.read_text())
    work_dir.mkdir(parents=True, exist_ok=True)
    stats = {"units": [], "rows_in": 0, "reasons": Counter(), "damaged": []}
    bar = tqdm(total=len(units), unit="unit", disable=not (progress and sys.stderr.isatty()), desc="validate")
    scorer = _clip(cfg) if kind == "captions" and cfg.clip_model else None   # loaded once per group
    for unit in units:
        checker = RowChecker(cfg, unit)
        check = checker.caption if kind == "captions" else checker.conversation
        good = _Writer(work_dir / f"candidates-{unit.index:06d}.parquet", candidate_schema(kind))
        bad = _Writer(work_dir / f"quarantine-{unit.index:06d}.parquet", schema.QUARANTINE)
        pending: list[tuple[dict, bytes]] = []
        for n, record in enumerate(read_unit(unit)):
            if record.position < 0:               # a damaged shard: reported, its readable samples kept
                stats["damaged"].append(record.problem[1])
                continue
            stats["rows_in"] += 1
            verdict = check(record, (unit.index << 32) + n)
            if verdict.reject is not None:
                stats["reasons"][verdict.reject.reason] += 1
                bad.add(quarantine_row(record, unit, verdict.reject))
            elif scorer is not None:
                pending.append((verdict.row, verdict.image))
                if len(pending) >= 32:
                    _score(scorer, pending, cfg, good, bad, stats, unit)
            else:
                good.add(verdict.row)
        if pending:
            _score(scorer, pending, cfg, good, bad, stats, unit)
        good.close()
        bad.close()
        stats["units"].append(unit.uri)
        bar.update(1)
    bar.close()
    stats["reasons"] = dict(stats["reasons"])
    done.write_text(json.dumps(stats))
    return stats


def _clip(cfg: ValidateConfig):
    from components.validate_data.checks import ClipScorer

    return ClipScorer(cfg.clip_model)


def _score(scorer, rows: list[tuple[dict, bytes]], cfg, good: _Writer, bad: _Writer, stats: dict, unit: Unit) -> None:
    """Image-text similarity for a batch of candidate rows; those below the threshold go to quarantine."""
    import io

    from PIL import Image

    images = [Image.open(io.BytesIO(data)) for _, data in rows]
    for (row, _), score in zip(rows, scorer.scores(images, [r["caption"] for r, _ in rows]), strict=False):
        row["clip_score"] = float(score)
        if score < cfg.min_clip_score:
            stats["reasons"]["low_clip_score"] += 1
            bad.add(_quarantined(row, unit.uri, row[ORDINAL], "low_clip_score",
                                 f"image-text cosine {score:.3f} < {cfg.min_clip_score}",
                                 {"caption": row["caption"], "image": row["image"]}))
        else:
            good.add(row)
    rows.clear()


# --- merge ---------------------------------------------------------------------------------------------------

KEY_COLUMNS = {"captions": ["id", "lang", "source", "sea_score", "sha256", "phash", ORDINAL, PAIR_KEY],
               "conversations": ["id", "lang", "source", ORDINAL, PAIR_KEY]}


def _candidate_files(group_dirs: list[Path]) -> list[Path]:
    return sorted((p for d in group_dirs for p in Path(d).glob("candidates-*.parquet")), key=lambda p: p.name)


def _keys(files: list[Path], kind: str, with_sha256: bool = True):
    import pandas as pd
    import pyarrow.parquet as pq

    columns = [c for c in KEY_COLUMNS[kind] if with_sha256 or c != "sha256"]   # sha256: only against eval sets
    frames = [pq.read_table(f, columns=columns).to_pandas() for f in files]
    if not frames:
        return pd.DataFrame({c: [] for c in columns})
    return pd.concat(frames, ignore_index=True).sort_values(ORDINAL, ignore_index=True)


def decide(keys, kind: str, cfg: ValidateConfig, eval_hashes: tuple[set, list]) -> tuple[dict, dict]:
    """Rows rejected across the corpus: {ordinal: (reason, detail)}, and {ordinal} not selected. The first
    row of a set of duplicates (in reading order) is kept."""
    import numpy as np

    rejected: dict[int, tuple[str, str]] = {}
    alive = np.ones(len(keys), dtype=bool)
    ordinals = keys[ORDINAL].to_numpy()
    ids = keys["id"]   # an arrow-backed column: read one value at a time for details, never as Python objects

    def reject(mask, reason, detail):
        for i in np.flatnonzero(mask & alive):
            rejected[int(ordinals[i])] = (reason, detail(i))
        alive[mask] = False

    if kind == "captions" and len(keys):
        hashes = dedupe.parse_phash(keys["phash"])
        eval_sha, eval_phash = eval_hashes
        if eval_sha or eval_phash:
            exact = keys["sha256"].isin(eval_sha).to_numpy()
            reject(exact, "eval_overlap", lambda i: "the same image bytes as an evaluation image")
            ref = np.array(eval_phash, dtype=np.uint64)
            near = dedupe.near_any(hashes, ref, max(cfg.near_duplicate_bits, 0))
            reject(near >= 0, "eval_overlap",
                   lambda i: f"within {cfg.near_duplicate_bits} pHash bits of an evaluation image")
    dup_id = ids.duplicated().to_numpy() & alive
    first_id = keys.loc[~ids.duplicated(), ["id", ORDINAL]].set_index("id")[ORDINAL] if dup_id.any() else {}
    reject(dup_id, "duplicate_id", lambda i: f"id {schema.cut(ids.iat[i], 80)!r} first seen at row ordinal "
                                             f"{int(first_id[ids.iat[i]])}")
    live = keys[alive]
    dup = np.zeros(len(keys), dtype=bool)
    dup[np.flatnonzero(alive)[live[PAIR_KEY].duplicated().to_numpy()]] = True
    reject(dup, "duplicate", lambda i: "an earlier row has the same image and caption")
    if kind == "captions" and cfg.near_duplicate_bits >= 0 and alive.any():
        index = np.flatnonzero(alive)
        langs = keys["lang"].to_numpy()[index]
        _, lang_codes = np.unique(langs.astype(str), return_inverse=True)
        near = dedupe.earliest_near(hashes[index], lang_codes, cfg.near_duplicate_bits)
        mask = np.zeros(len(keys), dtype=bool)
        mask[index[near >= 0]] = True
        first = dict(zip(index[near >= 0], index[near[near >= 0]], strict=False))
        reject(mask, "near_duplicate", lambda i: f"image within {cfg.near_duplicate_bits} pHash bits of row "
                                                 f"{schema.cut(ids.iat[first[i]], 80)!r} (same language)")
    not_selected = set()
    if kind == "conversations" and cfg.sample_size > 0:
        not_selected = select(keys[alive], cfg)
    return rejected, not_selected


def select(keys, cfg: ValidateConfig) -> set[int]:
    """Ordinals left out of a seeded selection of `cfg.sample_size` rows with the stated source mixture: each
    source's rows are ranked by a hash of (seed, id) and the first of each source's quota kept, so the same
    seed and data give the same selection on any number of workers."""
    import numpy as np

    rank = np.array([int.from_bytes(hashlib.blake2b(f"{cfg.seed}:{i}".encode(), digest_size=8).digest(), "big")
                     for i in keys["id"]], dtype=np.uint64)
    frame = keys.assign(_rank=rank).sort_values("_rank")
    if cfg.mixture:
        weights = {k.strip(): float(v) for k, v in (p.split("=") for p in records.split_list(cfg.mixture))}
        unknown = set(weights) - set(frame["source"])
        if unknown:
            raise InputError(f"mixture names source(s) {sorted(unknown)} that the data does not have; "
                             f"sources: {sorted(set(frame['source']))}")
        total = sum(weights.values())
        keep = [frame[frame["source"] == s].head(round(cfg.sample_size * w / total)) for s, w in weights.items()]
        kept = set().union(*(set(k[ORDINAL]) for k in keep))
    else:
        kept = set(frame[ORDINAL].head(cfg.sample_size))
    return set(frame[ORDINAL]) - kept


def _item_files(uris: list[str]) -> list[str]:
    """The item files named, a folder standing for every .jsonl/.parquet file under it."""
    files = []
    for uri in uris:
        fs, path = storage.filesystem(uri)
        if not fs.exists(path):
            raise InputError(f"evaluation set {uri} does not exist")
        if fs.isdir(path):
            files += [storage.join(uri, p[len(path.rstrip("/")) + 1:]) for p in sorted(fs.find(path))
                      if p.endswith((".jsonl", ".parquet"))]
        else:
            files.append(uri)
    return files


def eval_image_hashes(uris: list[str]) -> tuple[set, list]:
    """(sha256 set, pHash list) of every image in the evaluation sets: SEA-HELM suites (.yaml: every image any
    of its tasks shows a model) or item files (`image`/`images` fields: paths relative to the file, or Hugging
    Face image structs with `bytes`)."""
    import io

    import imagehash
    from PIL import Image

    shas, phashes = set(), []

    def add(data: bytes) -> None:
        sha = hashlib.sha256(data).hexdigest()
        if sha not in shas:   # an image shown by several tasks or languages is compared once
            shas.add(sha)
            phashes.append(int(str(imagehash.phash(Image.open(io.BytesIO(data)))), 16))

    suites = [u for u in uris if u.endswith((".yaml", ".yml")) or storage.exists(storage.join(u, "suite.yaml"))]
    if suites:
        from components.evaluate.seahelm.suite import load_suite

        for uri in suites:
            for data in load_suite(uri).images():
                add(data)
    for uri in _item_files([u for u in uris if u not in suites]):
        for item in records.iter_rows(uri):
            refs = item.get("images")
            refs = list(refs) if refs is not None else ([item["image"]] if item.get("image") is not None else [])
            for ref in refs:
                add(ref["bytes"] if isinstance(ref, dict) else storage.read_bytes(records.resolve(uri, ref)))
    return shas, phashes


def merge(input_uri: str, kind: str, group_dirs: list[Path], out: Outputs, cfg: ValidateConfig,
          started: float | None = None) -> ValidationReport:
    """Deduplicate across groups, write the outputs, run the dataset expectations. Raises DataValidationError
    (after writing everything) when a critical expectation fails."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    started = started or time.time()
    stats = [json.loads((Path(d) / "stats.json").read_text()) for d in group_dirs]
    # a record cut off by a damaged shard was never read whole: an input of only those holds nothing to curate
    whole = sum(s["rows_in"] - s["reasons"].get("shard_truncated", 0) for s in stats)
    if not whole:
        damaged = [d for s in stats for d in s["damaged"]]
        raise InputError(f"{input_uri} holds no records" + (f": {'; '.join(damaged[:3])}" if damaged else ""))
    files = _candidate_files(group_dirs)
    eval_hashes = eval_image_hashes(records.split_list(cfg.eval_sets)) if cfg.eval_sets else (set(), [])
    keys = _keys(files, kind, with_sha256=bool(eval_hashes[0]))
    rejected, not_selected = decide(keys, kind, cfg, eval_hashes)

    target = schema.CAPTIONS if kind == "captions" else schema.CONVERSATIONS
    if out.curated.exists():
        shutil.rmtree(out.curated)
    out.curated.mkdir(parents=True)
    quarantine, row_ids = _Writer(out.quarantine, schema.QUARANTINE, always=True), []
    for d in group_dirs:
        for f in sorted(Path(d).glob("quarantine-*.parquet")):
            for batch in pq.ParquetFile(f).iter_batches(WRITE_ROWS):
                for row in batch.to_pylist():
                    quarantine.add(row)
                    if row["id"] is not None:
                        row_ids.append(row["id"])
    per_language, per_source, sample = Counter(), Counter(), []
    rows_curated = 0
    dropped = np.fromiter(list(rejected) + list(not_selected), dtype=np.int64)
    for f in files:   # whole batches through pyarrow: the rows that stay are never turned into Python objects
        writer = _Writer(out.curated / f"part-{f.stem.split('-')[1]}.parquet", target)
        for batch in pq.ParquetFile(f).iter_batches(WRITE_ROWS):
            ordinals = batch.column(ORDINAL).to_numpy()
            drop = np.isin(ordinals, dropped)
            kept = pa.Table.from_batches([batch.filter(pa.array(~drop))]).select(target.names).cast(target)
            writer.add_table(kept)
            rows_curated += kept.num_rows
            for counter, column in ((per_language, "lang"), (per_source, "source")):
                for item in pc.value_counts(kept.column(column).fill_null("?")).to_pylist():
                    counter[item["values"]] += item["counts"]
            if len(sample) < SAMPLE_ROWS:
                sample += kept.slice(0, SAMPLE_ROWS - len(sample)).to_pylist()
            for row in batch.filter(pa.array(drop)).to_pylist():
                ordinal = row.pop(ORDINAL)
                unit, _ = row.pop(UNIT), row.pop(PAIR_KEY)
                if ordinal in rejected:
                    quarantine.add(_quarantined(row, unit, ordinal, *rejected[ordinal], row))
        writer.close()
    quarantine.close()
    reasons = Counter()
    for s in stats:
        reasons.update(s["reasons"])
    reasons.update(r for r, _ in rejected.values())
    report = ValidationReport(
        kind=kind, rows_in=sum(s["rows_in"] for s in stats), rows_curated=rows_curated,
        rows_quarantined=sum(reasons.values()), rows_not_selected=len(not_selected),
        fingerprint=storage.fingerprint(str(out.curated)) if rows_curated else "",
        reasons=dict(reasons.most_common()), per_language=dict(sorted(per_language.items())),
        per_source=dict(per_source.most_common()), shards=sum(len(s["units"]) for s in stats),
        shards_damaged=[d for s in stats for d in s["damaged"]], seconds=time.time() - started)
    from components.validate_data import report as reporting

    report.results = reporting.run_expectations(report, sample, ids_in_both(keys, rejected, not_selected, row_ids),
                                                out, cfg, target.names)
    out.metrics.write_text(report.to_json(), encoding="utf-8")
    reporting.write_html(report, keys, out, cfg)
    if report.failed_critical:
        raise DataValidationError(reporting.failure_message(report, out, cfg), report.logged(input_uri, cfg, out))
    log.info("validated %s: %d rows in, %d curated, %d quarantined", input_uri, report.rows_in, report.rows_curated,
             report.rows_quarantined)
    return report


def ids_in_both(keys, rejected: dict, not_selected: set, row_level_ids: list) -> int:
    """Ids that name one input row yet appear in both outputs (an id shared by several input rows is a
    duplicate id, reported as such, not a row written twice). `row_level_ids`: ids quarantined by row checks."""
    import pandas as pd

    quarantined = set(row_level_ids) | {i for o, i in zip(keys[ORDINAL], keys["id"], strict=False) if o in rejected}
    kept = keys.loc[~keys[ORDINAL].isin(set(rejected) | not_selected), "id"]
    both = kept[kept.isin(quarantined)]
    if both.empty:
        return 0
    counts = pd.concat([keys["id"], pd.Series(row_level_ids, dtype=object)]).value_counts()
    return int((counts.reindex(both).to_numpy() == 1).sum())


def _quarantined(row: dict, unit: str, ordinal: int, reason: str, detail: str, fields: dict) -> dict:
    """The quarantine entry of a candidate row set aside after its row checks (`fields`: what to keep of it)."""
    short = {k: schema.cut(v, schema.VALUE_CHARS) if isinstance(v, str) else v for k, v in fields.items()}
    return {"id": row["id"], "unit": unit, "position": ordinal & 0xFFFFFFFF, "reason": reason, "detail": detail,
            "record": json.dumps(short, ensure_ascii=False)}


# --- the whole step, locally ---------------------------------------------------------------------------------

def group_dir(work: Path, units: list[Unit], kind: str, cfg: ValidateConfig) -> Path:
    """A group's work folder, named by what it reads and how: a rerun with the same input resumes there."""
    key = hashlib.sha256(("|".join(u.to_json() for u in units) + kind + cfg.digest()).encode()).hexdigest()[:16]
    return Path(work) / f"group-{units[0].index:06d}-{key}"


def validate(input_uri: str, out_dir: Path, cfg: ValidateConfig, workers: int = 1,
             progress: bool = False) -> ValidationReport:
    """plan -> check groups (in `workers` processes) -> merge, writing under `out_dir`. Groups already checked
    by an interrupted run are reused. Raises InputError for an unreadable input, DataValidationError when a
    critical dataset expectation fails (the outputs are written first)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    started = time.time()
    out_dir = Path(out_dir)
    existed = out_dir.exists()
    kind, groups = plan(input_uri, cfg, groups=max(1, workers) * 4)
    work = out_dir / ".work"
    dirs = [group_dir(work, g, kind, cfg) for g in groups]
    if workers <= 1:
        for g, d in zip(groups, dirs, strict=False):
            check_group(g, kind, cfg, d, progress)
    else:
        from tqdm import tqdm

        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(check_group, g, kind, cfg, d) for g, d in zip(groups, dirs, strict=False)]
            for f in tqdm(futures, unit="group", desc="validate", disable=not (progress and sys.stderr.isatty())):
                f.result()
    try:
        report = merge(input_uri, kind, dirs, Outputs.under(out_dir), cfg, started)
    except InputError:   # nothing to resume and nothing written: leave the folder as it was
        shutil.rmtree(work if existed else out_dir, ignore_errors=True)
        raise
    except DataValidationError:   # the outputs are written and the verdict is final
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return report
