"""validate_data: curation of caption corpora and SFT sets, bad rows quarantined with reasons, dataset
expectations, shards, workers, resume. Every case runs the real code on real files (S3 on a moto server)."""
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from components.validate_data.core import DataValidationError, ValidateConfig, validate
from pipelines.cli import app
from tests.support import corpus

LANGS = "en,id,th,vi,tl"


def _quarantine(out: Path) -> dict:
    """{id or position: (reason, detail)} of the quarantine file."""
    rows = pq.read_table(out / "quarantine.parquet").to_pylist()
    return {r["id"] if r["id"] is not None else r["position"]: (r["reason"], r["detail"]) for r in rows}


def _curated_ids(out: Path) -> list[str]:
    return pq.read_table(out / "curated").column("id").to_pylist()


def _bomb_png() -> bytes:
    """A 12,000 x 12,000 PNG (144 M pixels, over Pillow's 89 M limit) that weighs a few kilobytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A manifest of 60 good rows and one of each kind of bad row; {id: expected reason} of the bad ones."""
    from PIL import Image

    root = tmp_path_factory.mktemp("mixed")
    good = corpus.image_manifest(root, 60)
    img = root / "images"
    (img / "empty.jpg").write_bytes(b"")
    (img / "corrupt.jpg").write_bytes(b"\x00\x01 these bytes are no image format at all")
    (img / "truncated.jpg").write_bytes(corpus.jpeg(1000)[:400])
    (img / "bomb.png").write_bytes(_bomb_png())
    (img / "tiny.jpg").write_bytes(corpus.jpeg(1001, size=(40, 30)))
    (img / "long.jpg").write_bytes(corpus.jpeg(1002, size=(400, 80)))
    (img / "near.jpg").write_bytes(corpus.jpeg(5, quality=85))   # row 5's image, re-encoded
    (img / "eval.jpg").write_bytes(corpus.jpeg(2000))             # an image of an evaluation set
    Image.new("F", (100, 100)).save(img / "float.tiff")
    eval_dir = root / "eval"
    corpus.write_jsonl(eval_dir / "captions.jsonl", [{"id": "e1", "image": "../images/eval.jpg", "lang": "en"}])
    sea = "Pedagang sate di pasar malam Jakarta sedang menyiapkan dagangan"
    bad = {
        "bad-outside": dict(image="../../../../etc/passwd", caption=sea),
        "bad-long": dict(image="images/0.jpg", caption="x" * 100_000),
        "bad-missing": dict(image="images/nothere.jpg", caption=sea),
        "bad-empty-img": dict(image="images/empty.jpg", caption=sea),
        "bad-corrupt": dict(image="images/corrupt.jpg", caption=sea),
        "bad-truncated": dict(image="images/truncated.jpg", caption=sea),
        "bad-bomb": dict(image="images/bomb.png", caption=sea),
        "bad-tiny": dict(image="images/tiny.jpg", caption=sea),
        "bad-aspect": dict(image="images/long.jpg", caption=sea),
        "bad-mode": dict(image="images/float.tiff", caption=sea),
        "bad-empty-caption": dict(image="images/1.jpg", caption="   "),
        "bad-control": dict(image="images/2.jpg", caption=sea + "\x07"),
        "bad-lang": dict(image="images/3.jpg", caption=sea, lang="fr"),
        "bad-mismatch": dict(image="images/4.jpg", lang="vi",
                             caption="Street vendors grilling satay at the busy night market in Bangkok tonight"),
        "bad-irrelevant": dict(image="images/6.jpg", lang="en",
                               caption="A brown dog sleeping on a grey sofa next to a window"),
        "bad-near": dict(image="images/near.jpg", caption=corpus.caption_row(5)["caption"] + " (again)",
                         lang=corpus.caption_row(5)["lang"]),
        "bad-dup": dict(image="images/8.jpg", caption=corpus.caption_row(8)["caption"].upper() + "  ",
                        lang=corpus.caption_row(8)["lang"]),
        "bad-eval": dict(image="images/eval.jpg", caption="Nasi goreng di warung Jakarta untuk makan malam",
                         lang="id"),
    }
    expected = {"bad-outside": "image_outside_root", "bad-long": "caption_too_long", "bad-missing": "image_missing",
                "bad-empty-img": "image_empty", "bad-corrupt": "image_corrupt", "bad-truncated": "image_truncated",
                "bad-bomb": "image_too_large", "bad-tiny": "image_too_small", "bad-aspect": "image_aspect",
                "bad-mode": "image_mode", "bad-empty-caption": "caption_empty", "bad-control": "caption_control_chars",
                "bad-lang": "language_not_accepted", "bad-mismatch": "language_mismatch",
                "bad-irrelevant": "low_sea_relevance", "bad-near": "near_duplicate", "bad-dup": "duplicate",
                "bad-eval": "eval_overlap", "row-0000003": "duplicate_id"}
    rows = good + [{"id": k, "lang": "id", "source": "test", **v} for k, v in bad.items()]
    rows.append({**good[3], "caption": "Duplikat id: pasar malam Jakarta yang ramai sekali malam ini", "lang": "id"})
    manifest = corpus.write_jsonl(root / "manifest.jsonl", rows)
    with manifest.open("ab") as f:   # one line that is not UTF-8
        f.write(b'{"id": "bad-utf8", "image": "images/9.jpg", "caption": "caf\xe9 di Jakarta", "lang": "id"}\n')
    expected["bad-utf8"] = "caption_not_utf8"
    return root, manifest, [r["id"] for r in good], expected


