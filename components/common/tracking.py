"""MLflow tracking, in one place. Step cores never touch MLflow: they return results (and may take a
`log(metrics, step)` callback for figures that stream during training); the components hand those results
to this module, which opens the step's run, logs them and closes it.

Layout: one MLflow run per pipeline run (the "pipeline run", tagged `kfp.pipeline_run_id`, as KFP's own MLflow
integration tags it) with one nested run per step (tagged `kfp.step`).

Which pipeline run a step belongs to comes from the environment, never from a task input (an input that
changes every run would defeat KFP's cache): `KFP_RUN_ID` holds the KFP run id. On a cluster the pipeline maps
it from the pod's `pipeline/runid` label; `seavl run` sets it locally. When KFP's MLflow integration is on,
it injects MLFLOW_RUN_ID, the task's own run, nested under the pipeline run it made: that run is the step's run.

Faults: `check_reachable` fails at once, naming the URI, when the tracking server cannot be reached or refuses
the credentials, so nothing waits for MLflow's retries at the start of a step. During a step, streamed metrics
go to a file on local disk first and reach the server from a background thread, so an outage pauses
nothing and loses nothing: they are replayed when it comes back, and the step ends only once they are in.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PIPELINE_RUN_TAG = "kfp.pipeline_run_id"  # on the pipeline run (KFP's MLflow integration sets the same tag)
STEP_TAG = "kfp.step"                     # on each step run
REUSED_TAG = "seavl.reused."              # + step name, on the pipeline run: the step run a cached task made
PIPELINE_METRICS_FILE = "pipeline_metrics.json"
RUN_ID_ENV = "KFP_RUN_ID"
DEFAULT_EXPERIMENT = "sealion-vl"
_STATUS = {"SUCCEEDED": "FINISHED", "FAILED": "FAILED", "CANCELED": "KILLED", "CANCELLED": "KILLED"}


class TrackingUnavailable(RuntimeError):
    """The tracking server cannot be reached, refuses the credentials, or did not take buffered metrics."""


def home() -> Path:
    """Where local runs keep their state: $SEAVL_HOME, else ./.seavl."""
    return Path(os.environ.get("SEAVL_HOME") or ".seavl").absolute()


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    home().mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home() / 'mlflow.db'}"


def configure() -> str:
    """Point mlflow at the tracking server; returns the URI used."""
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def check_reachable(uri: str | None = None, timeout: float = 10.0) -> None:
    """Raise TrackingUnavailable, naming `uri`, unless the tracking server answers an authenticated request
    within `timeout` seconds, without retries. Local stores (sqlite, files) always pass."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    uri = uri or tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    try:
        resp = http_request(get_default_host_creds(uri), "/api/2.0/mlflow/experiments/get-by-name", "GET",
                            params={"experiment_name": "Default"}, max_retries=0, timeout=timeout,
                            raise_on_status=False)
    except Exception as err:  # connection refused, DNS, timeout: all arrive wrapped by MLflow
        raise TrackingUnavailable(f"MLflow tracking server {uri} (MLFLOW_TRACKING_URI) cannot be reached: "
                                  f"{err}") from None
    if resp.status_code in (401, 403):
        raise TrackingUnavailable(f"MLflow tracking server {uri} refused the credentials (HTTP {resp.status_code});"
                                  " check MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN")
    if resp.status_code not in (200, 404):  # 404: no experiment "Default", but the server answered
        raise TrackingUnavailable(f"MLflow tracking server {uri} answered HTTP {resp.status_code}: "
                                  f"{resp.text[:300]}")


def mlflow_client():
    """An MlflowClient for the configured tracking server and registry."""
    from mlflow.tracking import MlflowClient

    configure()
    return MlflowClient()


