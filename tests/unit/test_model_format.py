"""A registered version's format: an MLflow pyfunc model whose weights/ is the save_pretrained folder, checked
against its checksums, answering rows of a prompt and an image (bytes or URI)."""
import io
import json
import shutil

import pandas as pd
import pytest

from components.common import vlm_pyfunc


def _png(colour=(200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def version(demo, tmp_path_factory):
    """The demo's base model as a registered version is laid out (flavor files + weights/)."""
    from pathlib import Path

    from components.register.core import flavor_files

    root = tmp_path_factory.mktemp("version") / "model"
    weights = Path(demo.base_model)
    flavor_files(root, vlm_pyfunc.checksums(weights), "# card\n", {"git_commit": "abc"})
    shutil.copytree(weights, root / vlm_pyfunc.WEIGHTS)
    return root


def test_a_version_loads_through_mlflow_and_answers_rows_with_image_bytes_a_uri_or_none(version, tmp_path,
                                                                                       monkeypatch):
    import mlflow

    monkeypatch.setenv("SEAVL_IMAGE_URI_SCHEMES", "file")   # a server reads no local files unless told to

    model = mlflow.pyfunc.load_model(str(version))
    sig = model.metadata.signature
    assert [c.name for c in sig.inputs.inputs] == ["prompt", "image", "image_uri"]
    assert sig.params.params[0].name == "max_new_tokens"
    picture = tmp_path / "red.png"
    picture.write_bytes(_png())
    rows = pd.DataFrame([{"prompt": "Describe the image.", "image": _png()},
                         {"prompt": "Describe the image.", "image_uri": str(picture)},
                         {"prompt": "Translate to Indonesian: a red circle"}])
    replies = model.predict(rows, params={"max_new_tokens": 8})
    assert len(replies) == 3 and all(isinstance(r, str) for r in replies)
    assert replies[0] == replies[1]   # the same image, as bytes or as a path: the same greedy reply
    assert (version / "README.md").read_text() == "# card\n"
    requirements = (version / "requirements.txt").read_text()
    assert "transformers==" in requirements and "torch==" in requirements


def test_a_changed_weight_file_is_refused_by_name(version, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(version, copy)
    target = next((copy / vlm_pyfunc.WEIGHTS).glob("*.safetensors"))
    data = bytearray(target.read_bytes())
    data[-1] ^= 1
    target.write_bytes(bytes(data))
    with pytest.raises(vlm_pyfunc.ChecksumMismatch, match=target.name):
        vlm_pyfunc.weights_folder(copy)
    (copy / vlm_pyfunc.WEIGHTS / "config.json").unlink()
    with pytest.raises(vlm_pyfunc.ChecksumMismatch, match="config.json"):
        vlm_pyfunc.weights_folder(copy)
    # a plain save_pretrained folder is its own weights folder; a version without checksums is refused
    assert vlm_pyfunc.weights_folder(version / vlm_pyfunc.WEIGHTS) == version / vlm_pyfunc.WEIGHTS
    (copy / vlm_pyfunc.CHECKSUMS).unlink()
    with pytest.raises(vlm_pyfunc.ChecksumMismatch, match="no checksums.json"):
        vlm_pyfunc.weights_folder(copy)


def test_image_uris_follow_only_the_allowed_schemes_and_size(tmp_path, monkeypatch):
    picture = tmp_path / "red.png"
    picture.write_bytes(_png())
    with pytest.raises(ValueError, match="scheme 'file' is not allowed"):   # default: https, s3, gs
        vlm_pyfunc._conversation({"prompt": "p", "image_uri": str(picture)})
    with pytest.raises(ValueError, match="scheme 'http' is not allowed"):
        vlm_pyfunc._conversation({"prompt": "p", "image_uri": "http://169.254.169.254/latest/meta-data"})
    monkeypatch.setenv("SEAVL_IMAGE_URI_SCHEMES", "file")
    [turn] = vlm_pyfunc._conversation({"prompt": "p", "image_uri": f"file://{picture}"})
    assert turn["content"][0]["image"].size == (32, 32)
    monkeypatch.setenv("SEAVL_MAX_IMAGE_BYTES", "10")
    with pytest.raises(ValueError, match="larger than 10 bytes"):
        vlm_pyfunc._conversation({"prompt": "p", "image_uri": str(picture)})


@pytest.mark.parametrize(("row", "error"), [
    ({"image": b"x"}, "non-empty `prompt`"),
    ({"prompt": "  "}, "non-empty `prompt`"),
    ({"prompt": "p", "image": _png(), "image_uri": "s3://b/x.png"}, "not both"),
    ({"prompt": "p", "image": "/x.png"}, "give a path or URI as `image_uri`"),
    ({"prompt": "p", "image": b"not an image"}, "cannot be read"),
])
def test_bad_rows_are_refused_with_the_reason(row, error):
    with pytest.raises(ValueError, match=error):
        vlm_pyfunc._conversation(row)


def test_rows_become_one_user_turn_with_the_image_first():
    [turn] = vlm_pyfunc._conversation({"prompt": "What is this?", "image": _png(), "image_uri": float("nan")})
    assert turn["role"] == "user" and [p["type"] for p in turn["content"]] == ["image", "text"]
    assert turn["content"][0]["image"].size == (32, 32)
    [turn] = vlm_pyfunc._conversation({"prompt": "Hello", "image": None})
    assert turn["content"] == [{"type": "text", "text": "Hello"}]


def test_a_registered_version_is_uploaded_once_and_a_ready_upload_is_reused(demo, local_mlflow, tmp_path):
    """log_model_version creates the version only after the upload; when a run uploaded the weights but failed
    before creating its version, the next registration of the same weights reuses that logged model."""
    from pathlib import Path

    from mlflow.entities import LoggedModelStatus
    from mlflow.tracking import MlflowClient

    from components.common import tracking
    from components.register.core import flavor_files

    client = MlflowClient()
    run_id = client.create_run(tracking.ensure_experiment(client, "t")).info.run_id
    weights = Path(demo.base_model)
    sums = vlm_pyfunc.checksums(weights)
    tags = {"weights_fingerprint": "w" * 64, "git_commit": "abc"}
    files = flavor_files(tmp_path / "model", sums, "# card\n", tags)
    version = tracking.log_model_version("m", run_id, weights, files, tags, {"eval/seahelm/total": 42.0}, "why",
                                         identity="weights_fingerprint")
    mv = client.get_model_version("m", version)
    model_id = mv.source.removeprefix("models:/")
    logged = client.get_logged_model(model_id)
    assert version == "1" and logged.status == LoggedModelStatus.READY and mv.description == "why"
    assert {m.key: m.value for m in logged.metrics} == {"eval/seahelm/total": 42.0}
    held = {f.path for f in client.list_logged_model_artifacts(model_id, "weights")}
    assert held == {f"weights/{rel}" for rel in sums}
    # the version is lost (say its creation failed after the upload): the same weights register from the upload
    client.delete_model_version("m", version)
    again = tracking.log_model_version("m", run_id, weights, files, tags, {}, "why", identity="weights_fingerprint")
    assert again == "2" and client.get_model_version("m", again).source == f"models:/{model_id}"
    assert len(client.search_logged_models([logged.experiment_id])) == 1   # nothing uploaded twice


def test_cut_off_weights_are_refused_by_name(demo, tmp_path):
    """A weight file cut short (a copy or upload that stopped), or a shard the index lists that is not there: the
    folder is refused before anything is loaded, naming the file."""
    from pathlib import Path

    from components.common.models import ModelFolderError, check_weights

    short = tmp_path / "short"
    shutil.copytree(demo.base_model, short)
    weights = short / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:
        f.truncate(size - 1000)
    with pytest.raises(ModelFolderError, match=f"model.safetensors is truncated: {size - 1000} bytes of the {size}"):
        check_weights(short)
    sharded = tmp_path / "sharded"
    shutil.copytree(demo.base_model, sharded)
    (sharded / "model.safetensors").rename(sharded / "model-00001-of-00002.safetensors")
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(ModelFolderError, match="lists 1 weight file.*model-00002-of-00002.safetensors"):
        check_weights(sharded)
    check_weights(Path(demo.base_model))


def test_code_shipped_in_a_model_folder_is_never_run(demo, tmp_path):
    """A model folder whose config points at its own Python code (`auto_map`, what trust_remote_code would
    import): loading it never imports that code."""
    from pathlib import Path

    from components.common.models import load_vlm

    folder = tmp_path / "remote-code"
    shutil.copytree(demo.base_model, folder)
    marker = tmp_path / "code-was-run"
    for name in ("modeling_evil.py", "processing_evil.py"):
        (folder / name).write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                   "class Evil: pass\nEvilModel = EvilProcessor = Evil\n")
    for name, key, target in (("config.json", "AutoModelForImageTextToText", "modeling_evil.EvilModel"),
                              ("processor_config.json", "AutoProcessor", "processing_evil.EvilProcessor"),
                              ("tokenizer_config.json", "AutoTokenizer", "processing_evil.EvilProcessor")):
        config = json.loads((folder / name).read_text())
        config["auto_map"] = {key: target}
        (folder / name).write_text(json.dumps(config))
    try:
        model, processor = load_vlm(folder)
        assert type(model).__name__ == "Gemma3ForConditionalGeneration"   # transformers' own class
    except ValueError as err:                                            # or refused: either way, not run
        assert "trust_remote_code" in str(err)
    assert not marker.exists()
    assert not Path(folder / "__pycache__").exists()
