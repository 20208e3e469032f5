"""Generated caption corpora for tests and benchmarks: JPEGs with texture (distinct perceptual hashes),
manifests (JSONL, Parquet) and img2dataset-style WebDataset shards."""
from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path

CAPTIONS = {
    "id": "Seorang penjual sate di pasar malam Jakarta menyiapkan dagangannya, foto nomor {i}",
    "th": "แม่ค้าขายส้มตำที่ตลาดนัดในกรุงเทพ ภาพที่ {i}",
    "vi": "Một người phụ nữ bán phở trên vỉa hè ở Hà Nội, ảnh số {i}",
    "en": "A street vendor grilling satay at a night market in Kuala Lumpur, photo {i}",
    "tl": "Isang tindera ng adobo at sinigang sa palengke ng Maynila, larawan {i}",
}


def jpeg(seed: int, size: tuple[int, int] = (128, 96), quality: int = 90, grain: int = 0) -> bytes:
    """A JPEG of random coloured blocks: every seed gives a perceptually different image. `grain` adds noise of
    that amplitude, which makes the file about as large as a photograph of the same size."""
    from PIL import Image

    rng = random.Random(seed)
    img = Image.new("RGB", (8, 6))
    img.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(48)])
    img = img.resize(size, Image.BILINEAR)
    if grain:
        import numpy as np

        noise = np.random.default_rng(seed).integers(-grain, grain + 1, size=(size[1], size[0], 3))
        img = Image.fromarray(np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def caption_row(i: int, lang: str | None = None) -> dict:
    lang = lang or list(CAPTIONS)[i % len(CAPTIONS)]
    return {"id": f"row-{i:07d}", "caption": CAPTIONS[lang].format(i=i), "lang": lang, "source": "test"}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def image_manifest(root: Path, n: int, start: int = 0) -> list[dict]:
    """`n` good caption rows with their JPEGs under root/images/."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(start, start + n):
        (root / "images" / f"{i}.jpg").write_bytes(jpeg(i))
        rows.append({**caption_row(i), "image": f"images/{i}.jpg"})
    return rows


def shard(path: Path, first: int, n: int, truncate_to: float | None = None) -> list[str]:
    """An img2dataset-style shard of `n` samples ({key}.jpg/.txt/.json); returns the sample ids. With
    `truncate_to`, only that fraction of the tar's bytes is kept."""
    buf = io.BytesIO()
    ids = []
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(first, first + n):
            key = f"{i:09d}"
            row = caption_row(i)
            meta = {"key": key, "url": f"https://example.org/{key}.jpg", "status": "success", "lang": row["lang"]}
            for ext, data in (("jpg", jpeg(i)), ("txt", row["caption"].encode()), ("json", json.dumps(meta).encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            ids.append(key)
    data = buf.getvalue()
    if truncate_to is not None:
        data = data[:int(len(data) * truncate_to)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return ids
