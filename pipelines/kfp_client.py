"""The one way this project talks to a Kubeflow Pipelines API: `connect` (credentials, and a check that fails at
once), then the recurring runs (schedules) of a compiled pipeline.

Credentials, first found: a token given (argument, else KFP_TOKEN) sent as a bearer token; inside a cluster, the
pod's projected service-account token (KF Pipelines multi-user: the file at KF_PIPELINES_SA_TOKEN_PATH, default
/var/run/secrets/kubeflow/pipelines/token, read again before each request since the kubelet rotates it); else none.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import ssl
import urllib.error
import urllib.request
import warnings
from datetime import datetime
from pathlib import Path

import kfp

HEALTHZ = "/apis/v2beta1/healthz"
CHECK_TIMEOUT_S = 5.0


class KfpUnavailable(RuntimeError):
    """The KFP API cannot be used: unreachable, not a KFP API, or the credentials were refused."""


class KfpError(RuntimeError):
    """The KFP API refused a request (with its message)."""


class ScheduleNotFound(KfpError):
    """No recurring run with that id."""


def connect(host: str | None = None, namespace: str | None = None, token: str | None = None) -> kfp.Client:
    """A kfp.Client for `host` (else KFP_HOST), after one short request that proves the API answers and accepts
    the credentials; KfpUnavailable naming the host when it does not. `namespace`: the user's profile namespace
    in a multi-user deployment."""
    from kfp.client import KF_PIPELINES_SA_TOKEN_ENV, KF_PIPELINES_SA_TOKEN_PATH, ServiceAccountTokenVolumeCredentials
    from kfp.client.token_credentials_base import read_token_from_file

    host = (host or os.environ.get("KFP_HOST") or "").strip()
    if not host:
        raise ValueError("no KFP host: pass --host URL or set KFP_HOST (e.g. http://localhost:8888 after "
                         "`kubectl port-forward -n kubeflow svc/ml-pipeline 8888:8888`)")
    if "://" not in host:
        host = "https://" + host  # as kfp.Client reads a host without a scheme
    host = host.rstrip("/")
    token = token or os.environ.get("KFP_TOKEN") or None
    credentials, bearer, source = None, token, "the token"
    if not token:
        path = os.environ.get(KF_PIPELINES_SA_TOKEN_ENV) or KF_PIPELINES_SA_TOKEN_PATH
        if os.path.isfile(path):
            credentials = ServiceAccountTokenVolumeCredentials(path)
            try:
                bearer, source = read_token_from_file(path), f"the service-account token ({path})"
            except OSError as err:
                raise KfpUnavailable(f"cannot read the service-account token {path}: {err}") from None
    health = check(host, bearer, source if bearer else "")
    # multi-user without a namespace: the pod's own, as kfp.Client does (without saving it in ~/.config/kfp)
    if not namespace and isinstance(health, dict) and health.get("multi_user"):
        with contextlib.suppress(OSError):
            namespace = Path(kfp.Client._NAMESPACE_PATH).read_text().strip() or None
    with warnings.catch_warnings():  # "This client only works with Kubeflow Pipeline v2.0.0-beta.2 and later"
        warnings.filterwarnings("ignore", category=FutureWarning, message="This client only works")
        # Without a namespace, kfp.Client asks healthz once more (retrying 5 times, 5 s apart, on failure: the
        # check above makes that unlikely); kfp.Client takes namespace="kubeflow" to mean "none given".
        client = kfp.Client(host=host, namespace=namespace or "kubeflow", existing_token=token,
                            credentials=credentials)
    if namespace:
        client._context_setting["namespace"] = namespace  # set_user_namespace would write ~/.config/kfp
    return client


def check(host: str, bearer: str | None = None, source: str = "") -> dict:
    """GET <host>/apis/v2beta1/healthz once, with a short timeout; its JSON, or KfpUnavailable naming the host."""
    import certifi

    request = urllib.request.Request(host + HEALTHZ, headers={"Accept": "application/json"})
    if bearer:
        request.add_header("Authorization", f"Bearer {bearer}")
    # no proxies from the environment, as kfp's own requests; its CA bundle (certifi), as kfp's own requests
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(
        context=ssl.create_default_context(cafile=certifi.where())))
    try:
        with opener.open(request, timeout=CHECK_TIMEOUT_S) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        if err.code in (401, 403):
            raise KfpUnavailable(refused(host, err.code, source)) from None
        raise KfpUnavailable(f"{host} answered HTTP {err.code} to {HEALTHZ}: is it the Kubeflow Pipelines API "
                             "(the ml-pipeline service, or the Kubeflow gateway's /pipeline)?") from None
    except json.JSONDecodeError:
        raise KfpUnavailable(f"{host}{HEALTHZ} did not answer JSON: is it the Kubeflow Pipelines API?") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise KfpUnavailable(f"cannot reach the KFP API at {host}: {reason}") from None


def refused(host: str, status: int, source: str) -> str:
    if not source:
        return (f"{host} answered HTTP {status}: it wants credentials and none were given (pass --token or set "
                "KFP_TOKEN)")
    return f"{host} refused {source} (HTTP {status}): the token/credentials were not accepted"


def _host(client: kfp.Client) -> str:
    return client._existing_config.host


@contextlib.contextmanager
def _api(client: kfp.Client, what: str):
    """kfp_server_api's errors as this module's: refused credentials and lost connections as KfpUnavailable,
    404 as ScheduleNotFound, anything else as KfpError with the server's message."""
    import urllib3
    from kfp_server_api import ApiException

    host = _host(client)
    try:
        yield
    except ApiException as err:
        if err.status in (401, 403):
            given = client._existing_config.api_key.get("authorization")
            raise KfpUnavailable(refused(host, err.status, "the credentials" if given else "")) from None
        try:
            message = json.loads(err.body or b"{}").get("message") or ""
        except (ValueError, AttributeError):
            message = ""
        message = message or (err.body.decode(errors="replace") if isinstance(err.body, bytes) else err.reason)
        if err.status == 404:
            raise ScheduleNotFound(f"{what}: not found on {host} ({message})") from None
        raise KfpError(f"{what}: {host} answered HTTP {err.status}: {message}") from None
    except urllib3.exceptions.HTTPError as err:
        raise KfpUnavailable(f"{what}: cannot reach the KFP API at {host}: {err}") from None