def test_cli_keeps_every_good_row_and_quarantines_every_bad_one_with_its_reason(mixed, tmp_path):
    root, manifest, good, expected = mixed
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["validate", str(manifest), "--out", str(out), "--languages", LANGS,
                                      "--set", f"eval_sets={root / 'eval'}", "--set", "max_quarantined_fraction=0.5"])
    assert result.exit_code == 0, result.output
    assert sorted(_curated_ids(out)) == sorted(good)
    quarantined = _quarantine(out)
    assert {k: v[0] for k, v in quarantined.items()} == expected
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows_in"] == len(good) + len(expected) == metrics["rows_curated"] + metrics["rows_quarantined"]
    # details are short and say what was wrong; the 100,000-character caption is cut
    assert len(quarantined["bad-long"][1]) < 400 and "100000 characters" in quarantined["bad-long"][1]
    assert "leads outside the dataset root" in quarantined["bad-outside"][1]
    assert "'row-0000005'" in quarantined["bad-near"][1]
    # the original fields travel with each rejected row, long values cut
    record = json.loads(pq.read_table(out / "quarantine.parquet").to_pandas().set_index("id").loc["bad-long",
                                                                                                   "record"])
    assert record["image"] == "images/0.jpg" and len(record["caption"]) < 300
    # the outputs a user and the pipeline read
    assert (out / "report.html").read_text().count("<img") == 3 and (out / "data_docs" / "index.html").exists()
    assert pq.read_schema(next((out / "curated").glob("*.parquet"))).names[:4] == ["id", "image", "member", "caption"]
    assert "quarantined by reason" in result.output


def test_the_curated_rows_follow_the_schema(mixed, tmp_path):
    from components.validate_data import schema

    root, manifest, good, _ = mixed
    validate(str(manifest), tmp_path, ValidateConfig(languages=LANGS, max_quarantined_fraction=0.5))
    table = pq.read_table(tmp_path / "curated")
    assert table.schema.equals(schema.CAPTIONS, check_metadata=False)
    row = table.to_pylist()[0]
    assert row["image"] == str(root / "images" / "0.jpg") and row["member"] is None
    assert 0.6 < row["sea_score"] < 1 and len(row["phash"]) == 16 and (row["width"], row["height"]) == (128, 96)
    assert row["lang_score"] is not None and row["clip_score"] is None


def test_too_many_bad_rows_fail_the_dataset_expectation_with_examples(mixed, tmp_path):
    _, manifest, _, _ = mixed
    result = CliRunner().invoke(app, ["validate", str(manifest), "--out", str(tmp_path), "--languages", LANGS])
    assert result.exit_code == 1
    assert "expect_column_values_to_be_between(column='quarantined_fraction'" in result.output
    assert "image_outside_root" in result.output          # example rows with their reasons
    assert (tmp_path / "quarantine.parquet").exists()     # written before the verdict
    docs = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["expectation"] for r in docs["results"] if not r["success"]] == ["expect_column_values_to_be_between"]


def test_a_requested_language_missing_fails(tmp_path):
    rows = corpus.image_manifest(tmp_path, 20)
    manifest = corpus.write_jsonl(tmp_path / "m.jsonl", rows)
    with pytest.raises(DataValidationError, match="column='share'") as err:
        validate(str(manifest), tmp_path / "out", ValidateConfig(languages=LANGS + ",ms"))
    assert "language(s) ['ms'] below the minimum share" in str(err.value)
    assert err.value.logged.pipeline_metrics["data/critical_failed"] == 1


