"""`seavl schedule / schedules / unschedule / submit` against a fake KFP v2beta1 REST API on loopback (http.server
in a thread) that answers as kfp-server-api 2.17 reads it and records every request."""
from __future__ import annotations

import json
import os
import threading
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import kfp
import pytest
from typer.testing import CliRunner

from pipelines import kfp_client
from pipelines.cli import app, git_commit
from tests.conftest import free_port

API = "/apis/v2beta1"


class FakeKfp:
    """Just enough of KFP's v2beta1 API: healthz, experiments list/create, recurring runs create/list/get/delete.
    `page_cap`: the most recurring runs one list answer holds (as the real server caps page_size). `token`: when
    set, a request without `Authorization: Bearer <token>` gets 401; `healthz_open` lets healthz through anyway
    (as a server that checks credentials only on the API proper)."""

    def __init__(self, page_cap: int = 2, token: str | None = None, healthz_open: bool = False):
        self.requests: list[dict] = []
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.started: list[str] = []   # ids of the runs created
        self.page_cap, self.token, self.healthz_open = page_cap, token, healthz_open
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self):
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                record = {"method": self.command, "path": url.path,
                          "query": dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True)),
                          "headers": {k.lower(): v for k, v in self.headers.items()},
                          "body": json.loads(raw) if raw else None}
                with fake.lock:
                    fake.requests.append(record)
                    status, answer = fake.answer(record)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def error(status: int, code: int, message: str) -> tuple[int, dict]:
        return status, {"error": message, "code": code, "message": message, "details": []}

    def add_run(self, name: str, cron: str, experiment_id: str, params: dict | None = None) -> str:
        run_id = f"rr-{len(self.runs) + 1}"
        self.runs[run_id] = {"recurring_run_id": run_id, "display_name": name, "experiment_id": experiment_id,
                             "trigger": {"cron_schedule": {"cron": cron}}, "mode": "ENABLE", "status": "ENABLED",
                             "max_concurrency": "1", "no_catchup": True,
                             "runtime_config": {"parameters": params or {}},
                             "created_at": datetime(2025, 1, len(self.runs) + 1, 3, tzinfo=timezone.utc)
                             .isoformat().replace("+00:00", "Z")}
        return run_id

    def add_experiment(self, name: str) -> str:
        exp_id = f"exp-{len(self.experiments) + 1}"
        self.experiments[exp_id] = {"experiment_id": exp_id, "display_name": name, "namespace": "",
                                    "created_at": "2025-01-01T00:00:00Z", "storage_state": "AVAILABLE"}
        return exp_id

    def answer(self, r: dict) -> tuple[int, dict]:
        method, path, query, body = r["method"], r["path"], r["query"], r["body"]
        if self.token and r["headers"].get("authorization") != f"Bearer {self.token}" and not (
                self.healthz_open and path == f"{API}/healthz"):
            return self.error(401, 16, "Unauthenticated: token refused")
        if path == f"{API}/healthz" and method == "GET":
            return 200, {"multi_user": False, "pipeline_store": ""}
        if path == f"{API}/experiments" and method == "GET":
            exps = list(self.experiments.values())
            if query.get("filter"):
                wanted = {p["stringValue"] for p in json.loads(query["filter"])["predicates"]
                          if p["key"] == "display_name"}
                exps = [e for e in exps if e["display_name"] in wanted]
            return 200, ({"experiments": exps, "total_size": len(exps)} if exps else {})
        if path == f"{API}/experiments" and method == "POST":
            exp_id = self.add_experiment(body["display_name"])
            return 200, self.experiments[exp_id]
        if path == f"{API}/recurringruns" and method == "POST":
            run_id = self.add_run(body["display_name"], body["trigger"]["cron_schedule"]["cron"],
                                  body["experiment_id"], body["runtime_config"]["parameters"])
            return 200, self.runs[run_id]
        if path == f"{API}/runs" and method == "POST":
            run = {**body, "run_id": f"run-{len(self.requests)}", "state": "PENDING",
                   "created_at": "2025-01-01T00:00:00Z"}
            self.started.append(run["run_id"])
            return 200, run
        if path == f"{API}/recurringruns" and method == "GET":
            runs = [v for v in self.runs.values()
                    if not query.get("experiment_id") or v["experiment_id"] == query["experiment_id"]]
            start = int(query.get("page_token") or 0)
            end = start + min(int(query.get("page_size") or 10), self.page_cap)
            page = {"recurringRuns": runs[start:end], "total_size": len(runs)}  # sic: kfp-server-api's key
            if end < len(runs):
                page["next_page_token"] = str(end)
            return 200, page
        if path.startswith(f"{API}/recurringruns/"):
            run_id = path.rsplit("/", 1)[1]
            if run_id not in self.runs:
                return self.error(404, 5, f"Failed to get recurring run: ResourceNotFoundError: Job {run_id} not found")
            if method == "GET":
                return 200, self.runs[run_id]
            if method == "DELETE":
                del self.runs[run_id]
                return 200, {}
        return self.error(404, 5, f"no route {method} {path}")

    def sent(self, method: str, path: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and r["path"] == API + path]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("KFP_HOST", "KFP_TOKEN", "KF_PIPELINES_ENDPOINT", "KF_PIPELINES_IAP_OAUTH2_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "no-sa-token"))
    monkeypatch.setenv("COLUMNS", "200")  # the rich tables unwrapped
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))


