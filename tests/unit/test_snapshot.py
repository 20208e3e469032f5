"""snapshot: fingerprints of every input by content, a clear error for missing ones, retraining on demand."""
import pytest

from components.snapshot.core import cache_salt, fingerprint_inputs


def test_inputs_are_fingerprinted_by_content_and_missing_ones_named(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"id": 1}\n')
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    fps = fingerprint_inputs({"caption": str(tmp_path / "m.jsonl"), "base": str(tmp_path / "model"), "replay": ""})
    assert len(fps["caption"]) == len(fps["base"]) == 64 and fps["replay"] == ""
    (tmp_path / "model" / "extra.bin").write_bytes(b"1")  # a new file under the same folder
    assert fingerprint_inputs({"base": str(tmp_path / "model")})["base"] != fps["base"]
    with pytest.raises(FileNotFoundError, match=r"sft=.*nowhere.jsonl.*eval=.*missing"):
        fingerprint_inputs({"caption": str(tmp_path / "m.jsonl"), "sft": str(tmp_path / "nowhere.jsonl"),
                            "eval": str(tmp_path / "missing")})


def test_retraining_makes_the_training_cache_key_unique_to_the_run():
    assert cache_salt(True) == cache_salt(True) == ""
    assert len({cache_salt(False) for _ in range(3)}) == 3 and "" not in {cache_salt(False)}


@pytest.mark.timeout(120)
def test_an_unreachable_s3_endpoint_names_the_input(monkeypatch):
    from tests.conftest import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    with pytest.raises(OSError, match=r"cannot read pipeline input caption=s3://data/captions.parquet: .*connect"):
        fingerprint_inputs({"caption": "s3://data/captions.parquet"})