def ensure_experiment(client, name: str) -> str:
    """The id of experiment `name`, created if needed (local stores keep artifacts under $SEAVL_HOME)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        # A local store: keep artifacts beside the database, not in ./mlruns of whatever the cwd is.
        location = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


def kfp_run_id() -> str:
    """The KFP run this process belongs to ('' outside a pipeline)."""
    return os.environ.get(RUN_ID_ENV, "")


def experiment_ids(client) -> list[str]:
    """The ids of every experiment on the tracking server."""
    ids, token = [], None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        ids += [e.experiment_id for e in page]
        token = page.token
        if not token:
            return ids


def find_pipeline_run(client, run_id: str):
    """The pipeline run tagged with KFP run id `run_id`, in any experiment, or None."""
    if not run_id:
        return None
    ids = experiment_ids(client)
    for start in range(0, len(ids), 100):
        found = client.search_runs(ids[start:start + 100], filter_string=f"tags.`{PIPELINE_RUN_TAG}` = '{run_id}'",
                                   max_results=1, order_by=["attributes.start_time ASC"])
        if found:
            return found[0]
    return None


def pipeline_run_of(client, run) -> str | None:
    """The id of the pipeline run `run` belongs to: `run` itself or the nearest ancestor carrying the KFP run
    tag (under KFP's MLflow integration a task's run may sit under a DAG's run)."""
    for _ in range(16):
        if PIPELINE_RUN_TAG in run.data.tags:
            return run.info.run_id
        parent = run.data.tags.get("mlflow.parentRunId")
        if not parent:
            return None
        run = client.get_run(parent)
    return None


def _current_pipeline_run(client):
    """This process's pipeline run: the platform's (above MLFLOW_RUN_ID) or ours (by KFP_RUN_ID); or None."""
    injected = os.environ.get("MLFLOW_RUN_ID")
    pid = pipeline_run_of(client, client.get_run(injected)) if injected else None
    return client.get_run(pid) if pid else find_pipeline_run(client, kfp_run_id())


def open_pipeline_run(experiment: str, run_name: str) -> str:
    """Create (or find, when called again in the same KFP run) the pipeline run; returns its id. Under KFP's
    MLflow integration the platform made it already."""
    check_reachable()
    client = mlflow_client()
    run = _current_pipeline_run(client)
    if run is None:
        rid = kfp_run_id()
        if not rid:
            raise RuntimeError(f"{RUN_ID_ENV} is not set: the pipeline run cannot be identified (on a cluster the "
                               "pipeline maps it from the pod label pipeline/runid; `seavl run` sets it)")
        run = client.create_run(ensure_experiment(client, experiment), run_name=run_name or rid,
                                tags={PIPELINE_RUN_TAG: rid})
    return run.info.run_id


def tag_run(run_id: str, tags: dict[str, str]) -> None:
    _log_batch(mlflow_client(), run_id, tags=tags)


def record_params(run_id: str, params: dict) -> None:
    """Log `params` on a run (dictionaries as JSON), e.g. a pipeline run's parameters."""
    _log_batch(mlflow_client(), run_id, params={k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list))
                                                else v for k, v in params.items()})


def _required_pipeline_run(client):
    """This process's pipeline run; RuntimeError naming the KFP run id when there is none."""
    pipeline = _current_pipeline_run(client)
    if pipeline is None:
        raise RuntimeError(f"no pipeline run for {RUN_ID_ENV}={kfp_run_id()!r}")
    return pipeline


def tag_pipeline_run(tags: dict[str, str]) -> None:
    """Tag this process's pipeline run."""
    client = mlflow_client()
    _log_batch(client, _required_pipeline_run(client).info.run_id, tags=tags)


def version_tag(name: str, version: str, key: str) -> str:
    """Tag `key` of version `version` of registered model `name` ('' when unset)."""
    return mlflow_client().get_model_version(name, version).tags.get(key, "")


@dataclass
class Logged:
    """What a step hands to the tracking wrapper: its run's params, metrics, tags and artifacts, and the headline
    figures (`pipeline_metrics`) that are also logged on the pipeline run, so pipeline runs compare side by side."""
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    pipeline_metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, Path] = field(default_factory=dict)  # folder in the run ("" = top) -> local file or folder
    datasets: list[DatasetRef] = field(default_factory=list)  # inputs, logged on the step's and the pipeline run