@pytest.fixture()
def kfp_api():
    fake = FakeKfp()
    yield fake
    fake.close()


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_schedule_sends_one_recurring_run_with_the_compiled_pipeline(kfp_api, tmp_path):
    config = tmp_path / "args.yaml"
    config.write_text("eval_gpus: 2\ntrain_gpus: 16\n")
    result = invoke("schedule", "--host", kfp_api.url, "--cron", "0 3 * * *", "--config", str(config),
                    "--param", "train_gpus=4", "--param", "languages=en,id", "--experiment", "nightly",
                    "--name", "retrain-nightly", "--token", "s3cret")
    assert result.exit_code == 0, result.output
    creates = kfp_api.sent("POST", "/recurringruns")
    assert len(creates) == 1
    body = creates[0]["body"]
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * *"}}
    assert int(body["max_concurrency"]) == 1 and body["no_catchup"] is True and body["mode"] == "ENABLE"
    assert body["display_name"] == "retrain-nightly"
    spec = body["pipeline_spec"].get("pipeline_spec", body["pipeline_spec"])  # with a platform spec: nested
    assert spec["pipelineInfo"]["name"] == "sealion-vl"
    params = body["runtime_config"]["parameters"]
    assert params["train_gpus"] == 4 and params["eval_gpus"] == 2 and params["languages"] == "en,id"
    assert params["git_commit"] == git_commit()
    assert params["skip_if_unchanged"] is True   # scheduled runs skip unchanged data
    # the experiment was looked up by name, then created, and the run filed under it
    assert [e["display_name"] for e in kfp_api.experiments.values()] == ["nightly"]
    assert body["experiment_id"] == next(iter(kfp_api.experiments))
    assert {r["headers"].get("authorization") for r in kfp_api.requests} == {"Bearer s3cret"}
    assert kfp_api.requests[0]["path"] == f"{API}/healthz"
    run_id = next(iter(kfp_api.runs))
    assert f"scheduled {run_id}" in result.stdout and "'0 0 3 * * *'" in result.stdout
    assert "from '0 3 * * *'" in result.stdout


def test_schedule_keeps_a_skip_if_unchanged_given(kfp_api):
    result = invoke("schedule", "--host", kfp_api.url, "--cron", "0 0 3 * * *", "--param",
                    "skip_if_unchanged=false")
    assert result.exit_code == 0, result.output
    assert kfp_api.sent("POST", "/recurringruns")[0]["body"]["runtime_config"]["parameters"][
        "skip_if_unchanged"] is False


def test_schedules_lists_every_page(kfp_api):
    exp = kfp_api.add_experiment("sealion-vl")
    other = kfp_api.add_experiment("other")
    for i in range(3):
        kfp_api.add_run(f"nightly-{i}", f"0 0 {i} * * *", exp, {"train_gpus": i})
    kfp_api.add_run("elsewhere", "0 0 5 * * *", other)
    result = invoke("schedules", "--host", kfp_api.url, "--experiment", "sealion-vl")
    assert result.exit_code == 0, result.output
    pages = kfp_api.sent("GET", "/recurringruns")
    assert [p["query"].get("page_token", "") for p in pages] == ["", "2"]
    assert {p["query"]["experiment_id"] for p in pages} == {exp}
    for i in range(3):
        assert f"rr-{i + 1}" in result.stdout and f"nightly-{i}" in result.stdout
        assert f"0 0 {i} * * *" in result.stdout
    assert "ENABLED" in result.stdout and "2025-01-01 03:00 UTC" in result.stdout
    assert "elsewhere" not in result.stdout and "3 recurring run(s)" in result.stdout

    found = kfp_client.list_schedules(kfp_client.connect(kfp_api.url), None)  # all experiments, 2 pages
    assert [s["id"] for s in found] == ["rr-1", "rr-2", "rr-3", "rr-4"]
    assert found[1] == {"id": "rr-2", "name": "nightly-1", "cron": "0 0 1 * * *", "status": "ENABLED",
                        "enabled": True, "created": "2025-01-02T03:00:00+00:00", "experiment_id": exp,
                        "params": {"train_gpus": 1}}


