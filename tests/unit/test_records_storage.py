"""Record adapters and the storage layer, on local paths and on a real S3 endpoint (moto server)."""
import json

import boto3
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
    assert records.split_list(" en, th,,vi ") == ["en", "th", "vi"]


def _folder(root, files: dict[str, bytes]):
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_s3_round_trip_of_a_folder_and_a_manifest(s3_server, bucket, tmp_path):
    src = _folder(tmp_path / "model", {"config.json": b"{}", "sub/w.bin": b"\x00\x01"})
    storage.publish(src, f"s3://{bucket}/models/m1")
    # a sibling whose name starts the same must not leak into the download, nor make `exists` true
    storage.write_bytes(f"s3://{bucket}/models/m10/other.txt", b"x")
    got = storage.localize(f"s3://{bucket}/models/m1", dest=tmp_path / "copy")
    assert sorted(p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file()) == ["config.json", "sub/w.bin"]
    storage.write_bytes(f"s3://{bucket}/data/m.jsonl", (json.dumps({"id": 1}) + "\n").encode())
    assert records.read_jsonl(f"s3://{bucket}/data/m.jsonl") == [{"id": 1}]
    assert storage.exists(f"s3://{bucket}/data/m.jsonl") and storage.exists(f"s3://{bucket}/models/m1")
    assert not storage.exists(f"s3://{bucket}/models/m") and not storage.exists(f"s3://{bucket}/nope")
    with pytest.raises(FileNotFoundError, match="nope"):
        storage.localize(f"s3://{bucket}/nope")
    with pytest.raises(FileNotFoundError, match="nope"):
        storage.read_bytes(f"s3://{bucket}/nope")


def test_one_filesystem_object_per_process(s3_server, bucket):
    fs_a, path_a = storage.filesystem(f"s3://{bucket}/a.png")
    fs_b, path_b = storage.filesystem(f"s3://{bucket}/b/c.png")
    assert fs_a is fs_b and (path_a, path_b) == (f"{bucket}/a.png", f"{bucket}/b/c.png")


