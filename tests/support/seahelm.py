"""Small evaluation datasets in the public schemas SEA-HELM reads (afaji/cvqa, ...), written as Parquet the way
a `datasets` export stores them (images as {bytes, path} structs)."""
from __future__ import annotations

from pathlib import Path

from components.evaluate.seahelm.tasks import CVQA_SUBSETS as CVQA_SUBSET
from tests.support.corpus import jpeg


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


def marvl(path: Path, rows: list[tuple[str, str, bool]]) -> Path:
    """floschne/marvl rows of one language split: (id, hypothesis, label), two images each."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    image = [{"bytes": jpeg(i, (64, 48)), "path": f"{i}.jpg"} for i in range(len(rows))]
    table = pa.table({"id": [r[0] for r in rows], "hypothesis": [r[1] for r in rows],
                      "hypo_en": ["a hypothesis" for _ in rows], "language": ["zh" for _ in rows],
                      "label": [r[2] for r in rows], "chapter": ["food" for _ in rows],
                      "concept": ["tea" for _ in rows], "left_img_id": [f"{r[0]}-l" for r in rows],
                      "right_img_id": [f"{r[0]}-r" for r in rows], "left_img": image, "right_img": image})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def world_cuisines(path: Path, rows: list[tuple[str, str, int, int]], image_dir: Path) -> Path:
    """worldcuisines/vqa-v1.1 test_large rows: (qa_id, lang, prompt_type, mcq_answer_index); options are
    "dish-<qa_id>-<k>", the k-th being the gold one; images under `image_dir` (the unpacked images.tar.gz)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (image_dir / "images").mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(rows):
        (image_dir / "images" / f"{r[0]}.jpg").write_bytes(jpeg(i, (64, 48)))
    table = pa.table({
        "qa_id": [r[0] for r in rows], "lang": [r[1] for r in rows], "food_id": ["1" for _ in rows],
        "prompt_id": ["p" for _ in rows], "prompt_type": [r[2] for r in rows],
        "question": [f"What dish is this? ({r[0]})" for r in rows],
        "options": [[f"dish-{r[0]}-{k}" for k in range(5)] for r in rows],
        "mcq_answer_index": [r[3] for r in rows], "answer": [f"dish-{r[0]}-{r[3]}" for r in rows],
        "image_url": ["" for _ in rows], "image_path": [f"images/{r[0]}.jpg" for r in rows],
        "task": ["task1" for _ in rows], "lang_status": ["high" for _ in rows]})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def xm3600(path: Path, rows: list[tuple[str, list[str]]]) -> Path:
    """floschne/xm3600 rows of one language split: (image_id, captions)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"image_id": [r[0] for r in rows], "image_locale": ["id" for _ in rows],
                      "captions": [r[1] for r in rows], "captions_tokenized": [r[1] for r in rows],
                      "captions_tokenized_lowercase": [[c.lower() for c in r[1]] for r in rows],
                      "image": [{"bytes": jpeg(i, (64, 48)), "path": f"{r[0]}.jpg"} for i, r in enumerate(rows)]})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path
