"""`seavl check`: everything about a run that can be known before it starts, each check a row of a table.

    parameters      every name is a pipeline parameter, every value fits its type and the settings the steps
                    make of it (cli.typed_arguments)
    model           base_model and each reference model: a save_pretrained folder with config.json, safetensors
                    weights whole by their headers (a pickle-only folder is refused, as the steps refuse it), every
                    file its index names, a processor and a tokenizer. Reads the listing, config.json, the index
                    and each safetensors header (8 bytes + the JSON header), never the weights
    data            caption_manifest, sft_conversations, replay_data: the shards or manifests the validate step
                    would read are listed (count and bytes); a JSONL's first record is a JSON object
    eval suite      the suite loads, every file it names exists, and each task and language reads in its public
                    schema (text columns only, no images): a split without gold labels (CVQA's public test split
                    carries `Label` -1) is named here instead of failing the evaluation step
    plan            cpt_training and sft_training fit train_gpus x train_nodes GPUs of `gpu_memory_gb` (the
                    planner, components/train/plan.py, on the base model's own config.json)
    tracking        the MLflow tracking server answers (tracking.check_reachable)
    artifact store  the stores of checkpoint_root, eval_response_cache and the pipeline root answer, their
                    buckets exist, and a probe object can be written under each (then removed)

Each check is independent: one that fails does not hide the others (a check whose input failed an earlier one
says so). Nothing here starts a run; the only writes are the stores' probes, removed at once (a local folder
that a probe needed stays, as the run would make it).
"""
from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from components.common import storage

PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
DEFAULT_PLAN_TOKENS = 2048   # the sequence length planned when a stage sets no max_length (0 = no limit)


@dataclass(frozen=True)
class Check:
    what: str      # the kind of check: parameters, model, data, eval data, plan, tracking, artifact store
    target: str    # the parameter or URI it is about
    ok: bool
    detail: str    # what was found, or what is wrong


def _attempt(what: str, target: str, check: Callable[..., str], *args) -> Check:
    """One check: `check(*args)` returns what it found; any error it raises is the problem, in its own words."""
    try:
        return Check(what, target, True, check(*args))
    except Exception as err:  # noqa: BLE001 (a check reports every failure as a row, never stops the others)
        return Check(what, target, False, str(err) or type(err).__name__)


def pipeline_defaults() -> dict:
    """The pipeline's parameters and their default values, as its signature declares them."""
    from pipelines.sealion_vl import _sealion_vl

    return {name: p.default for name, p in inspect.signature(_sealion_vl).parameters.items()}


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n:,} bytes"


def check_model(uri: str) -> str:
    """A model folder as the steps load it (models.check_weights, then its processor), from its listing,
    config.json, index and safetensors headers; ValueError naming what is missing."""
    from components.common.models import check_weights

    if uri.startswith(storage.REGISTRY_SCHEME):
        return check_registered(uri)
    files = check_weights(uri)
    weights = sorted(n for n in files if n.endswith(".safetensors") and "/" not in n)
    if not any(n in files for n in PROCESSOR_FILES):
        raise ValueError(f"{uri} has no processor ({' or '.join(PROCESSOR_FILES)}): the steps load the model's "
                         "processor from its folder")
    if not any(n in files for n in TOKENIZER_FILES):
        raise ValueError(f"{uri} has no tokenizer ({' or '.join(TOKENIZER_FILES)})")
    _check_gemma3(uri)
    total = sum(files[n]["size"] for n in weights)
    return f"gemma3, {len(weights)} safetensors file(s), {_gb(total)}, processor and tokenizer"


def check_registered(uri: str) -> str:
    """A registered version (models:/NAME/VERSION or models:/NAME@ALIAS) exists in the tracking server's registry
    and is READY; its weights are checked against their checksums when a step downloads them."""
    from components.common import tracking

    tracking.check_reachable()
    try:
        version = storage.registered_version(uri)
    except Exception as err:  # noqa: BLE001 (MLflow's own words: no such model, version or alias)
        raise ValueError(f"{uri} is not in the registry at {tracking.tracking_uri()}: "
                         f"{getattr(err, 'message', err)}") from None
    if version.status != "READY":
        raise ValueError(f"{uri} is version {version.version} of {version.name}, whose status is {version.status}")
    _check_gemma3(uri)
    return (f"registered version {version.version} of {version.name}, gemma3, READY (weights checked against "
            "their checksums when a step downloads them)")


