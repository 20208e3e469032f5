"""Benchmark of validate_data (figures, not assertions): `make bench` or `python -m tests.benchmarks.bench_validate`.

Prints, on this machine:
  table checks  rows/s per process (read the Parquet manifest in batches, id, caption, language identification,
                Southeast-Asian relevance) at 100k and 1M generated rows, with the peak RSS of each run
  image checks  images/s per process on generated JPEGs (decode, row checks, sha256, pHash)
  merge         dedupe over key columns (ids, pair keys, banded pHash) at 1M rows, seconds and peak RSS
  end to end    `validate()` on a manifest with images, 1 worker vs 2
  10M rows      the time extrapolated over N workers
Each size runs in a fresh process so that its peak RSS is its own.
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_ROWS, TARGET_IMAGES = 20_000, 200
PLACES = ["Jakarta", "Bangkok", "Manila", "Penang", "Hanoi", "Surabaya", "Cebu", "Chiang Mai", "Yogyakarta",
          "Singapore", "the city", "the village", "the harbour", "the old town"]
WORDS = {  # fillers in the caption's own language: real captions are mostly in one language
    "id": ["sate", "nasi goreng", "bakso", "kopi", "buah", "sayur", "ikan bakar", "kue"],
    "en": ["fruit", "noodle", "coffee", "satay", "seafood", "flower", "rice cake", "vegetable"],
    "th": ["ส้มตำ", "ผัดไทย", "ผลไม้", "กาแฟ", "ข้าวเหนียว", "ดอกไม้", "ปลาย่าง", "ขนม"],
    "vi": ["phở", "bánh mì", "cà phê", "trái cây", "bún chả", "hoa", "cá nướng", "rau"],
    "tl": ["adobo", "sinigang", "kape", "prutas", "isda", "gulay", "bibingka", "pancit"],
}
TEMPLATES = {
    "id": "Seorang penjual {w} di {v} sedang menyiapkan dagangan nomor {i}",
    "en": "A {w} vendor in {v} preparing food for the evening crowd, photo {i}",
    "th": "แม่ค้าขาย{w}ที่{v}ในช่วงเย็น ภาพที่ {i}",
    "vi": "Một người bán {w} ở {v} vào buổi tối, ảnh số {i}",
    "tl": "Isang tindera ng {w} sa {v} tuwing gabi, larawan {i}",
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_manifest(path: Path, rows: int) -> None:
    """A Parquet manifest of `rows` caption rows (image paths are not read by the table checks)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(0)
    langs = list(TEMPLATES)
    with pq.ParquetWriter(path, pa.schema([("id", pa.string()), ("image", pa.string()), ("caption", pa.string()),
                                           ("lang", pa.string()), ("source", pa.string())])) as writer:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            ls = [langs[(start + i) % 5] for i in range(n)]
            writer.write_table(pa.table({
                "id": [f"r{start + i:09d}" for i in range(n)],
                "image": [f"images/{start + i}.jpg" for i in range(n)],
                "caption": [TEMPLATES[lang].format(w=rng.choice(WORDS[lang]), v=rng.choice(PLACES), i=start + i)
                            for i, lang in enumerate(ls)],
                "lang": ls, "source": ["bench"] * n}), row_group_size=50_000)


def table_run(manifest: str) -> dict:
    """Table checks over every row of `manifest`, streamed: what one worker does before it opens any image."""
    from components.validate_data.core import ValidateConfig
    from components.validate_data.rows import RowChecker
    from components.validate_data.sources import plan_units, read_unit

    cfg = ValidateConfig(languages=",".join(TEMPLATES))
    units = plan_units(manifest)
    rows, kept = 0, 0
    start = time.perf_counter()
    for unit in units:
        checker = RowChecker(cfg, unit)
        for record in read_unit(unit):
            rows += 1
            kept += isinstance(checker.caption_text(record), dict)
    seconds = time.perf_counter() - start
    return {"rows": rows, "kept": kept, "seconds": seconds, "rows_per_s": rows / seconds, "peak_rss_mb": peak_rss_mb()}


def image_run(count: int, size: tuple[int, int]) -> dict:
    from components.validate_data.checks import inspect_image
    from tests.support.corpus import jpeg

    images = [jpeg(i, size=size, quality=90, grain=12) for i in range(count)]
    start = time.perf_counter()
    for data in images:
        inspect_image(data, min_side=64, max_aspect=3.0, max_pixels=89_478_485)
    seconds = time.perf_counter() - start
    return {"images": count, "size": f"{size[0]}x{size[1]}", "kb": sum(map(len, images)) / count / 1024,
            "images_per_s": count / seconds}


