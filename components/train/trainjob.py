"""Training across several nodes: the same recipe as a Kubeflow Trainer TrainJob, submitted and watched by the step.

The step's own pod (the launcher) requests no GPU. It writes the launch spec (launch.py) beside the checkpoints
on S3, creates a TrainJob on the `torch-distributed` runtime whose nodes each run
`torchrun -m components.train.launch <spec URI>` (torchrun takes the node count, rank and rendezvous from the
runtime's PET_* variables), waits for it while streaming the first node's log, and fails with the job's reason.
Credentials reach the job's pods only as references to the same secret the pipeline's pods use; rank 0 logs
metrics to the step's MLflow run; the model is written to S3 by rank 0 and never crosses the launcher's disk.

The manifest is plain data (`manifest`), checked in the tests against the TrainJob CRD's schema. The job is
named after the checkpoint folder, so a retried launcher finds the job it started instead of starting another.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from components.common.images import CREDENTIAL_KEYS, CREDENTIALS_SECRET

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL, KIND = "trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob"
RUNTIME = "torch-distributed"
GPU_RESOURCE = "nvidia.com/gpu"
SHM_SIZE = "64Gi"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class TrainJobFailed(RuntimeError):
    """The TrainJob ended Failed (or could not be created); the message carries the job's reason."""


@dataclass
class JobRequest:
    name: str
    namespace: str
    image: str
    spec_uri: str
    nodes: int
    gpus_per_node: int
    cpu: str = "16"
    memory: str = "512Gi"
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict] = field(default_factory=lambda: [
        {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}])
    env: dict[str, str] = field(default_factory=dict)   # plain (non-secret) settings
    runtime: str = RUNTIME
    deadline_s: int | None = None


def job_name(stage: str, key: str) -> str:
    """A DNS-1035 label: `seavl-<stage>-<key>`, at most 40 characters (JobSet appends to it)."""
    return f"seavl-{stage}-{key}"[:40].rstrip("-").lower()