def _check_gemma3(uri: str) -> None:
    """The model's config.json says gemma3 (an image-text Gemma 3); ValueError naming what it says otherwise."""
    model_type = json.loads(model_file(uri, "config.json")).get("model_type")
    if model_type != "gemma3":
        raise ValueError(f"{uri} is a {model_type!r} model; the pipeline trains Gemma 3 image-text models "
                         "(model_type gemma3)")


def model_file(uri: str, name: str) -> bytes:
    """One file of a model folder (local or S3) or of a registered version (models:/..., its save_pretrained
    folder: `weights/` of an MLflow model, or the version's own folder); FileNotFoundError when it has none."""
    if not uri.startswith(storage.REGISTRY_SCHEME):
        return storage.read_bytes(storage.join(uri, name))
    import tempfile

    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

    from components.common.vlm_pyfunc import WEIGHTS

    repo = ModelsArtifactRepository(uri)
    try:
        top = {f.path.rsplit("/", 1)[-1] for f in repo.list_artifacts(None)}
        path = f"{WEIGHTS}/{name}" if "MLmodel" in top else name
        with tempfile.TemporaryDirectory(prefix="seavl-check-") as tmp:
            return Path(repo.download_artifacts(path, dst_path=tmp)).read_bytes()
    except (MlflowException, OSError) as err:
        raise FileNotFoundError(f"{uri} has no {name}: {getattr(err, 'message', err)}") from None


def check_data(uri: str) -> str:
    """The shards or manifests a validate step would read at `uri` (listing only), and a JSONL's first record."""
    from components.validate_data.sources import InputError, list_inputs
    from pipelines.cost import input_bytes

    try:
        kind, files = list_inputs(uri)
    except InputError as err:
        raise ValueError(str(err)) from None
    fs, _ = storage.filesystem(uri)
    size = input_bytes(uri, files)
    if kind == "jsonl":
        with fs.open(storage.filesystem(files[0])[1], "rb") as f:
            first = f.readline()
        try:
            if not isinstance(json.loads(first), dict):
                raise ValueError
        except ValueError:
            raise ValueError(f"{files[0]} is not JSON lines: its first line is not a JSON object") from None
    return f"{len(files)} {kind} file(s), {_gb(size)}"


def check_suite(uri: str, loaded: dict | None = None) -> list[Check]:
    """The suite loads; every file it names exists; each task and language reads in its schema, gold labels
    present (text columns only). The items read go into `loaded` ({(task, lang): items}) when given."""
    from components.evaluate.seahelm.suite import load_suite
    from components.evaluate.seahelm.tasks import conversation, load_items

    out, runs = [], []

    def load() -> str:
        suite = load_suite(uri)
        missing = [u for u in suite.uris() if not storage.exists(u)]
        if missing:
            raise ValueError(f"names {len(missing)} missing file(s): {', '.join(missing[:5])}")
        runs.extend(suite.runs())
        return f"{len(suite.tasks)} task(s), {len(runs)} task/language runs, every file it names exists"

    out.append(_attempt("eval suite", uri, load))

    def read(task: str, lang: str, data: str, root: str) -> str:
        items = load_items(task, lang, data, root, images=False)
        for item in items:   # SEA-HELM's prompt, as the evaluation fills it in
            try:
                conversation(task, lang, getattr(item, "fields", {}), [])
            except (KeyError, IndexError) as err:
                raise ValueError(f"item {item.id} lacks the field {err} that SEA-HELM's {task} prompt "
                                 f"({lang}) fills in ({data})") from None
        if loaded is not None:
            loaded[(task, lang)] = items
        return f"{len(items)} item(s) with gold labels ({data})"

    for task, lang, data, root in runs:
        out.append(_attempt("eval data", f"{task}/{lang}", read, task, lang, data, root))
    return out


