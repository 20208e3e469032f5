"""Record adapters and the storage layer, on local paths and on a real S3 endpoint (moto server)."""
import json

import pytest

from components.common import records, storage


def test_llava_record_becomes_messages_with_image_slots():
    rec = {"id": "m1", "image": "a.jpg", "conversations": [
        {"from": "human", "value": "<image>\nWhat is shown?"}, {"from": "gpt", "value": "A cat."},
        {"from": "human", "value": "Colour?"}, {"from": "gpt", "value": "Black."}]}
    out = records.llava_to_messages(rec)
    assert out["images"] == ["a.jpg"]
    assert out["messages"][0] == {"role": "user", "content": [{"type": "image"},
                                                              {"type": "text", "text": "What is shown?"}]}
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user", "assistant"]


def test_llava_record_without_placeholder_gets_the_image_first():
    out = records.llava_to_messages({"id": "m2", "image": ["a.jpg", "b.jpg"], "conversations": [
        {"from": "human", "value": "Compare <image> with this."}, {"from": "gpt", "value": "Same."}]})
    types = [c["type"] for c in out["messages"][0]["content"]]
    assert types == ["image", "text", "image", "text"]
    with pytest.raises(ValueError, match="unknown speaker"):
        records.llava_to_messages({"id": "x", "conversations": [{"from": "system", "value": "hi"}]})


def test_relative_image_paths_resolve_against_the_manifest():
    assert records.resolve("s3://b/data/m.jsonl", "images/1.png") == "s3://b/data/images/1.png"
    assert records.resolve("/data/m.jsonl", "images/1.png") == "/data/images/1.png"
    assert records.resolve("/data/m.jsonl", "/abs/1.png") == "/abs/1.png"


def test_s3_round_trip_of_a_folder_and_a_manifest(s3_server, bucket, tmp_path):
    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    (src / "config.json").write_text("{}")
    (src / "sub" / "w.bin").write_bytes(b"\x00\x01")
    storage.publish(src, f"s3://{bucket}/models/m1")
    # a sibling whose name starts the same must not leak into the download
    storage.write_bytes(f"s3://{bucket}/models/m10/other.txt", b"x")
    got = storage.localize(f"s3://{bucket}/models/m1", dest=tmp_path / "copy")
    assert sorted(p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file()) == ["config.json", "sub/w.bin"]
    storage.write_bytes(f"s3://{bucket}/data/m.jsonl", (json.dumps({"id": 1}) + "\n").encode())
    assert records.read_jsonl(f"s3://{bucket}/data/m.jsonl") == [{"id": 1}]
    assert storage.exists(f"s3://{bucket}/data/m.jsonl") and not storage.exists(f"s3://{bucket}/nope")
    with pytest.raises(FileNotFoundError):
        storage.localize(f"s3://{bucket}/nope")