def test_schedules_of_an_unknown_experiment_exit_2(kfp_api):
    result = invoke("schedules", "--host", kfp_api.url, "--experiment", "nope")
    assert result.exit_code == 2
    assert "No experiment is found with name nope" in result.stderr
    assert not kfp_api.sent("GET", "/recurringruns") and not kfp_api.sent("POST", "/experiments")


def test_unschedule_deletes_and_an_unknown_id_exits_2(kfp_api):
    exp = kfp_api.add_experiment("sealion-vl")
    run_id = kfp_api.add_run("nightly", "0 0 3 * * *", exp)
    result = invoke("unschedule", run_id, "--host", kfp_api.url)
    assert result.exit_code == 0, result.output
    assert [r["path"] for r in kfp_api.requests if r["method"] == "DELETE"] == [f"{API}/recurringruns/{run_id}"]
    assert run_id not in kfp_api.runs
    assert f"removed {run_id} (nightly, cron '0 0 3 * * *')" in result.stdout

    result = invoke("unschedule", "rr-404", "--host", kfp_api.url)
    assert result.exit_code == 2
    assert "rr-404" in result.stderr and "not found" in result.stderr
    assert len([r for r in kfp_api.requests if r["method"] == "DELETE"]) == 1


@pytest.mark.parametrize("cron", ["0 3 * *", "0 0 3 * * * *", "61 * * * *", "@daily", "0 0 3 * * FUNDAY"])
def test_a_bad_cron_exits_2_before_any_request(kfp_api, cron):
    result = invoke("schedule", "--host", kfp_api.url, "--cron", cron)
    assert result.exit_code == 2
    assert f"bad cron expression {cron!r}" in result.stderr
    assert kfp_api.requests == []


def test_cron_forms():
    assert kfp_client.normalise_cron("0 3 * * *") == "0 0 3 * * *"
    assert kfp_client.normalise_cron(" 0  0 9 ? * MON-FRI ") == "0 0 9 ? * MON-FRI"
    assert kfp_client.normalise_cron("*/15 1,13 1-5 jan *") == "0 */15 1,13 1-5 jan *"
    with pytest.raises(ValueError, match="'\\*/0 \\* \\* \\* \\*'"):
        kfp_client.normalise_cron("*/0 * * * *")


def test_an_unknown_parameter_exits_2_naming_it(kfp_api):
    result = invoke("schedule", "--host", kfp_api.url, "--cron", "0 3 * * *", "--param", "train_gpu=4")
    assert result.exit_code == 2
    assert "unknown pipeline parameter(s) ['train_gpu']" in result.stderr
    assert kfp_api.requests == []


def test_an_unreachable_host_exits_2_naming_it():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = invoke("schedule", "--host", url, "--cron", "0 3 * * *")
    assert result.exit_code == 2
    assert f"cannot reach the KFP API at {url}" in result.stderr


def test_no_host_exits_2():
    result = invoke("schedules")
    assert result.exit_code == 2 and "no KFP host" in result.stderr


@pytest.mark.parametrize("healthz_open", [False, True], ids=["refused-at-healthz", "refused-by-the-api"])
def test_a_refused_token_exits_2(healthz_open):
    fake = FakeKfp(token="right", healthz_open=healthz_open)
    try:
        result = invoke("schedule", "--host", fake.url, "--cron", "0 3 * * *", "--token", "wrong")
        assert result.exit_code == 2
        assert f"{fake.url} refused" in result.stderr and "HTTP 401" in result.stderr
        assert "token/credentials were not accepted" in result.stderr
        assert fake.requests and not fake.sent("POST", "/recurringruns") and not fake.sent("POST", "/experiments")
        if not healthz_open:
            assert [r["path"] for r in fake.requests] == [f"{API}/healthz"]  # one request, no retries
    finally:
        fake.close()