def plan_stage(config_path: str, settings: dict, gpus: int, nodes: int, gpu_memory_gb: float,
               memory_from: str = "") -> str:
    """The planner's verdict on one stage's settings; ValueError saying by how much it does not fit."""
    from components.train.loop import TrainConfig
    from components.train.plan import Request, plan

    cfg = TrainConfig(**settings)
    tokens = cfg.max_length or DEFAULT_PLAN_TOKENS
    req = Request(model=config_path, gpus=gpus, nodes=nodes, gpu_memory_gb=gpu_memory_gb, batch=cfg.batch_size,
                  seq_len=tokens, lora=cfg.lora_rank > 0, activation_checkpointing=cfg.activation_checkpointing,
                  freeze_vision=cfg.freeze_vision, cpu_offload=cfg.cpu_offload)
    result = plan(req)
    where = f"{gpus} GPU(s) x {nodes} node(s) of {gpu_memory_gb:g} GB" + (f" ({memory_from})" if memory_from else "")
    at = f"batch {cfg.batch_size} x {tokens} tokens" + ("" if cfg.max_length else " (max_length 0: no limit; "
                                                        f"planned at {DEFAULT_PLAN_TOKENS})")
    if not result.fits:
        fitting = [a for a in result.advice if a.endswith("(fits)")]
        advice = f"; seavl plan suggests {(fitting or result.advice)[0]}" if result.advice else ""
        raise ValueError(f"does not fit: {result.per_gpu_gb:.1f} GB per GPU on {where}, {at}{advice}")
    return f"fits: {result.per_gpu_gb:.1f} GB per GPU on {where}, {at}"


def check_store(uri: str) -> str:
    """The store behind `uri` answers at the first attempt, its bucket exists, and these credentials may write
    there: a small probe object is written under `uri` and removed."""
    import uuid

    storage.check_reachable(uri)
    where = "local folder"
    if str(uri).startswith("s3://"):
        bucket = uri[len("s3://"):].split("/", 1)[0]
        fs, _ = storage.filesystem(uri)
        if not fs.exists(bucket):
            raise ValueError(f"the bucket {bucket} does not exist")
        where = f"S3 answers ({storage.s3_endpoint() or 'AWS'}), bucket {bucket} exists"
    probe = storage.join(uri, f".seavl-check-{uuid.uuid4().hex[:12]}")
    try:
        storage.write_bytes(probe, b"seavl check: may this run write here?")
    except OSError as err:
        raise ValueError(f"{where}, but nothing can be written under {uri}: {err}") from None
    fs, path = storage.filesystem(probe)
    fs.rm_file(path)
    return f"{where}, writable"


def check_tracking() -> str:
    from components.common import tracking

    uri = tracking.tracking_uri()
    tracking.check_reachable(uri)
    return f"{uri} answers" if uri.startswith(("http://", "https://")) else f"{uri}: a local store, nothing to reach"


IMAGES_CHECKED = 64   # image paths of sampled records looked up, at most


def check_images(uri: str, rows: list[dict]) -> str:
    """The images that sampled conversation records name resolve (relative to the JSONL file, as the trainer
    resolves them), up to IMAGES_CHECKED of them; ValueError naming the first missing ones. A record that cannot
    be read as a conversation is left to validation (which quarantines it)."""
    from components.common import records
    from components.train.data import chat_messages

    paths, unreadable = [], 0
    for r in rows:
        try:
            paths += chat_messages(r).get("images") or []
        except (ValueError, KeyError, TypeError):
            unreadable += 1
    paths = paths[:IMAGES_CHECKED]
    if not paths:
        return f"none of {len(rows)} sampled record(s) names an image"
    missing = [p for p in paths if not storage.exists(records.split_member(records.resolve(uri, p))[0])]
    if missing:
        raise ValueError(f"{len(missing)} of {len(paths)} image(s) named by sampled records do not exist (relative "
                         f"to {storage.parent(uri)}), e.g. {', '.join(missing[:3])}")
    return (f"the {len(paths)} image(s) named by {len(rows) - unreadable} sampled record(s) exist"
            + (f" ({unreadable} record(s) unreadable: validation quarantines them)" if unreadable else ""))


@dataclass
class Report:
    """What `seavl check` found: the checks, and the predicted cost of each stage (pipelines/cost.py)."""
    checks: list[Check]
    costs: list = field(default_factory=list)          # cost.StageCost
    unpredicted: list[str] = field(default_factory=list)   # stages whose cost could not be predicted, and why
    throughput: object = None                          # cost.Throughput of training
    eval_throughput: object = None                     # ... of evaluation
    tokenizer: str = ""                                # what counted the tokens

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def gpu_memory_of(node_selector: dict | None) -> tuple[float, str]:
    """The memory of the GPU a node selector asks for (its gpu.product label), else 80 GB, and where it came from."""
    from components.train.plan import requested_accelerator

    label, known = requested_accelerator(node_selector)
    return (known[2], label) if known else (80.0, "assumed: train_node_selector names no known gpu.product")


