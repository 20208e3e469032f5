"""Shared fixtures: the demo (built once, cached like `make run` does), a real S3 server (moto) and a real
MLflow tracking server backed by sqlite with its artifacts in that S3 bucket. The servers live for the whole
session; each test that needs a clean slate gets its own bucket or experiment."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def demo():
    from demo.build import ensure_demo

    return ensure_demo()


@pytest.fixture(scope="session")
def curated(demo, tmp_path_factory):
    """The first 256 caption pairs, curated by validate_data (a folder of Parquet files)."""
    from components.validate_data.core import ValidateConfig, validate

    work = tmp_path_factory.mktemp("data")
    root = Path(demo.captions).parent
    rows = [json.loads(line) for line in Path(demo.captions).read_text().splitlines()[:256]]
    manifest = work / "first-256.jsonl"
    manifest.write_text("".join(json.dumps({**r, "image": str(root / r["image"])}) + "\n" for r in rows))
    # synthetic shapes: no Southeast-Asian context, and look-alike scenes (see pipelines/configs/demo.yaml)
    report = validate(str(manifest), work / "out", ValidateConfig(min_sea_score=0.0, near_duplicate_bits=-1,
                                                                  image_root=str(root)))
    assert report.rows_curated == 256
    return str(work / "out" / "curated")


# What the fault and attack tests measured (time lost, retries, injected faults), printed after the run and
# quoted in RELIABILITY.md.
FIGURES: list[tuple[str, str]] = []


@pytest.fixture()
def figure(request):
    """figure(text): keep one measured figure of this test for the summary at the end of the run."""
    return lambda text: FIGURES.append((request.node.nodeid, text))


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("reliability figures")
        for node, text in FIGURES:
            terminalreporter.write_line(f"{node}: {text}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 endpoint (moto's HTTP server) with credentials in the environment."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                            "AWS_ENDPOINT_URL_S3", "MLFLOW_S3_ENDPOINT_URL")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="s3-secret-planted-5t8r",
                      AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL_S3=endpoint, MLFLOW_S3_ENDPOINT_URL=endpoint)
    yield endpoint
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def make_bucket(endpoint: str) -> str:
    import boto3

    name = f"test-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture()
def bucket(s3_server):
    return make_bucket(s3_server)


class MlflowServer:
    """`mlflow server` on loopback: sqlite backend store, artifacts proxied into an S3 bucket. `stop()` and
    `start()` take it away and bring it back on the same port with the same store."""

    def __init__(self, root: Path, bucket: str, admin_password: str = ""):
        """With `admin_password`, the server runs MLflow's basic-auth app and checks every request."""
        self.root, self.bucket, self.port = root, bucket, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.admin_password = admin_password
        self.proc = None

    def start(self, timeout: float = 90) -> None:
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
        auth = []
        if self.admin_password:
            config = self.root / "basic_auth.ini"
            config.write_text(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{self.root / 'auth.db'}\n"
                              f"admin_username = admin\nadmin_password = {self.admin_password}\n"
                              "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
            env.update(MLFLOW_AUTH_CONFIG_PATH=str(config), MLFLOW_FLASK_SERVER_SECRET_KEY=uuid.uuid4().hex)
            auth = ["--app-name", "basic-auth"]
        with open(self.root / "mlflow-server.log", "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                 "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
                 "--artifacts-destination", f"s3://{self.bucket}/mlflow", "--workers", "1", *auth],
                env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.proc.kill()
                raise RuntimeError("mlflow server did not start:\n" +
                                   (self.root / "mlflow-server.log").read_text()[-3000:])
            time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def mlflow_server(s3_server, tmp_path_factory):
    """One MLflow server for the session, its artifacts in their own bucket."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"), make_bucket(s3_server))
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def tracking_server(mlflow_server, monkeypatch):
    """Point this test's MLflow client (and the subprocesses it starts) at the session's server."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    return mlflow_server


@pytest.fixture()
def local_mlflow(tmp_path, monkeypatch):
    """A throwaway local sqlite tracking store."""
    monkeypatch.setenv("SEAVL_HOME", str(tmp_path / "seavl"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    from components.common import tracking

    return tracking.configure()


def bucket_keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys
