"""Stand-ins for the release run: small objects under every key of the bucket `sealion-vl` that
pipelines/configs/sealion-v4-27b-vl.yaml and its suite name, on a real S3 server (moto), so that `seavl check` can
be run on the release configuration unchanged, on any machine.

    .venv/bin/python -m tests.support.standin [--port 9000]

builds them, serves them until stopped, and prints the environment that points `seavl` at them.

The stand-in models are the demo's tiny model folder (real safetensors, processor, tokenizer) with the config.json
of Gemma-3-27B (the planner's record of google/gemma-3-27b-it's configuration): the check reads only a model's
listing, config.json and safetensors headers, so it plans the 27B model the release trains while the weights
stay tiny. The check cannot tell such a stand-in from the real folder; that is its point: it reads no weights.
The data are a few caption shards and MAmmoTH-VL records with their images, and a few items of every evaluation
file in its dataset's public schema. Broken variants sit beside them (models/pickle-only, data/mammoth-vl/
no-images.jsonl, eval/seahelm/suite-hidden.yaml) for the tests of what the check refuses.
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import string
import tarfile
import time
from pathlib import Path

from tests.support import seahelm as data

REPO = Path(__file__).resolve().parents[2]
RELEASE = REPO / "pipelines" / "configs" / "sealion-v4-27b-vl.yaml"
SUITE = RELEASE.with_name("sealion-v4-27b-vl-suite.yaml")
BUCKET = "sealion-vl"
SHARDS, PER_SHARD, SFT_RECORDS = 3, 4, 12
CAPTIONS = ("Pasar terapung di Bangkok", "Nasi lemak dengan sambal, telur rebus dan ikan bilis di atas daun pisang",
            "Candi Borobudur saat matahari terbit")


def model(src: Path, dest: Path) -> None:
    """The tiny model folder `src` at `dest`, with Gemma-3-27B's config.json."""
    from components.train.plan import named_config

    shutil.copytree(src, dest)
    config = named_config("gemma-3-27b").to_dict()
    (dest / "config.json").write_text(json.dumps(config))


def eval_data(root: Path) -> None:
    """Every file the release suite names, in its dataset's public schema, a few items each."""
    import yaml

    from components.evaluate.seahelm.tasks import WORLD_CUISINES_LANGS, WORLD_CUISINES_PROMPT_TYPES, prompts

    suite = yaml.safe_load(SUITE.read_text())
    for task, spec in suite["tasks"].items():
        langs = spec.get("languages") or list(spec["data"])
        files = spec["data"] if isinstance(spec["data"], dict) else dict.fromkeys(langs, spec["data"])
        for lang, uri in files.items():
            path = root / uri.split(f"s3://{BUCKET}/", 1)[1]
            if path.exists():   # CVQA and WorldCuisines: one file for every language
                continue
            if task == "xm3600":
                data.xm3600(path, [(f"{lang}{i}", [f"caption {i}"]) for i in range(2)])
            elif task == "marvl":
                data.marvl(path, [(f"{lang}{i}", "hipotesis", bool(i % 2)) for i in range(2)])
            elif task == "cvqa":
                data.cvqa(path, [(f"{la}{i}", la, i) for la in langs for i in range(2)])
            elif task.startswith("world_cuisine"):   # 5 items per prompt type: SEA-HELM's reshuffle needs that
                rows = [(f"{la}-{t}-{i}", WORLD_CUISINES_LANGS[la], t, i % 5) for la in langs
                        for t in WORLD_CUISINES_PROMPT_TYPES[task.rsplit("_", 1)[1]] for i in range(5)]
                data.world_cuisines(path, rows, root / "eval/seahelm/world_cuisines")
            else:   # SEA-HELM's text files: {"id", "label", "prompts"}, the prompt's fields its template's
                template = prompts()[task]["languages"][lang]["task_template"]
                fields = {name: "teks" for _, name, _, _ in string.Formatter().parse(template) if name}
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"id": f"{task}-{lang}", "label": ["jawaban"] if task == "qa" else "A",
                                            "prompts": [fields]}) + "\n")
    (root / "eval/seahelm/judge").mkdir(parents=True)
    (root / "eval/seahelm/judge/open_clip_pytorch_model.bin").write_bytes(b"stand-in")
    (root / "eval/seahelm/metricx").mkdir(parents=True)
    (root / "eval/seahelm/metricx/config.json").write_text("{}")
    shutil.copy(SUITE, root / "eval/seahelm/suite.yaml")