def check_run(args: dict, gpu_memory_gb: float | None = None, pipeline_root: str = "", predict: bool = True,
              in_pipeline: bool = False) -> Report:
    """Every check of a run with pipeline arguments `args` (as read from its YAML, overrides applied), and the
    predicted cost of its stages. `gpu_memory_gb` None: the memory of the GPU that train_node_selector names.
    `in_pipeline`: the preflight step's call, `args` every parameter the checks read, typed by KFP; the pipeline's
    declaration is not imported (a step cannot: KFP's runtime `dsl` has no pipeline-building parts)."""
    import tempfile

    from pipelines import cost
    from pipelines.cli import check_settings, typed_arguments

    if in_pipeline:
        out = [_attempt("parameters", f"{len(args)} given", lambda: (check_settings(args), "every setting is known "
                                                                      "and well-typed")[1])]
        run = dict(args)
    else:
        defaults = pipeline_defaults()
        out = [_attempt("parameters", f"{len(args)} given", lambda: (typed_arguments(args), "every parameter is "
                                                                      "known and well-typed")[1])]
        run = {**defaults, **{k: v for k, v in args.items() if k in defaults}}
    report = Report(out)

    models = {"base_model": run["base_model"], **{f"reference_models.{k}": v
                                                  for k, v in (run["reference_models"] or {}).items()}}
    model_checks = {name: _attempt("model", f"{name}={uri}", check_model, uri) for name, uri in models.items()}
    out += model_checks.values()
    models_ok = {name: c.ok for name, c in model_checks.items()}
    samples: dict[str, cost.Sample] = {}
    for name in ("caption_manifest", "sft_conversations", "replay_data"):
        if run.get(name):
            out.append(_attempt("data", f"{name}={run[name]}", lambda u=run[name]: check_data(u)))
            if out[-1].ok:
                try:
                    samples[name] = cost.sample_input(run[name])
                except Exception as err:  # noqa: BLE001 (said as the stage's missing prediction)
                    report.unpredicted.append(f"{name}: its records could not be sampled ({err})")
    if "sft_conversations" in samples:
        uri = run["sft_conversations"]
        out.append(_attempt("data", "sft_conversations images", lambda: check_images(
            uri, cost.as_training_rows("conversations", samples["sft_conversations"].rows, ()))))
    loaded: dict = {}
    out += check_suite(run["eval_suite"], loaded)

    gpus, nodes = run["train_gpus"], run["train_nodes"]
    memory, memory_from = ((gpu_memory_gb, "--gpu-memory") if gpu_memory_gb
                           else gpu_memory_of(run["train_node_selector"]))
    with tempfile.TemporaryDirectory(prefix="seavl-check-") as tmp:
        config_path = f"{tmp}/config.json"   # the planner builds the model on the meta device from its config
        try:
            storage.write_bytes(config_path, model_file(run["base_model"], "config.json"))
            unplanned = ""
        except Exception as err:  # noqa: BLE001 (said in each stage's row)
            unplanned = f"not planned: the base model's config.json cannot be read ({err})"
        for stage in ("cpt_training", "sft_training"):
            if unplanned:
                out.append(Check("plan", stage, False, unplanned))
                continue
            out.append(_attempt("plan", stage, lambda s=stage: plan_stage(config_path, run[s] or {}, gpus, nodes,
                                                                          memory, memory_from)))
        if predict and not unplanned:
            try:
                _predict(report, run, config_path, samples, loaded, models, models_ok)
            except Exception as err:  # noqa: BLE001 (a prediction that fails never hides the checks)
                report.unpredicted.append(f"the costs: {type(err).__name__}: {err}")
    out.append(_attempt("tracking", "MLFLOW_TRACKING_URI", check_tracking))
    stores = {"checkpoint_root": run.get("checkpoint_root"), "eval_response_cache": run.get("eval_response_cache"),
              "pipeline_root": pipeline_root}
    for name, uri in stores.items():
        if uri and uri.startswith("minio://"):   # KFP's own default store, reached by its launcher, not by fsspec
            out.append(Check("artifact store", f"{name}={uri}", True, "KFP's own MinIO store: not checked here"))
        elif uri:
            out.append(_attempt("artifact store", f"{name}={uri}", lambda u=uri: check_store(u)))
    return report