def test_in_cluster_service_account_token_is_sent(monkeypatch, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("sa-token-123\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token_file))
    fake = FakeKfp(token="sa-token-123")
    try:
        exp = fake.add_experiment("sealion-vl")
        fake.add_run("nightly", "0 0 3 * * *", exp)
        result = invoke("schedules", "--host", fake.url)
        assert result.exit_code == 0, result.output
        assert "nightly" in result.stdout
        assert {r["headers"].get("authorization") for r in fake.requests} == {"Bearer sa-token-123"}
        assert fake.sent("GET", "/recurringruns")
        # the kubelet rotates the token: each request reads the file again
        client = kfp_client.connect(fake.url)
        token_file.write_text("sa-token-456")
        fake.token = "sa-token-456"
        assert [s["name"] for s in kfp_client.list_schedules(client)] == ["nightly"]
        assert fake.requests[-1]["headers"]["authorization"] == "Bearer sa-token-456"
    finally:
        fake.close()


def _kubectl(tmp_path, monkeypatch, rc: int, stderr: str = ""):
    """A stand-in `kubectl` on PATH that records its arguments and answers as a cluster would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "kubectl"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/kubectl.args\n"
                      f"[ {rc} -eq 0 ] && echo secret/seavl-mlflow\necho '{stderr}' >&2\nexit {rc}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return tmp_path / "kubectl.args"


def test_submit_checks_the_secret_compiles_and_starts_one_run(kfp_api, tmp_path, monkeypatch):
    args_file = _kubectl(tmp_path, monkeypatch, 0)
    r = invoke("submit", "--no-check", "--host", kfp_api.url, "--namespace", "team-a", "--experiment", "exp",
               "--param", "eval_gpus=2", "--param", "train_cpu=32", "--pipeline-root", "s3://sealion-vl/root",
               "--token", "tok-1", "--image-registry", "reg.local/t")
    assert r.exit_code == 0, r.output
    assert "secret seavl-mlflow in namespace team-a: found" in r.output
    assert args_file.read_text().split()[:5] == ["get", "secret", "seavl-mlflow", "-n", "team-a"]
    [sent] = kfp_api.sent("POST", "/runs")
    assert sent["headers"]["authorization"] == "Bearer tok-1"
    assert sent["body"]["runtime_config"]["parameters"]["eval_gpus"] == 2
    assert sent["body"]["runtime_config"]["parameters"]["train_cpu"] == "32"   # a string parameter, sent as one
    assert sent["body"]["runtime_config"]["parameters"]["git_commit"] == git_commit()
    assert sent["body"]["runtime_config"]["pipeline_root"] == "s3://sealion-vl/root"
    spec = sent["body"]["pipeline_spec"]
    spec = spec.get("pipeline_spec", spec)
    assert spec["pipelineInfo"]["name"] == "sealion-vl"
    assert {e["container"]["image"].rsplit(":", 1)[0] for e in spec["deploymentSpec"]["executors"].values()} == \
        {"reg.local/t/sealion-vl-cpu", "reg.local/t/sealion-vl-gpu"}
    [run_id] = kfp_api.started
    assert r.output.splitlines()[-1] == f"run {run_id} started in experiment exp: {kfp_api.url}/#/runs/details/{run_id}"


def test_submit_stops_when_the_secret_is_missing_and_says_how_to_create_it(kfp_api, tmp_path, monkeypatch):
    _kubectl(tmp_path, monkeypatch, 1, 'Error from server (NotFound): secrets "seavl-mlflow" not found')
    r = invoke("submit", "--no-check", "--host", kfp_api.url)
    assert r.exit_code == 2
    assert "secret seavl-mlflow is not in namespace kubeflow" in r.output
    assert "kubectl create secret generic seavl-mlflow -n kubeflow --from-env-file=" in r.output
    assert not kfp_api.sent("POST", "/runs")
    # a cluster kubectl cannot reach: said, not fatal (the KFP API decides)
    _kubectl(tmp_path, monkeypatch, 1, "The connection to the server localhost:8080 was refused")
    r = invoke("submit", "--no-check", "--host", kfp_api.url)
    assert r.exit_code == 0 and "not checked: The connection to the server" in r.output
    # an unknown parameter is refused before anything is sent
    r = invoke("submit", "--host", kfp_api.url, "--no-check-secret", "--param", "eval_gpuz=2")
    assert r.exit_code == 2 and "eval_gpuz" in r.output and len(kfp_api.sent("POST", "/runs")) == 1
    r = invoke("submit", "--host", kfp_api.url, "--no-check-secret", "--param", "train_gpus=eight")
    assert r.exit_code == 2 and "pipeline parameter train_gpus takes integer values, got 'eight'" in " ".join(
        r.output.split())
