"""validate_data: the expectation suite on good and broken manifests."""
import json
import shutil
from pathlib import Path

import pytest

from components.validate_data.core import DataValidationError, ValidateConfig, validate_captions


def _small_manifest(demo, tmp_path: Path, n: int = 40) -> tuple[Path, list[dict]]:
    src = Path(demo.captions)
    rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines()[:n]]
    for row in rows:
        target = tmp_path / row["image"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src.parent / row["image"], target)
    return tmp_path / "captions.jsonl", rows


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_demo_manifest_passes_every_expectation(demo, tmp_path):
    report = validate_captions(demo.captions, tmp_path / "curated.jsonl", tmp_path / "docs", ValidateConfig())
    assert report.rows_in == report.rows_out == 2560
    assert len(report.results) == 10 and all(r["success"] for r in report.results)
    assert sum(r["critical"] for r in report.results) == 8
    assert sum(report.per_language.values()) == 2560 and len(report.per_language) == 8
    assert (tmp_path / "docs" / "index.html").exists()
    curated = [json.loads(line) for line in (tmp_path / "curated.jsonl").read_text().splitlines()]
    assert Path(curated[0]["image"]).is_absolute() and Path(curated[0]["image"]).exists()
    assert len(report.fingerprint) == 64


def test_missing_column_names_the_expectation_and_the_column(demo, tmp_path):
    path, rows = _small_manifest(demo, tmp_path)
    for r in rows:
        r.pop("caption")
    with pytest.raises(DataValidationError) as err:
        validate_captions(str(_write(path, rows)), tmp_path / "out.jsonl", None, ValidateConfig())
    msg = str(err.value)
    assert "expect_table_columns_to_match_set" in msg and "missing column(s): ['caption']" in msg
    assert not (tmp_path / "out.jsonl").exists()


def test_unreadable_and_missing_images_and_unknown_language(demo, tmp_path):
    path, rows = _small_manifest(demo, tmp_path)
    (tmp_path / rows[0]["image"]).write_bytes(b"not a png")   # unreadable
    rows[1]["image"] = "images/cpt/nowhere.png"              # missing
    rows[2]["lang"] = "xx"                                    # unknown language
    broken_ids = {rows[1]["id"], rows[2]["id"]} | {r["id"] for r in rows if r["image"] == rows[0]["image"]}
    with pytest.raises(DataValidationError) as err:
        validate_captions(str(_write(path, rows)), tmp_path / "out.jsonl", None, ValidateConfig())
    msg = str(err.value)
    assert "2 critical expectation(s) not met" in msg
    assert "column='lang'" in msg and "'xx'" in msg and rows[2]["id"] in msg
    assert "column='image_status'" in msg and "undecodable" in msg and "missing" in msg
    assert rows[1]["id"] in msg
    assert broken_ids  # the rows quoted are the broken ones
    assert not (tmp_path / "out.jsonl").exists()


def test_overlong_caption_and_duplicate_ids(demo, tmp_path):
    path, rows = _small_manifest(demo, tmp_path)
    rows[0]["caption"] = "x" * 50
    rows[4]["id"] = rows[3]["id"]
    with pytest.raises(DataValidationError) as err:
        validate_captions(str(_write(path, rows)), tmp_path / "out.jsonl", None,
                          ValidateConfig(max_caption_chars=40))
    msg = str(err.value)
    assert "expect_column_values_to_be_unique" in msg and rows[3]["id"] in msg
    assert "caption_chars" in msg and "max_value=40" in msg