def _predict(report: Report, run: dict, config_path: str, samples: dict, loaded: dict, models: dict,
             models_ok: dict) -> None:
    """The predicted cost of CPT, SFT and each model's evaluation (pipelines/cost.py), into `report`; what cannot
    be predicted goes into report.unpredicted with the reason."""
    from transformers import AutoConfig

    from components.common.languages import CAPTION_PROMPTS
    from components.evaluate.seahelm.suite import load_suite
    from components.train.loop import TrainConfig
    from pipelines import cost

    tp = report.throughput = cost.throughput(run["train_node_selector"])
    report.eval_throughput = cost.throughput(run.get("eval_node_selector") or {}, selector="eval_node_selector")
    config = AutoConfig.from_pretrained(config_path)
    count_tokens, report.tokenizer = cost.token_counter(lambda name: model_file(run["base_model"], name))
    world = run["train_gpus"] * run["train_nodes"]
    replay = (cost.as_training_rows("conversations", samples["replay_data"].rows, ())
              if "replay_data" in samples else None)
    for stage, name, kind in (("cpt", "caption_manifest", "captions"), ("sft", "sft_conversations", "conversations")):
        if name not in samples:
            report.unpredicted.append(f"{stage}: {name} was not sampled")
            continue
        try:
            settings = TrainConfig(**(run[f"{stage}_training"] or {}))
            rows = cost.as_training_rows(kind, samples[name].rows, CAPTION_PROMPTS)
            report.costs.append(cost.training_cost(stage, settings, rows, count_tokens, config, world, tp,
                                                   samples[name], replay))
        except Exception as err:  # noqa: BLE001 (said, never hides the checks)
            report.unpredicted.append(f"{stage}: {err}")
    if not loaded:
        report.unpredicted.append("evaluation: the suite's data could not be read")
        return
    try:
        load = cost.evaluation_load(load_suite(run["eval_suite"]), loaded, count_tokens,
                                    run.get("eval_max_new_tokens") or 0, run.get("eval_backend") or "auto")
    except Exception as err:  # noqa: BLE001
        report.unpredicted.append(f"evaluation: {err}")
        return
    evaluated = [(role, config) for role in ("base", "cpt", "candidate", "champion (if one is registered)")]
    for name, uri in models.items():
        if not name.startswith("reference_models."):
            continue
        label = f"reference {name.split('.', 1)[1]}"
        if not models_ok[name]:
            report.unpredicted.append(f"evaluate {label}: its model did not pass its check")
            continue
        try:
            folder = f"{storage.parent(config_path)}/{len(evaluated)}"
            storage.write_bytes(f"{folder}/config.json", model_file(uri, "config.json"))
            evaluated.append((label, AutoConfig.from_pretrained(folder)))
        except Exception as err:  # noqa: BLE001
            report.unpredicted.append(f"evaluate {label}: {err}")
    for label, model_config in evaluated:
        try:
            report.costs.append(cost.evaluation_cost(label, load, model_config, run["eval_gpus"],
                                                     report.eval_throughput))
        except Exception as err:  # noqa: BLE001
            report.unpredicted.append(f"evaluate {label}: {type(err).__name__}: {err}")


def markdown(report: Report) -> str:
    """The report as Markdown (what the preflight step shows in the run's UI and log)."""
    from pipelines.cost import bases, count, duration, gpu_hours, on_what

    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    failed = [c for c in report.checks if not c.ok]
    lines = [f"## Checks: {len(report.checks) - len(failed)} of {len(report.checks)} passed", "",
             "| what | target | result | detail |", "|---|---|---|---|"]
    lines += [f"| {c.what} | {cell(c.target)} | {'ok' if c.ok else '**FAILED**'} | {cell(c.detail)} |"
              for c in report.checks]
    tp = report.throughput
    if report.costs:
        lines += ["", f"## Predicted cost on {on_what(tp, report.eval_throughput)}", "",
                  "| stage | samples / items | text tokens | image tokens | FLOPs | GPUs | GPU-hours | wall-clock |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {c.stage} | {c.samples:,} | {count(c.text_tokens)} | {count(c.image_tokens)} | {c.flops:.2e} | "
                  f"{c.gpus} | {gpu_hours(c.gpu_hours)} | {duration(c.hours)} |" for c in report.costs]
        lines += ["", f"MFU {tp.mfu:.2f}: {tp.basis}. Tokens counted with {report.tokenizer}.", ""]
        lines += [f"- {', '.join(stages)}: {basis}" for stages, basis in bases(report.costs)]
    lines += [f"- not predicted: {line}" for line in report.unpredicted]
    return "\n".join(lines) + "\n"