def test_shards_one_truncated_the_good_ones_all_curated(tmp_path):
    ids = corpus.shard(tmp_path / "shards" / "00000.tar", 0, 12) + corpus.shard(tmp_path / "shards" / "00002.tar",
                                                                              24, 12)
    broken = corpus.shard(tmp_path / "shards" / "00001.tar", 12, 12, truncate_to=0.5)
    (tmp_path / "shards" / "00001_stats.json").write_text(json.dumps({"successes": 12}))
    (tmp_path / "shards" / "00000.parquet").write_bytes(b"img2dataset's per-shard table: not read for samples")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "shards"), "--out", str(out), "--languages", LANGS,
                                      "--set", "max_quarantined_fraction=0.2"])
    assert result.exit_code == 0, result.output
    curated = _curated_ids(out)
    assert set(ids) <= set(curated)                          # every sample of the good shards
    assert set(curated) - set(ids) <= set(broken)            # plus what the broken one held before the damage
    assert "00001.tar is damaged after" in result.output and "stats file lists 12" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["shards_damaged"] and metrics["rows_in"] == metrics["rows_curated"] + metrics["rows_quarantined"]
    row = pq.read_table(out / "curated").to_pylist()[0]
    assert row["image"].endswith("00000.tar") and row["member"] == f"{ids[0]}.jpg"
    # the trainer reads a curated shard member
    from components.common.records import load_image

    assert load_image(row["image"], row["member"]).size == (128, 96)


def test_workers_and_one_process_give_the_same_result_and_groups_resume(tmp_path, monkeypatch):
    from components.validate_data import core

    for s in range(4):
        corpus.shard(tmp_path / "in" / f"{s:05d}.tar", s * 10, 10)
    cfg = ValidateConfig(languages=LANGS)
    one = validate(str(tmp_path / "in"), tmp_path / "one", cfg, workers=1)
    two = validate(str(tmp_path / "in"), tmp_path / "two", cfg, workers=2)
    assert sorted(_curated_ids(tmp_path / "one")) == sorted(_curated_ids(tmp_path / "two"))
    assert one.fingerprint and (one.rows_in, one.rows_curated) == (two.rows_in, two.rows_curated) == (40, 40)
    # an interrupted run: the groups already checked are not read again
    kind, groups = core.plan(str(tmp_path / "in"), cfg, groups=4)
    for g in groups:
        core.check_group(g, kind, cfg, core.group_dir(tmp_path / "again" / ".work", g, kind, cfg))
    from components.validate_data import rows

    monkeypatch.setattr(rows.RowChecker, "__init__", lambda self, cfg, unit: pytest.fail(f"{unit.uri} checked again"))
    assert validate(str(tmp_path / "in"), tmp_path / "again", cfg, workers=1).rows_curated == 40
    assert not (tmp_path / "again" / ".work").exists()


def test_parquet_manifest_with_wrong_column_types(tmp_path):
    import pyarrow as pa

    rows = corpus.image_manifest(tmp_path, 6)
    table = pa.table({"id": [r["id"] for r in rows], "image": [r["image"] for r in rows],
                      "caption": list(range(6)), "lang": [r["lang"] for r in rows]})
    pq.write_table(table, tmp_path / "m.parquet")
    with pytest.raises(DataValidationError, match="quarantined_fraction"):
        validate(str(tmp_path / "m.parquet"), tmp_path / "out", ValidateConfig(languages=LANGS))
    reasons = _quarantine(tmp_path / "out")
    assert {r for r, _ in reasons.values()} == {"record_unreadable"}
    assert "caption is a int, expected a string" in next(iter(reasons.values()))[1]


def test_inputs_that_cannot_be_read_are_clear_errors(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "noshards").mkdir()
    (tmp_path / "noshards" / "README.txt").write_text("nothing here")
    runner = CliRunner()
    for args, message in [([str(tmp_path / "empty.jsonl")], "holds no records"),
                          ([str(tmp_path / "noshards")], "no shards (.tar) or manifests"),
                          ([str(tmp_path / "nothere.parquet")], "does not exist"),
                          ([str(tmp_path / "empty.jsonl"), "--set", "min_sea_scor=1"], "min_sea_scor"),
                          ([str(tmp_path / "empty.jsonl"), "--workers", "0"], "at least 1")]:
        result = runner.invoke(app, ["validate", *args, "--out", str(tmp_path / "out")])
        assert result.exit_code == 2 and message in result.output, (args, result.output)


