"""Small evaluation datasets in the public schemas SEA-HELM reads (afaji/cvqa, ...), written as Parquet the way
a `datasets` export stores them (images as {bytes, path} structs)."""
from __future__ import annotations

from pathlib import Path

from tests.support.corpus import jpeg

CVQA_SUBSET = {"id": "('Indonesian', 'Indonesia')", "ms": "('Malay', 'Malaysia')", "zh": "('Chinese', 'Singapore')"}


def cvqa(path: Path, rows: list[tuple[str, str, int]]) -> Path:
    """afaji/cvqa test-split rows: (ID, language code, Label) each, with a question, four options and an image."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "image": [{"bytes": jpeg(i, (64, 48)), "path": f"{i}.jpg"} for i in range(len(rows))],
        "ID": [r[0] for r in rows],
        "Subset": [CVQA_SUBSET[r[1]] for r in rows],
        "Question": [f"Apa ini? ({r[0]})" for r in rows],
        "Translated Question": [f"What is this? ({r[0]})" for r in rows],
        "Options": [["nasi", "mi", "roti", "sate"] for _ in rows],
        "Translated Options": [["rice", "noodles", "bread", "satay"] for _ in rows],
        "Label": pa.array([r[2] for r in rows], type=pa.int64()),
        "Category": ["Food" for _ in rows],
        "Image Type": ["Self" for _ in rows],
        "Image Source": ["Self-open" for _ in rows],
        "License": ["CC BY-SA" for _ in rows],
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path