def upload(endpoint: str, root: Path, **credentials) -> None:
    """The files under `root` into the bucket, keyed by their path."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, **credentials)
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        client.upload_file(str(f), BUCKET, f.relative_to(root).as_posix())


def build(root: Path, demo_root: Path) -> None:
    """Every stand-in, as files under `root` laid out as the bucket's keys."""
    from tests.support.corpus import jpeg

    model(demo_root / "base-model", root / "models/gemma-sea-lion-v4-27b-it")
    model(demo_root / "base-model", root / "models/gemma-3-27b-it")
    pickle_only = root / "models/pickle-only"   # a broken variant: the same folder with pickle weights
    model(demo_root / "base-model", pickle_only)
    (pickle_only / "model.safetensors").rename(pickle_only / "pytorch_model.bin")
    shards = root / "data/captions/shards"
    shards.mkdir(parents=True)
    for n in range(SHARDS):
        with tarfile.open(shards / f"{n:05d}.tar", "w") as tar:
            for k in range(PER_SHARD):
                key = f"{n:05d}{k:04d}"
                caption = CAPTIONS[(n + k) % len(CAPTIONS)]
                for name, blob in ((f"{key}.jpg", jpeg(n * PER_SHARD + k)), (f"{key}.txt", caption.encode()),
                                   (f"{key}.json", b'{"lang": "id"}')):
                    info = tarfile.TarInfo(name)
                    info.size = len(blob)
                    tar.addfile(info, io.BytesIO(blob))
    sft = root / "data/mammoth-vl/mammoth_si_10M.jsonl"
    (sft.parent / "img").mkdir(parents=True)
    with sft.open("w") as f:
        for i in range(SFT_RECORDS):
            (sft.parent / f"img/{i}.jpg").write_bytes(jpeg(100 + i))
            f.write(json.dumps({"id": str(i), "image": f"img/{i}.jpg", "conversations": [
                {"from": "human", "value": "<image>\nWhat is this?"},
                {"from": "gpt", "value": "A floating market. " * (1 + i % 7)}]}) + "\n")
    sft.with_name("no-images.jsonl").write_text(sft.read_text().replace('"img/', '"missing/'))
    eval_data(root)
    # a broken variant: the same suite, its CVQA file CVQA's public test split, answers hidden (Label -1)
    data.cvqa(root / "eval/seahelm/cvqa/public-test.parquet", [("h0", "id", -1), ("h1", "ms", 2)])
    (root / "eval/seahelm/suite-hidden.yaml").write_text(
        SUITE.read_text().replace("cvqa/test.parquet", "cvqa/public-test.parquet"))


def serve(port: int = 0) -> tuple[object, str]:
    """A moto S3 server on `port` (0: a free one) holding the stand-ins: (server, endpoint)."""
    import tempfile

    import boto3
    from moto.server import ThreadedMotoServer

    from demo.build import ensure_demo
    from tests.conftest import free_port

    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="seavl-standin-") as tmp:
        build(Path(tmp), ensure_demo().root)
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket=BUCKET)
        upload(endpoint, Path(tmp), aws_access_key_id="testing", aws_secret_access_key="testing",
               region_name="us-east-1")
    return server, endpoint


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=9000)
    args = ap.parse_args(argv)
    server, endpoint = serve(args.port)
    print(f"s3://{BUCKET} stand-ins served at {endpoint} (Ctrl-C stops it). In another shell:\n"
          f"  export AWS_ENDPOINT_URL_S3={endpoint} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
          "AWS_DEFAULT_REGION=us-east-1\n"
          f"  .venv/bin/seavl check --config pipelines/configs/sealion-v4-27b-vl.yaml", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