def test_a_missing_object_on_s3_is_quarantined(s3_server, bucket, tmp_path):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server)
    rows = corpus.image_manifest(tmp_path, 12)
    for r in rows[1:]:
        s3.put_object(Bucket=bucket, Key=f"data/{r['image']}", Body=(tmp_path / r["image"]).read_bytes())
    s3.put_object(Bucket=bucket, Key="data/manifest.jsonl",
                  Body="".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
    report = validate(f"s3://{bucket}/data/manifest.jsonl", tmp_path / "out",
                      ValidateConfig(languages=LANGS, max_quarantined_fraction=0.1))
    assert report.rows_curated == 11 and report.reasons == {"image_missing": 1}
    assert _curated_ids(tmp_path / "out")[0] == rows[1]["id"]
    assert pq.read_table(tmp_path / "out" / "curated").column("image")[0].as_py() == \
        f"s3://{bucket}/data/{rows[1]['image']}"


def test_a_manifest_may_name_images_inside_a_tar_archive(tmp_path):
    import tarfile

    rows = corpus.image_manifest(tmp_path, 10)
    with tarfile.open(tmp_path / "media.tar", "w") as tar:
        tar.add(tmp_path / rows[0]["image"], arcname="photos/0.jpg")
    rows[0]["image"] = "media.tar!/photos/0.jpg"
    manifest = corpus.write_jsonl(tmp_path / "m.jsonl", rows)
    validate(str(manifest), tmp_path / "out", ValidateConfig(languages=LANGS))
    first = pq.read_table(tmp_path / "out" / "curated").to_pylist()[0]
    assert (first["image"], first["member"]) == (str(tmp_path / "media.tar"), "photos/0.jpg")
    from components.train.data import caption_sample

    assert caption_sample(first)[0]["content"][0]["image"].size == (128, 96)   # what the trainer reads


def test_archive_members_never_leave_the_archive(tmp_path, monkeypatch):
    """A shard whose members are named to escape (`../../`, absolute paths) or are links to files outside it:
    members are read into memory by name and never extracted, so nothing is written outside the output folder;
    links are never followed; names that climb or are absolute are quarantined by name; the shard's good
    samples are curated."""
    import tarfile

    tag = "e5c4pe"
    good = corpus.shard(tmp_path / "shards" / "00000.tar", 0, 12)
    hostile = {f"../../{tag}-up": b"jpg", f"/tmp/{tag}-abs": b"jpg"}
    with tarfile.open(tmp_path / "shards" / "00001.tar", "w") as tar:
        for name in hostile:
            for ext, data in (("jpg", corpus.jpeg(1)), ("txt", b"Sebuah foto pasar terapung di Bangkok.")):
                info = tarfile.TarInfo(f"{name}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        for kind, target in ((tarfile.SYMTYPE, "/etc/passwd"), (tarfile.LNKTYPE, "000000000.jpg")):
            info = tarfile.TarInfo(f"{tag}-link{kind.decode()}.jpg")
            info.type, info.linkname = kind, target
            tar.addfile(info)
            caption = tarfile.TarInfo(f"{tag}-link{kind.decode()}.txt")
            caption.size = 4
            tar.addfile(caption, io.BytesIO(b"link"))
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)                 # where a naive extraction of `../../` would land: tmp_path
    out = tmp_path / "a" / "b" / "out"
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "shards"), "--out", str(out), "--languages", LANGS,
                                      "--set", "max_quarantined_fraction=0.5"])
    assert result.exit_code == 0, result.output
    assert list(tmp_path.rglob(f"{tag}*")) == [] and list(Path("/tmp").glob(f"{tag}*")) == []
    assert set(_curated_ids(out)) == set(good)
    members = pq.read_table(out / "curated").column("member").to_pylist()
    assert not any(m.startswith("/") or ".." in m.split("/") for m in members)
    reasons = {k: r for k, (r, _) in _quarantine(out).items()}
    assert reasons[f"{tag}-up"] == reasons[f"{tag}-abs"] == "member_name_unsafe"
    assert reasons[f"{tag}-link2"] == reasons[f"{tag}-link1"] == "image_missing"   # links are not files: not read