_CRON_ITEM = re.compile(r"^(?:\*|\?|(\w+)(?:-(\w+))?)(?:/(\d+))?$")
_CRON_BOUNDS = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_CRON_NAMES = {4: ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
               5: ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")}


def normalise_cron(expression: str) -> str:
    """KFP's 6-field cron (seconds minutes hours day-of-month month day-of-week); a standard 5-field expression
    gets "0 " (second 0) in front. ValueError naming the expression for anything else."""
    fields = expression.split()
    if len(fields) == 5:
        fields = ["0", *fields]

    def valid(i: int, field: str) -> bool:
        for item in field.split(","):
            m = _CRON_ITEM.match(item)
            if not m:
                return False
            for value in filter(None, m.group(1, 2)):
                if not (value.isdigit() and _CRON_BOUNDS[i][0] <= int(value) <= _CRON_BOUNDS[i][1]
                        or value.upper() in _CRON_NAMES.get(i, ())):
                    return False
            if m.group(3) is not None and int(m.group(3)) == 0:
                return False
        return True

    if len(fields) != 6 or not all(valid(i, f) for i, f in enumerate(fields)):
        raise ValueError(f"bad cron expression {expression!r}: KFP takes 6 fields (seconds minutes hours "
                         "day-of-month month day-of-week, e.g. '0 0 3 * * *': 03:00 daily) or a standard 5-field "
                         "one (e.g. '0 3 * * *')")
    return " ".join(fields)


def _namespace(client: kfp.Client) -> str | None:
    return client.get_user_namespace() or None


def experiment_id(client: kfp.Client, name: str, create: bool = True) -> str:
    """The id of the experiment `name` in the client's namespace; created when missing (with `create`)."""
    with _api(client, f"experiment {name!r}"), contextlib.redirect_stdout(io.StringIO()):  # it prints a link
        if create:
            return client.create_experiment(name, namespace=_namespace(client)).experiment_id
        try:
            return client.get_experiment(experiment_name=name, namespace=_namespace(client)).experiment_id
        except ValueError as err:
            raise KfpError(f"{err} (on {_host(client)})") from None


def create_schedule(client: kfp.Client, pipeline_package: str, cron: str, params: dict, experiment: str, name: str,
                    max_concurrency: int = 1, no_catchup: bool = True) -> str:
    """A recurring run of the compiled pipeline `pipeline_package` (YAML) on `cron`, enabled; its id."""
    cron = normalise_cron(cron)
    exp = experiment_id(client, experiment)
    with _api(client, f"schedule {name!r}"):
        run = client.create_recurring_run(experiment_id=exp, job_name=name, pipeline_package_path=pipeline_package,
                                          params=params, cron_expression=cron, max_concurrency=max_concurrency,
                                          no_catchup=no_catchup, enabled=True)
    return run.recurring_run_id


def create_run(client: kfp.Client, pipeline_package: str, params: dict, experiment: str, name: str,
               pipeline_root: str | None = None) -> tuple[str, str]:
    """A run of the compiled pipeline `pipeline_package` (YAML) in `experiment`: (its id, its URL in the KFP UI)."""
    exp = experiment_id(client, experiment)
    with _api(client, f"run {name!r}"), contextlib.redirect_stdout(io.StringIO()):  # it prints a link
        run = client.run_pipeline(experiment_id=exp, job_name=name, pipeline_package_path=pipeline_package,
                                  params=params, pipeline_root=pipeline_root)
    return run.run_id, f"{_host(client)}/#/runs/details/{run.run_id}"


class SecretMissing(RuntimeError):
    """The credentials secret is not in the namespace the pipeline's pods run in."""


def check_secret(secret: str, namespace: str, timeout: float = 15.0) -> str:
    """Whether `secret` exists in `namespace`, asked through kubectl (its current context): "found", or why it
    could not be checked (no kubectl, no cluster access); SecretMissing, saying how to create it, when the cluster
    answers that it is not there."""
    import shutil
    import subprocess

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return "not checked: kubectl is not installed"
    try:
        done = subprocess.run([kubectl, "get", "secret", secret, "-n", namespace, "-o", "name",
                               f"--request-timeout={int(timeout)}s"], capture_output=True, text=True,
                              timeout=timeout + 5)
    except subprocess.TimeoutExpired:
        return "not checked: the cluster did not answer kubectl"
    if done.returncode == 0:
        return "found"
    if "NotFound" in done.stderr or "not found" in done.stderr:
        raise SecretMissing(
            f"secret {secret} is not in namespace {namespace}, where the pipeline's pods run: every step would fail "
            f"with CreateContainerConfigError. Create it from the template (infra/README.md):\n"
            f"  kubectl create secret generic {secret} -n {namespace} --from-env-file=YOUR_ENV_FILE\n"
            "with MLFLOW_TRACKING_URI, MLFLOW_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    return f"not checked: {(done.stderr.strip().splitlines() or ['kubectl failed'])[-1][:200]}"


def describe(run) -> dict:
    """One recurring run (kfp_server_api.V2beta1RecurringRun) as a plain dictionary."""
    trigger = run.trigger
    cron = trigger.cron_schedule.cron if trigger and trigger.cron_schedule else None
    if cron is None and trigger and trigger.periodic_schedule:
        cron = f"every {trigger.periodic_schedule.interval_second}s"
    status = run.status or {"ENABLE": "ENABLED", "DISABLE": "DISABLED"}.get(run.mode or "", "")
    created = run.created_at
    return {"id": run.recurring_run_id, "name": run.display_name, "cron": cron or "", "status": status,
            "enabled": status == "ENABLED", "created": created.isoformat() if isinstance(created, datetime) else
            (created or ""), "experiment_id": run.experiment_id,
            "params": dict((run.runtime_config.parameters or {}) if run.runtime_config else {})}


def list_schedules(client: kfp.Client, experiment: str | None = None, page_size: int = 100) -> list[dict]:
    """Every recurring run (of `experiment`, else of the client's namespace), all pages, as `describe` writes
    them."""
    exp = experiment_id(client, experiment, create=False) if experiment else None
    found, token = [], ""
    while True:
        with _api(client, "list schedules"):
            page = client.list_recurring_runs(page_token=token, page_size=page_size, experiment_id=exp,
                                              namespace=_namespace(client))
        found += [describe(run) for run in page.recurring_runs or []]
        token = page.next_page_token or ""
        if not token:
            return found


def delete_schedule(client: kfp.Client, schedule_id: str) -> dict:
    """Delete one recurring run; what it was (`describe`). ScheduleNotFound for an unknown id."""
    with _api(client, f"schedule {schedule_id!r}"):
        gone = describe(client.get_recurring_run(schedule_id))
        client.delete_recurring_run(schedule_id)
    return gone