@dataclass(frozen=True)
class DatasetRef:
    """A dataset a step read, logged as an MLflow dataset input that holds its metadata only (never its rows):
    where it is, its content fingerprint as the digest, its row count (the dataset's profile) and its columns."""
    name: str
    uri: str
    digest: str
    rows: int | None = None
    columns: dict[str, str] = field(default_factory=dict)  # column -> MLflow type (string, long, double, ...)
    context: str = "training"

    def entity(self):
        """The mlflow.entities.DatasetInput of this dataset."""
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.types import ColSpec, Schema

        from components.common.storage import is_remote

        uri = self.uri if is_remote(self.uri) else Path(self.uri).absolute().as_uri()
        try:
            import warnings

            from mlflow.data.dataset_source_registry import resolve_dataset_source

            with warnings.catch_warnings():   # a local URI matches two equivalent sources; either will do
                warnings.simplefilter("ignore")
                source = resolve_dataset_source(uri)
        except Exception:  # a scheme no dataset source knows: name it by URL
            from mlflow.data.http_dataset_source import HTTPDatasetSource

            source = HTTPDatasetSource(uri)
        schema = Schema([ColSpec(kind, name) for name, kind in self.columns.items()]) if self.columns else None
        rows = self.rows

        class _Dataset(MetaDataset):
            @property
            def profile(self):
                return {"num_rows": rows} if rows is not None else None

            def to_dict(self):
                return {**super().to_dict(), **({"profile": json.dumps(self.profile)} if self.profile else {})}

        dataset = _Dataset(source, name=self.name, digest=self.digest[:36], schema=schema)
        # MLflow keeps 36 characters of a digest: the whole fingerprint is a tag of the input
        return DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", self.context),
                                                               InputTag("fingerprint", self.digest)])


class MetricBuffer:
    """Streamed metrics: appended to a local JSONL file, then sent from a background thread. While the server is
    away they wait on disk, and sending resumes, with backoff, when it is back. `close()` sends what is left
    (with MLflow's own retries) and raises TrackingUnavailable, naming the file, if that fails."""

    def __init__(self, client, run_id: str, path: Path, interval: float = 5.0):
        self.client, self.run_id, self.path, self.interval = client, run_id, Path(path), interval
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self._sent = 0  # bytes of the file already sent
        self._wake, self._closed = threading.Event(), False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __call__(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        lines = "".join(json.dumps({"key": k, "value": float(v), "step": int(step), "timestamp": now}) + "\n"
                        for k, v in metrics.items())
        with self.path.open("a", encoding="utf-8") as f:
            f.write(lines)
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="metric-buffer", daemon=True)
            self._thread.start()
        self._wake.set()

    def pending(self) -> int:
        """Metric values written but not yet sent."""
        with self.path.open("rb") as f:
            f.seek(self._sent)
            return sum(1 for _ in f)

    def _send(self) -> None:
        from mlflow.entities import Metric

        with self._lock:
            with self.path.open("rb") as f:
                f.seek(self._sent)
                data = f.read()
            end = data.rfind(b"\n") + 1  # whole lines only
            lines = data[:end].splitlines(keepends=True)
            for start in range(0, len(lines), 1000):
                chunk = lines[start:start + 1000]
                self.client.log_batch(self.run_id, metrics=[
                    Metric(r["key"], r["value"], r["timestamp"], r["step"]) for r in map(json.loads, chunk)])
                self._sent += sum(len(line) for line in chunk)

    def _loop(self) -> None:
        delay, warned = self.interval, False
        while not self._closed:
            self._wake.wait(delay)
            self._wake.clear()
            if self._closed:
                return
            try:
                self._send()
                delay, warned = self.interval, False
            except Exception as err:  # the server is away: keep the lines, try again later
                if not warned:
                    log.warning("MLflow did not take metrics (%s); they wait in %s and are replayed later",
                                err, self.path)
                    warned = True
                delay = min(delay * 2, 300.0)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._send()
        except Exception as err:
            raise TrackingUnavailable(f"{self.pending()} metric value(s) of MLflow run {self.run_id} could not be "
                                      f"sent ({err}); they are kept in {self.path}") from err
        self.path.unlink(missing_ok=True)