def test_the_cache_of_remote_inputs_is_validated(s3_server, bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("SEAVL_CACHE", str(tmp_path / "cache"))
    uri = f"s3://{bucket}/data"
    storage.write_bytes(f"{uri}/a.txt", b"one")
    storage.write_bytes(f"{uri}/b.txt", b"two")
    first = storage.localize(uri)
    assert (first / "a.txt").read_bytes() == b"one"
    # the object changes under the same key, another is deleted: the cached copy follows
    storage.write_bytes(f"{uri}/a.txt", b"ONE, changed")
    boto3.client("s3", endpoint_url=s3_server).delete_object(Bucket=bucket, Key="data/b.txt")
    again = storage.localize(uri)
    assert again == first and (again / "a.txt").read_bytes() == b"ONE, changed"
    assert not (again / "b.txt").exists()
    # a single object is cached and validated the same way
    assert storage.localize(f"{uri}/a.txt").read_bytes() == b"ONE, changed"
    storage.write_bytes(f"{uri}/a.txt", b"three")
    assert storage.localize(f"{uri}/a.txt").read_bytes() == b"three"


def test_fingerprints_follow_content_and_relative_names(s3_server, bucket, tmp_path):
    a = _folder(tmp_path / "a", {"x.txt": b"1", "sub/y.txt": b"2"})
    b = _folder(tmp_path / "elsewhere" / "b", {"x.txt": b"1", "sub/y.txt": b"2"})
    assert storage.fingerprint(str(a)) == storage.fingerprint(str(b))  # same content, other root
    renamed = _folder(tmp_path / "c", {"x.txt": b"1", "other/y.txt": b"2"})
    assert storage.fingerprint(str(renamed)) != storage.fingerprint(str(a))  # same names, other folder
    before = storage.fingerprint(str(a))
    (a / "x.txt").write_bytes(b"9")  # same size, other content
    assert storage.fingerprint(str(a)) != before
    # on S3: keys, sizes and ETags; a new object under the prefix changes the fingerprint
    storage.publish(b, f"s3://{bucket}/fp")
    remote = storage.fingerprint(f"s3://{bucket}/fp")
    assert remote == storage.fingerprint(f"s3://{bucket}/fp")
    storage.write_bytes(f"s3://{bucket}/fp/new.txt", b"")
    assert storage.fingerprint(f"s3://{bucket}/fp") != remote
    with pytest.raises(FileNotFoundError):
        storage.fingerprint(str(tmp_path / "nothing"))


def test_registered_versions_are_cached_per_registry(tmp_path, monkeypatch):
    """`models:/m/1` of one tracking server is not `models:/m/1` of another: each is downloaded on its own."""
    from mlflow.tracking import MlflowClient

    from components.common import tracking

    monkeypatch.setenv("SEAVL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    got = []
    for store in ("a", "b"):
        uri = f"sqlite:///{tmp_path / store}.db"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        tracking.configure()   # tracking and registry both on this store
        weights = tmp_path / f"weights-{store}"
        weights.mkdir()
        (weights / "model.safetensors").write_text(f"weights of {store}")
        client = MlflowClient()
        exp = client.create_experiment("e", artifact_location=(tmp_path / f"art-{store}").as_uri())
        run = client.create_run(exp)
        client.log_artifacts(run.info.run_id, str(weights), "model")
        client.create_registered_model("m")
        client.create_model_version("m", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        got.append((storage.localize("models:/m/1") / "model.safetensors").read_text())
    assert got == ["weights of a", "weights of b"]


# A step's writer killed (SIGKILL) at a chosen point: in the middle of the bytes, or after the bytes and before the
# file is put in its place. The child process really dies there; nothing it wrote may pass for complete.
_DIE = """
import os, signal, sys, tempfile
from pathlib import Path
from components.common import storage

target, point = sys.argv[1], sys.argv[2]
die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
if point == "mid-write":
    opened = tempfile.NamedTemporaryFile

    class Half:
        def __init__(self, *a, **k):
            self.f = opened(*a, **k)
            self.name = self.f.name
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return False
        def write(self, data):
            self.f.write(data[: len(data) // 2]); self.f.flush(); die()
    tempfile.NamedTemporaryFile = Half
elif point == "before-rename":
    os.replace = die
elif point == "folder-mid-copy":
    import shutil
    real = shutil.copyfile
    shutil.copyfile = lambda src, dst, **k: die() if Path(src).name == "model.safetensors" else real(src, dst, **k)
if point.startswith("folder"):
    storage.publish(Path(sys.argv[3]), target)
else:
    storage.write_bytes(target, ("".join('{"id": "%d", "response": "r"}\\n' % i for i in range(1000))).encode())
"""


@pytest.mark.parametrize("point", ["mid-write", "before-rename", "folder-mid-copy"])
def test_a_writer_killed_midway_leaves_nothing_that_passes_for_complete(demo, tmp_path, point):
    """A reply part file (evaluation's resumable store) or a model folder whose writer is killed: the target is
    absent; the replies already stored are read back whole, and a resumed evaluation would regenerate only the
    missing part; an older model folder in the target's place stays as it was."""
    import subprocess
    import sys
    from pathlib import Path

    from components.common.models import check_weights

    folder = tmp_path / "replies" / "xm3600" / "th"
    storage.write_bytes(str(folder / "part-a.jsonl"), b'{"id": "done", "response": "kept"}\n')
    if point.startswith("folder"):
        target, source = tmp_path / "model", Path(demo.base_model)
        storage.publish(Path(demo.reference_model), str(target))      # the output of an earlier attempt
        before = sorted(p.name for p in target.iterdir())
        args = [str(target), point, str(source)]
    else:
        target = folder / "part-b.jsonl"
        args = [str(target), point]
    died = subprocess.run([sys.executable, "-c", _DIE, *args], cwd=str(Path(__file__).parents[2]))
    assert died.returncode == -9
    if point.startswith("folder"):
        assert sorted(p.name for p in target.iterdir()) == before
        check_weights(target)
        kept = Path(demo.reference_model)
        assert all((target / name).read_bytes() == (kept / name).read_bytes() for name in before)
        storage.publish(source, str(target))      # the step run again: the killed attempt's leftovers go
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".model")] == []
        assert (target / "model.safetensors").read_bytes() == (source / "model.safetensors").read_bytes()
    else:
        assert not target.exists()
        assert [r["id"] for r in records.iter_rows(str(folder))] == ["done"]