def manifest(req: JobRequest) -> dict:
    """The TrainJob object: one node per replica, one process per GPU, secrets by reference."""
    if req.nodes < 1 or req.gpus_per_node < 1:
        raise ValueError(f"a TrainJob needs at least one node and one GPU per node, got {req.nodes} x "
                         f"{req.gpus_per_node}")
    env = [{"name": k, "value": str(v)} for k, v in sorted(req.env.items())]
    env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": key}}}
            for key in CREDENTIAL_KEYS]
    resources = {GPU_RESOURCE: req.gpus_per_node, "cpu": req.cpu, "memory": req.memory}
    # /dev/shm is 64 MB in a pod: NCCL and DataLoader workers need more
    pod = {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
           "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}}],
           "containers": [{"name": "node", "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]}]}
    if req.node_selector:
        pod["nodeSelector"] = dict(req.node_selector)
    if req.tolerations:
        pod["tolerations"] = list(req.tolerations)
    spec = {
        "runtimeRef": {"name": req.runtime, "kind": "ClusterTrainingRuntime", "apiGroup": GROUP},
        "trainer": {
            "image": req.image,
            "command": ["torchrun", "-m", "components.train.launch", req.spec_uri],
            "numNodes": req.nodes,
            "numProcPerNode": req.gpus_per_node,
            "resourcesPerNode": {"requests": resources, "limits": resources},
            "env": env,
        },
        "runtimePatches": [{"manager": "sealion-vl-pipelines", "trainingRuntimeSpec": {"template": {"spec": {
            "replicatedJobs": [{"name": "node", "template": {"spec": {"template": {
                # an Istio sidecar (multi-user Kubeflow injects one in profile namespaces) would stand between
                # torchrun's rendezvous and NCCL, and keep the job's pods from completing
                "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}}, "spec": pod}}}}]}}}}],
    }
    if req.deadline_s:
        spec["activeDeadlineSeconds"] = int(req.deadline_s)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
            "metadata": {"name": req.name, "namespace": req.namespace,
                         "labels": {"app.kubernetes.io/part-of": "sealion-vl-pipelines"}},
            "spec": spec}


def outcome(job: dict) -> tuple[bool, str | None]:
    """(finished, failure reason or None) from a TrainJob's status conditions."""
    conditions = {c.get("type"): c for c in (job.get("status") or {}).get("conditions") or []}
    failed = conditions.get("Failed")
    if failed and failed.get("status") == "True":
        return True, f"{failed.get('reason', 'Failed')}: {failed.get('message', '')}".strip(": ")
    complete = conditions.get("Complete")
    if complete and complete.get("status") == "True":
        return True, None
    return False, None


def current_namespace() -> str:
    """The launcher pod's namespace (where the pipeline's pods and its secret are)."""
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as f:
            return f.read().strip()
    except OSError as err:
        raise TrainJobFailed("multi-node training submits a TrainJob from inside the cluster; this process is not "
                             "in a Kubernetes pod") from err


def own_image(namespace: str, core=None) -> str:
    """The image of the pod this runs in (KFP's `main` container): the job's nodes run exactly the same code."""
    import os

    from kubernetes import client, config

    if core is None:
        config.load_incluster_config()
        core = client.CoreV1Api()
    pod = core.read_namespaced_pod(os.environ["HOSTNAME"], namespace)
    containers = {c.name: c.image for c in pod.spec.containers}
    return containers.get("main") or next(iter(containers.values()))


def run(req: JobRequest, poll_s: float = 15.0, api=None, core=None, finished=lambda: False,
        max_api_errors: int = 20) -> None:
    """Create the TrainJob, stream its first node's log, wait for it to end.

    A job of the same name left by an earlier attempt of this step is watched when it still runs, taken as done
    when it completed and `finished()` (its result exists), and otherwise deleted and created again: the new
    job resumes from the checkpoints. Transient API errors are retried, up to `max_api_errors` in a row."""
    from kubernetes import client, config

    if api is None or core is None:
        config.load_incluster_config()
        api, core = client.CustomObjectsApi(), client.CoreV1Api()
    if _create(api, req) == "exists":
        done, failure = outcome(api.get_namespaced_custom_object(GROUP, VERSION, req.namespace, PLURAL, req.name))
        if done and failure is None and finished():
            log.info("TrainJob %s/%s already completed (an earlier attempt of this step)", req.namespace, req.name)
            return
        if done:
            log.info("TrainJob %s/%s of an earlier attempt ended (%s): starting it again, from its checkpoints",
                     req.namespace, req.name, failure or "its result is missing")
            _delete(api, req, poll_s)
            _create(api, req)
        else:
            log.info("TrainJob %s/%s of an earlier attempt is running: watching it", req.namespace, req.name)
    streamer = _LogStreamer(core, req.namespace, req.name)
    last_state, errors = None, 0
    while True:
        try:
            job = api.get_namespaced_custom_object(GROUP, VERSION, req.namespace, PLURAL, req.name)
            errors = 0
        except Exception as err:   # API server restarts, connection resets: the job goes on meanwhile
            errors += 1
            if errors > max_api_errors:
                raise TrainJobFailed(f"TrainJob {req.namespace}/{req.name}: status unreadable ({err})") from err
            log.warning("reading TrainJob %s failed (%s); retrying", req.name, err)
            time.sleep(poll_s)
            continue
        finished_now, failure = outcome(job)
        state = [c.get("type") for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]
        if state != last_state:
            log.info("TrainJob %s: %s", req.name, ", ".join(state) or "pending")
            last_state = state
        streamer.poll()
        if finished_now:
            streamer.stop()
            if failure:
                raise TrainJobFailed(f"TrainJob {req.namespace}/{req.name} failed: {failure}")
            return
        time.sleep(poll_s)


def _create(api, req: JobRequest) -> str:
    """'created', or 'exists' when a job of that name is there already."""
    from kubernetes.client.exceptions import ApiException

    try:
        # Strict: a field this cluster's Trainer does not know is an error, not silently dropped
        api.create_namespaced_custom_object(GROUP, VERSION, req.namespace, PLURAL, manifest(req),
                                            field_validation="Strict")
        log.info("TrainJob %s/%s created: %d node(s) x %d GPU(s)", req.namespace, req.name, req.nodes,
                 req.gpus_per_node)
        return "created"
    except ApiException as err:
        if err.status == 409:
            return "exists"
        if err.status == 403:
            raise TrainJobFailed(f"not allowed to create TrainJobs in {req.namespace}: the pipeline runner's service "
                                 "account needs the seavl-trainjobs Role (infra/base/rbac.yaml)") from err
        elif err.status == 404:
            raise TrainJobFailed("the TrainJob API (trainer.kubeflow.org/v1alpha1) is not installed: install "
                                 "Kubeflow Trainer, or train on one node (train_nodes=1)") from err
        if err.status == 422:
            raise TrainJobFailed(f"the cluster's Kubeflow Trainer refused the TrainJob: {err.body}") from err
        raise


def _delete(api, req: JobRequest, poll_s: float, timeout_s: float = 600) -> None:
    """Delete the job and wait until it is gone (its pods first: foreground propagation)."""
    from kubernetes.client.exceptions import ApiException

    api.delete_namespaced_custom_object(GROUP, VERSION, req.namespace, PLURAL, req.name,
                                        propagation_policy="Foreground")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            api.get_namespaced_custom_object(GROUP, VERSION, req.namespace, PLURAL, req.name)
        except ApiException as err:
            if err.status == 404:
                return
            raise
        time.sleep(poll_s)
    raise TrainJobFailed(f"TrainJob {req.namespace}/{req.name} of an earlier attempt was not deleted in "
                         f"{timeout_s:.0f} s")


class _LogStreamer:
    """Follows the log of the job's first node (rank 0) in a thread, once its pod exists."""

    def __init__(self, core, namespace: str, name: str):
        self.core, self.namespace, self.name = core, namespace, name
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()

    def poll(self) -> None:
        if self.thread is not None:
            return
        pods = self.core.list_namespaced_pod(   # node 0: rank 0, the one that logs
            self.namespace, label_selector=f"jobset.sigs.k8s.io/jobset-name={self.name},"
                                           "batch.kubernetes.io/job-completion-index=0")
        first = sorted((p for p in pods.items if p.status and p.status.phase in ("Running", "Succeeded", "Failed")),
                       key=lambda p: p.metadata.name)
        if first:
            pod = first[0].metadata.name
            self.thread = threading.Thread(target=self._follow, args=(pod,), daemon=True)
            self.thread.start()

    def _follow(self, pod: str) -> None:
        try:
            stream = self.core.read_namespaced_pod_log(pod, self.namespace, follow=True, _preload_content=False)
            for line in stream:
                if self._stop.is_set():
                    break
                log.info("[%s] %s", pod, line.decode(errors="replace").rstrip())
        except Exception as err:   # the log is a convenience: the job's status decides
            log.warning("log of %s not followed: %s", pod, err)

    def stop(self) -> None:
        self._stop.set()