def metric_logger(run_id: str) -> MetricBuffer:
    """Streamed metrics to an existing run, from a process other than the step's own (rank 0 of a launched
    training); close() it at the end."""
    check_reachable()
    path = Path(tempfile.gettempdir()) / "seavl-metrics" / f"{run_id}-rank0.jsonl"
    return MetricBuffer(mlflow_client(), run_id, path)


def _param(value) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def _log_batch(client, run_id: str, metrics: dict | None = None, params: dict | None = None,
               tags: dict | None = None) -> None:
    """log_batch within MLflow's limits (1000 metrics, 100 params, 100 tags per call)."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    ms = [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()]
    ps = [Param(k, _param(v)) for k, v in (params or {}).items()]
    ts = [RunTag(k, str(v)[:8000]) for k, v in (tags or {}).items()]
    for start in range(0, len(ms), 1000):
        client.log_batch(run_id, metrics=ms[start:start + 1000])
    for start in range(0, max(len(ps), len(ts)), 100):
        client.log_batch(run_id, params=ps[start:start + 100], tags=ts[start:start + 100])


@dataclass
class StepRun:
    """The open MLflow run of one step: `log_metrics` streams figures, `record` logs what the step returned."""
    client: Any
    run_id: str
    pipeline_run_id: str | None
    log_metrics: MetricBuffer

    def record(self, logged: Logged, kfp_metrics=None) -> None:
        """Log `logged` to the step's run (pipeline metrics to the pipeline run too); with `kfp_metrics`, a KFP
        Metrics artifact, also write the metrics there for the Kubeflow UI."""
        _log_batch(self.client, self.run_id, metrics={**logged.metrics, **logged.pipeline_metrics},
                   params=logged.params, tags=logged.tags)
        if logged.datasets:
            inputs = [d.entity() for d in logged.datasets]
            for run_id in dict.fromkeys(r for r in (self.run_id, self.pipeline_run_id) if r):
                self.client.log_inputs(run_id, datasets=inputs)
        for artifact_path, local in logged.artifacts.items():
            local = Path(local)
            if local.is_dir():
                self.client.log_artifacts(self.run_id, str(local), artifact_path or None)
            elif local.exists():
                self.client.log_artifact(self.run_id, str(local), artifact_path or None)
        if logged.pipeline_metrics:
            # Kept in the step's run so that a later pipeline run reusing this step (a KFP cache hit) can copy them.
            self.client.log_dict(self.run_id, logged.pipeline_metrics, PIPELINE_METRICS_FILE)
            if self.pipeline_run_id:
                _log_batch(self.client, self.pipeline_run_id, metrics=logged.pipeline_metrics)
        if kfp_metrics is not None:
            for key, value in {**logged.metrics, **logged.pipeline_metrics}.items():
                kfp_metrics.log_metric(key.replace("/", "_"), float(value))  # KFP metric names take no "/"
            # The values live in the artifact's metadata; a file at its path as well lets kfp.local's cache,
            # which treats an output without a file as missing, serve the step.
            Path(kfp_metrics.path).parent.mkdir(parents=True, exist_ok=True)
            Path(kfp_metrics.path).write_text(json.dumps(kfp_metrics.metadata, indent=1))

    def artifact_uri(self, artifact_path: str) -> str:
        return f"{self.client.get_run(self.run_id).info.artifact_uri.rstrip('/')}/{artifact_path}"


@contextmanager
def tracked_step(step: str) -> Iterator[StepRun]:
    """The MLflow run of pipeline step `step`: the platform's MLFLOW_RUN_ID when injected, else a run nested
    under this KFP run's pipeline run (a top-level run, with a warning, outside a pipeline). The run ends
    FINISHED, or FAILED when the body raises (an exception with a `logged` attribute has that recorded first);
    buffered metrics are sent before it ends."""
    check_reachable()
    client = mlflow_client()
    injected = os.environ.get("MLFLOW_RUN_ID")
    pipeline = _current_pipeline_run(client)
    pipeline_id = pipeline.info.run_id if pipeline else None
    if injected:
        run_id = injected
        client.set_tag(run_id, STEP_TAG, step)
    else:
        if pipeline is None:
            log.warning("%s is not set or names no pipeline run: step %s is tracked as a top-level run",
                        RUN_ID_ENV, step)
            experiment = ensure_experiment(client, os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT)
            tags = {STEP_TAG: step}
        else:
            experiment = pipeline.info.experiment_id
            tags = {STEP_TAG: step, "mlflow.parentRunId": pipeline_id}
        run_id = client.create_run(experiment, run_name=step, tags=tags).info.run_id
    buffer = MetricBuffer(client, run_id, Path(tempfile.gettempdir()) / "seavl-metrics" / f"{run_id}.jsonl")
    run = StepRun(client, run_id, pipeline_id, buffer)
    try:
        yield run
        buffer.close()
    except BaseException as err:
        try:
            if not buffer.closed:  # the body failed (not the final send, which already reported itself)
                buffer.close()
            if isinstance(getattr(err, "logged", None), Logged):
                run.record(err.logged)  # what a failing core still has to show (e.g. Data Docs of failed data)
            client.set_terminated(run_id, status="FAILED")
        except Exception as tracking_err:  # keep the step's own error in front
            log.error("could not record the failure of step %s in MLflow: %s", step, tracking_err)
        raise
    client.set_terminated(run_id, status="FINISHED")


class UploadIncomplete(OSError):
    """The artifact store does not hold every weight file, at its size, after the upload."""


def _uploaded_sizes(client, model_id: str, path: str) -> dict[str, int]:
    sizes, todo = {}, [path]
    while todo:
        folder = todo.pop()
        for info in client.list_logged_model_artifacts(model_id, folder):
            if info.is_dir:
                todo.append(info.path)
            else:
                sizes[info.path[len(path) + 1:]] = info.file_size
    return sizes


def log_model_version(name: str, run_id: str, weights: Path, files: Path, tags: dict[str, str],
                      metrics: dict[str, float], description: str, identity: str = "") -> str:
    """Register a model version of `name`: upload `weights` (a save_pretrained folder) once, as the `weights/` of
    an MLflow logged model of run `run_id`, check that the store holds every file at its size, add the MLflow model
    `files` (components/register/core.py flavor_files; MLmodel last: a model without it is incomplete), attach
    `metrics`, and only then create the version; returns it. A failed upload leaves the logged model FAILED and no
    version. Large files go up in parts where the tracking server proxies an S3 store
    (MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD). `identity` names the tag that identifies the weights by content: a
    READY logged model of the experiment with the same value (uploaded by a run that failed before it created
    its version) is registered as it is, not uploaded again."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric

    from components.common import vlm_pyfunc

    os.environ.setdefault("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    client = mlflow_client()
    experiment_id = client.get_run(run_id).info.experiment_id
    same = client.search_logged_models([experiment_id], filter_string=f"tags.`{identity}` = '{tags[identity]}'"
                                       ) if identity else []
    ready = [m for m in same if m.status == LoggedModelStatus.READY]
    if ready:
        log.info("logged model %s already holds these weights: registered without uploading again",
                 ready[0].model_id)
        return _create_version(client, name, ready[0].model_id, run_id, tags, description)
    logged = client.create_logged_model(experiment_id, name=name, source_run_id=run_id, tags=tags,
                                        model_type="vision-language")
    try:
        client.log_model_artifacts(logged.model_id, str(weights), vlm_pyfunc.WEIGHTS)
        local = {p.relative_to(weights).as_posix(): p.stat().st_size for p in weights.rglob("*") if p.is_file()}
        held = _uploaded_sizes(client, logged.model_id, vlm_pyfunc.WEIGHTS)
        wrong = sorted(rel for rel, size in local.items() if held.get(rel) != size)
        if wrong:
            raise UploadIncomplete(f"the artifact store does not hold {len(wrong)} weight file(s) as uploaded: "
                                   f"{', '.join(wrong[:5])}")
        for path in sorted(files.iterdir(), key=lambda p: p.name == "MLmodel"):  # MLmodel last
            if path.is_dir():
                client.log_model_artifacts(logged.model_id, str(path), path.name)
            else:
                client.log_model_artifact(logged.model_id, str(path))
        now = int(time.time() * 1000)
        attached = [Metric(k, float(v), now, 0, model_id=logged.model_id) for k, v in sorted(metrics.items())]
        for start in range(0, len(attached), 1000):
            client.log_batch(run_id, metrics=attached[start:start + 1000])
        client.finalize_logged_model(logged.model_id, "READY")
    except BaseException:
        try:
            client.finalize_logged_model(logged.model_id, "FAILED")
        except Exception as err:  # keep the upload's own error in front
            log.error("could not mark logged model %s FAILED: %s", logged.model_id, err)
        raise
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return _create_version(client, name, logged.model_id, run_id, tags, description)


def _create_version(client, name: str, model_id: str, run_id: str, tags: dict[str, str], description: str) -> str:
    import mlflow

    try:
        client.create_registered_model(name, description="Gemma-3 SEA vision-language models")
    except mlflow.exceptions.MlflowException as err:   # registered before (by any run): anything else is raised
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    return str(client.create_model_version(name, source=f"models:/{model_id}", run_id=run_id, tags=tags,
                                           description=description[:5000], model_id=model_id).version)


def record_pipeline_run(step_run_ids: list[str]) -> dict[str, str]:
    """Complete this KFP run's pipeline run with the steps KFP served from its cache: for each step run made by
    an earlier pipeline run, tag `seavl.reused.<step>` with its id and copy its pipeline metrics. Returns
    {step: reused run id}."""
    import mlflow

    check_reachable()
    client = mlflow_client()
    pid = _required_pipeline_run(client).info.run_id
    reused: dict[str, str] = {}
    for rid in dict.fromkeys(r for r in step_run_ids if r):
        run = client.get_run(rid)
        if pipeline_run_of(client, run) == pid:
            continue  # ran in this pipeline run: its metrics are there already
        step = run.data.tags.get(STEP_TAG, run.info.run_name)
        reused[step] = rid
        metrics = {}
        if any(a.path == PIPELINE_METRICS_FILE for a in client.list_artifacts(rid)):
            metrics = mlflow.artifacts.load_dict(f"{run.info.artifact_uri.rstrip('/')}/{PIPELINE_METRICS_FILE}")
        _log_batch(client, pid, metrics=metrics, tags={f"{REUSED_TAG}{step}": rid})
    return reused


def finish_pipeline_run(state: str) -> str | None:
    """Record the pipeline's final KFP state on its run and close it (KFP's MLflow integration closes its own
    pipeline run: then only the tag is set). Returns the MLflow status, or None when there is no run."""
    check_reachable()
    client = mlflow_client()
    pipeline = _current_pipeline_run(client)
    if pipeline is None:
        return None
    status = _STATUS.get(state.upper(), "FAILED")
    client.set_tag(pipeline.info.run_id, "kfp.final_state", state)
    if not os.environ.get("MLFLOW_RUN_ID"):
        client.set_terminated(pipeline.info.run_id, status=status)
    return status


def champion(name: str, alias: str = "champion") -> tuple[str, str]:
    """(version, `models:/` URI) of registered model `name`@`alias`, or ("", "") when the alias is not set."""
    import mlflow

    client = mlflow_client()
    try:
        version = client.get_model_version_by_alias(name, alias).version
    except mlflow.exceptions.MlflowException as err:
        # no such registered model, or no such alias on it; anything else (a 5xx, refused access) is raised
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return "", ""
        raise
    return str(version), f"models:/{name}/{version}"
