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


def test_the_training_fingerprint_follows_what_decides_the_weights():
    from components.snapshot.core import training_fingerprint

    inputs = {"caption": "c1", "sft": "s1", "base": "b1", "replay": "", "eval": "e1"}
    settings = {"languages": "id,th", "cpt_training": {"max_steps": 800}, "sft_training": {}}
    fp = training_fingerprint(inputs, settings)
    # KFP hands numbers over as text (kfp.local: 800 -> "800.0"): the same settings, the same fingerprint
    assert training_fingerprint(inputs, {**settings, "cpt_training": {"max_steps": "800.0"}}) == fp
    assert training_fingerprint({**inputs, "caption": "c2"}, settings) != fp
    assert training_fingerprint({**inputs, "eval": "e2"}, settings) != fp   # its images leave the captions
    assert training_fingerprint(inputs, {**settings, "cpt_training": {"max_steps": 801}}) != fp


def test_the_configuration_hash_leaves_out_what_only_names_the_run():
    from components.snapshot.core import config_hash, normalized

    params = {"eval_gpus": 1, "gate": {"base": {"text_regression": 1.0}}, "git_commit": "abc",
              "skip_if_unchanged": False, "mlflow_experiment": "x"}
    h = config_hash(params)
    assert len(h) == 16
    assert config_hash({**params, "git_commit": "def", "skip_if_unchanged": True, "mlflow_experiment": "y"}) == h
    assert config_hash({**params, "eval_gpus": "1.0"}) == h
    assert config_hash({**params, "eval_gpus": 2}) != h
    assert normalized({"a": "8.0", "b": True, "c": "0.25", "d": "id,th", "e": 3}) == \
        {"a": "8", "b": "true", "c": "0.25", "d": "id,th", "e": "3"}


def test_a_run_skips_only_when_asked_and_the_champion_was_trained_from_the_same_inputs():
    from components.snapshot.core import skip_decision

    skip, why = skip_decision(True, "f" * 64, "3", "f" * 64)
    assert skip and why.startswith("skipped: ") and "champion version 3" in why and "ffffffffffff" in why
    assert skip_decision(True, "f" * 64, "", "") == (False, "no champion yet: training")
    skip, why = skip_decision(True, "f" * 64, "3", "e" * 64)
    assert not skip and "changed since champion version 3" in why
    skip, why = skip_decision(False, "f" * 64, "3", "f" * 64)
    assert not skip and "skip_if_unchanged is false" in why
    skip, why = skip_decision(True, "f" * 64, "3", "")   # a champion registered before fingerprints were kept
    assert not skip and "not recorded" in why