def write_keys(path: Path, rows: int) -> None:
    """The key columns of `rows` candidate rows, as the check tasks write them; 1% exact duplicates."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from components.validate_data.schema import ORDINAL, PAIR_KEY

    rng = np.random.default_rng(0)
    phash = rng.integers(0, 2**63, size=rows, dtype=np.uint64)
    pair = np.arange(rows)
    dup = rng.choice(rows, rows // 100, replace=False)
    pair[dup] = rng.integers(0, rows, len(dup))
    pq.write_table(pa.table({
        "id": [f"r{i:09d}" for i in range(rows)], "lang": rng.choice(list(TEMPLATES), rows),
        "source": ["bench"] * rows, "sea_score": np.full(rows, 0.5, dtype=np.float32),
        "sha256": [f"{h:064x}" for h in phash], "phash": [f"{h:016x}" for h in phash],
        ORDINAL: np.arange(rows), PAIR_KEY: [f"{h:016x}" for h in pair]}), path)


def merge_run(path: str) -> dict:
    """The merge step's cross-corpus decisions, from reading the key columns to the verdicts."""
    from components.validate_data.core import ValidateConfig, _keys, decide

    start = time.perf_counter()
    keys = _keys([Path(path)], "captions", with_sha256=False)   # no evaluation sets given
    rejected, _ = decide(keys, "captions", ValidateConfig(), (set(), []))
    return {"rows": len(keys), "seconds": time.perf_counter() - start, "rejected": len(rejected),
            "peak_rss_mb": peak_rss_mb()}


def end_to_end(rows: int, workers: int, root: Path) -> dict:
    from components.validate_data.core import ValidateConfig, validate

    start = time.perf_counter()
    report = validate(str(root / "manifest.jsonl"), root / f"out-{workers}",
                      ValidateConfig(languages="en,id,th,vi,tl"), workers=workers)
    return {"rows": report.rows_in, "curated": report.rows_curated, "workers": workers,
            "seconds": time.perf_counter() - start}


def child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "tests.benchmarks.bench_validate", *args], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", help=argparse.SUPPRESS)
    ap.add_argument("--merge", help=argparse.SUPPRESS)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--e2e-rows", type=int, default=2000)
    args = ap.parse_args()
    if args.table:
        print(json.dumps(table_run(args.table)))
        return
    if args.merge:
        print(json.dumps(merge_run(args.merge)))
        return

    from tests.support import corpus

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        table = {}
        for n in map(int, args.sizes.split(",")):
            path = tmp / f"m{n}.parquet"
            write_manifest(path, n)
            table[n] = child(["--table", str(path)])
            r = table[n]
            print(f"table checks {n:>9,} rows: {r['rows_per_s']:9,.0f} rows/s per process  "
                  f"peak RSS {r['peak_rss_mb']:6.0f} MB  ({r['kept']:,} rows pass; target {TARGET_ROWS:,} rows/s)")
        sizes = sorted(table)
        if len(sizes) > 1:
            a, b = table[sizes[0]], table[sizes[-1]]
            ratio = b["peak_rss_mb"] / a["peak_rss_mb"]
            print(f"memory: {sizes[-1] // sizes[0]}x the rows -> {ratio:.2f}x the peak RSS")
        images = {}
        for size in ((256, 256), (512, 384)):
            images[size] = image_run(args.images, size)
            r = images[size]
            print(f"image checks {r['size']:>8} JPEG ({r['kb']:4.0f} KB): {r['images_per_s']:7.0f} images/s per process"
                  f"  (target {TARGET_IMAGES} per core)")
        write_keys(tmp / "keys.parquet", sizes[-1])
        merge = child(["--merge", str(tmp / "keys.parquet")])
        print(f"merge (read key columns; duplicate ids, exact and near duplicates) over {merge['rows']:,} rows: "
              f"{merge['seconds']:.1f} s, {merge['rejected']:,} duplicates, peak RSS {merge['peak_rss_mb']:.0f} MB")
        root = tmp / "e2e"
        rows = corpus.image_manifest(root, args.e2e_rows)
        corpus.write_jsonl(root / "manifest.jsonl", rows)
        one, two = end_to_end(args.e2e_rows, 1, root), end_to_end(args.e2e_rows, 2, root)
        print(f"end to end, {one['rows']} rows with 128x96 JPEGs: 1 worker {one['seconds']:.1f} s, 2 workers "
              f"{two['seconds']:.1f} s (ratio {two['seconds'] / one['seconds']:.2f}; includes the merge, "
              f"great-expectations and process start-up)")
        per_row = 1 / table[sizes[-1]]["rows_per_s"] + 1 / images[(256, 256)]["images_per_s"]
        merge_10m = merge["seconds"] * 10_000_000 / merge["rows"]
        for n in (1, 16, 64, 256):
            hours = (10_000_000 * per_row / n + merge_10m) / 3600
            print(f"10M rows with 256x256 images over {n:>3} workers: {hours:6.2f} h "
                  f"(row checks {10_000_000 * per_row / n / 3600:.2f} h + merge ~{merge_10m / 60:.0f} min)")


if __name__ == "__main__":
    main()
