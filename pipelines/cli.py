"""`seavl`: compile the pipeline, run it locally through kfp.local, look at results.

    seavl compile [-o sealion_vl_pipeline.yaml] [--image-registry REG] [--pipeline-root URI]   YAML for the KFP UI
    seavl image-tag                                          the tag to build docker/ images with
    seavl run [--config FILE] [--set key=value ...] [--cache]  the whole pipeline on this machine (demo by default)
    seavl demo                                               build (or find) the demo corpus and tiny model
    seavl pull models:/NAME@ALIAS --out DIR                  a registered version as a save_pretrained folder
    seavl validate INPUT --out DIR [--languages ...] [--workers N] [--config FILE] [--set key=value ...]
                                                             curate and validate a caption corpus or SFT set
    seavl train {cpt,sft} --init-model URI --data URI --out URI [--checkpoint-uri URI] [--config FILE]
                [--set key=value ...] [--processes N]        one training stage alone
    seavl evaluate --model URI --suite FILE [--out DIR]        a SEA-HELM suite on one model
    seavl score --task TASK --lang LANG --data URI --predictions FILE   SEA-HELM's metrics for given responses
    seavl plan --model NAME|PATH --gpus N [--nodes M] --batch B --seq-len L [--lora] [--activation-checkpointing]
               [--freeze-vision] [--json]                    will it fit: per-GPU memory and FLOPs
    seavl check --config FILE [--set key=value ...] [--gpu-memory GB] [--pipeline-root URI]
                                                             before a run: parameters, inputs, the plan of each
                                                             training stage, the tracking server, S3; the cost
    seavl schedule --host URL --cron EXPR [--param k=v ...] [--config FILE] [--experiment NAME] [--name NAME]
                   [--namespace NS] [--token TOKEN]          retrain on a schedule: a KFP recurring run
    seavl schedules --host URL [--experiment NAME] [--namespace NS] [--token TOKEN]   the recurring runs
    seavl unschedule ID --host URL [--namespace NS] [--token TOKEN]                   delete one
    seavl compare [--last N | RUN_ID ...] [--experiment NAME] [--plot FILE]   pipeline runs side by side
    seavl submit --host URL [--namespace NS] [--experiment NAME] [--param k=v ...] [--pipeline-root URI]
                 [--no-check]                                one run on a Kubeflow Pipelines cluster, checked first
"""
from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help="SEA-LION VL pipelines: compile, run locally, inspect.")
CONFIG_DIR = Path(__file__).parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "demo.yaml"


CODE_PATHS = ("components", "pipelines", "pyproject.toml", "docker")  # what goes into the images


def git_commit() -> str:
    """The checkout's commit (12 hex digits); with uncommitted changes to the code, "-dirty-" and a hash of
    them, so that each state of the code has its own name; "unknown" outside git."""
    import hashlib

    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, cwd=root).stdout

    try:
        commit = git("rev-parse", "--short=12", "HEAD").strip()
        if not commit:
            return "unknown"
        changes = git("diff", "HEAD", "--binary", "--", *CODE_PATHS)
        untracked = git("ls-files", "--others", "--exclude-standard", "--", *CODE_PATHS).split()
        if not changes and not untracked:
            return commit
        h = hashlib.sha256(changes.encode())
        for name in sorted(untracked):
            h.update(name.encode() + (root / name).read_bytes())
        return f"{commit}-dirty-{h.hexdigest()[:8]}"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def parse_value(text: str):
    """A --set value as YAML would read it (800 -> int, true -> bool), and 2e-3 as a float, which YAML 1.1 reads
    as a string."""
    import yaml

    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_overrides(settings: dict, overrides: list[str], flag: str = "--set") -> dict:
    """`key=value` items (given with `flag`) on top of `settings`; `a.b=value` sets key b of the dictionary a.
    ValueError naming the item when it is not key=value, its value is not YAML, or `a` holds a single value."""
    import yaml

    settings = dict(settings)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"{flag} takes key=value, got {item!r}")
        key, value = item.split("=", 1)
        *outer, last = key.strip().split(".")
        target = settings
        for part in outer:
            inner = target.get(part)
            if inner is not None and not isinstance(inner, dict):
                raise ValueError(f"{flag} {item!r}: {part} is {inner!r}, not a group of settings")
            target[part] = dict(inner or {})
            target = target[part]
        try:
            target[last] = parse_value(value)
        except yaml.YAMLError as err:
            raise ValueError(f"{flag} {item!r}: the value is not valid YAML ({getattr(err, 'problem', err)})") from None
    return settings


def read_yaml(path: Path) -> dict:
    """A YAML file of key: value settings ({} when empty); ValueError naming the file when it is missing, is not
    YAML or holds something other than key: value pairs."""
    import yaml

    try:
        settings = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from None
    if settings is not None and not isinstance(settings, dict):
        raise ValueError(f"{path} must hold key: value settings, not a {type(settings).__name__}")
    return settings or {}


def read_settings(config: Path | None, overrides: list[str], flag: str = "--set") -> dict:
    """Settings from a YAML file of key: value (none: {}), with --set overrides on top."""
    return apply_overrides(read_yaml(config) if config else {}, overrides, flag)


def typed_arguments(args: dict) -> dict:
    """`args` as the pipeline's parameters declare them (the KFP API refuses 32 for a string parameter such as
    train_cpu, which YAML and --set read as a number); ValueError naming unknown parameters and values that do
    not fit their type."""
    from pipelines.sealion_vl import sealion_vl

    declared = sealion_vl.component_spec.inputs or {}
    unknown = sorted(set(args) - set(declared))
    if unknown:
        raise ValueError(f"unknown pipeline parameter(s) {unknown}; known: {sorted(declared)}")
    out = {}
    for name, value in args.items():
        kind = declared[name].type
        if kind == "String" and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        elif kind == "Integer" and isinstance(value, float) and value.is_integer():
            value = int(value)
        elif kind == "Float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        wanted = {"String": str, "Integer": int, "Float": float, "Boolean": bool, "Dict": dict, "List": list}.get(kind)
        if wanted is not None and (not isinstance(value, wanted) or (wanted is int and isinstance(value, bool))):
            raise ValueError(f"pipeline parameter {name} takes {kind.lower()} values, got {value!r}")
        out[name] = value
    check_settings(out)
    return out


def check_settings(args: dict) -> None:
    """The pipeline's dictionary parameters against the settings the steps make of them: a misspelt key or a
    value of the wrong type is refused here, naming the parameter, not by a step an hour into the run."""
    from pydantic import ValidationError

    from components.register.core import GateConfig
    from components.train.loop import TrainConfig
    from components.validate_data.core import ValidateConfig

    kinds = {"caption_validation": ValidateConfig, "sft_validation": ValidateConfig, "cpt_training": TrainConfig,
             "sft_training": TrainConfig, "gate": GateConfig}
    for name, settings in args.items():
        if name in kinds:
            try:
                kinds[name](**settings)
            except ValidationError as err:
                raise ValueError(f"pipeline parameter {name}: {err}") from None


def load_arguments(config: Path, overrides: list[str], demo_root: Path | None) -> dict:
    """Pipeline arguments from a YAML file, `key=value` overrides on top, `{demo}` filled in (ValueError naming
    what cannot be used)."""
    args = typed_arguments(apply_overrides(read_yaml(config), overrides))
    return fill_demo(args, demo_root) if demo_root is not None else args


def fill_demo(args: dict, demo_root: Path) -> dict:
    """`{demo}` in the arguments' text values replaced by the demo's folder."""
    def fill(value):
        if isinstance(value, str):
            return value.replace("{demo}", str(demo_root))
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    return {k: fill(v) for k, v in args.items()}


def with_demo(args: dict, seed: int | None = None) -> dict:
    """`args` with `{demo}` filled in by the demo's folder (built, or found in the cache) when any value names it
    (the demo's configuration); otherwise `args` as they are, and no demo is built."""
    if not any("{demo}" in json.dumps(v, default=str) for v in args.values()):
        return args
    from demo.build import DEFAULT_SEED, ensure_demo

    return fill_demo(args, ensure_demo(DEFAULT_SEED if seed is None else seed).root)


def use_registry(uri: str) -> None:
    """When `uri` is a registered version (models:/...), point MLflow at the project's tracking server, checked to
    answer, as `seavl pull` does: MLflow would otherwise look in a store of its own in the current folder."""
    from components.common import tracking

    if uri.startswith("models:/"):
        tracking.check_reachable()
        tracking.configure()


def compile_pipeline(output: Path, image_registry: str | None = None, image_tag: str | None = None,
                     pipeline_root: str | None = None) -> set[str]:
    """Compile the pipeline to `output` (YAML): each task's image in `image_registry` with the immutable tag of
    this checkout (or `image_tag`), `pipeline_root` as its default pipeline root; returns the images it uses."""
    import yaml
    from kfp import compiler

    from components.common import images
    from pipelines.sealion_vl import build

    commit = git_commit()
    if pipeline_root is not None and "://" not in pipeline_root:
        raise ValueError(f"--pipeline-root must be a URI such as s3://bucket/pipeline-root, got {pipeline_root!r}")
    pipeline = build(image_registry, image_tag or images.release_tag(commit), pipeline_root)
    compiler.Compiler().compile(pipeline, str(output), pipeline_parameters={"git_commit": commit})
    spec = next(yaml.safe_load_all(output.read_text()))
    return {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}


@app.command()
def compile(output: Path = typer.Option(Path("sealion_vl_pipeline.yaml"), "--output", "-o"),
            image_registry: str | None = typer.Option(None, help="registry the cluster pulls the images from"),
            image_tag: str | None = typer.Option(None, help="image tag (default: <version>-<git commit>)"),
            pipeline_root: str | None = typer.Option(None, "--pipeline-root", help="where KFP keeps the run's "
                                                     "artifacts, e.g. s3://sealion-vl/pipeline-root (models of "
                                                     "50-110 GB pass through it)")):
    """Write the pipeline YAML to upload in the Kubeflow UI (Pipelines -> Upload pipeline)."""
    try:
        if not output.parent.is_dir():
            raise ValueError(f"cannot write {output}: the folder {output.parent} does not exist")
        used = compile_pipeline(output, image_registry, image_tag, pipeline_root)
    except (ValueError, OSError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {output}; images: {', '.join(sorted(used))}")


@app.command("image-tag")
def image_tag_cmd():
    """Print the immutable image tag of this checkout (<version>-<git commit>), as `seavl compile` writes it."""
    from components.common import images

    typer.echo(images.release_tag(git_commit()))


@app.command()
def demo(seed: int = typer.Option(1234, help="the demo's seed (a new seed builds a new demo)")):
    """Build the demo corpus and tiny base model (cached), and print where they are."""
    from demo.build import ensure_demo

    typer.echo(ensure_demo(seed).root)


@app.command()
def run(config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="pipeline arguments (YAML)"),
        set_: list[str] = typer.Option([], "--set", "-s", help="override one argument: key=value"),
        seed: int = typer.Option(1234, help="seed of the demo corpus and model"),
        cache: bool = typer.Option(False, help="reuse the results of tasks whose inputs are unchanged")):
    """Run the whole pipeline on this machine through kfp.local; print base vs candidate and the version."""
    from components.common import tracking
    from pipelines.local import run_pipeline

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        tracking.check_reachable()
        args = load_arguments(config, set_, None)   # checked before anything is built or run
    except (tracking.TrackingUnavailable, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    args = with_demo(args, seed)
    args.setdefault("git_commit", git_commit())
    show_result(run_pipeline(args, cache=cache))


@app.command()
def validate(input_uri: str = typer.Argument(..., metavar="INPUT", help="a JSONL/Parquet manifest, or a folder or "
                                             "prefix of manifests or WebDataset .tar shards; local or s3://"),
             out: Path = typer.Option(..., "--out", "-o", help="output folder: curated/, quarantine.parquet, "
                                      "metrics.json, data_docs/, report.html"),
             languages: str | None = typer.Option(None, help="comma-separated ISO 639-1 codes accepted"),
             workers: int = typer.Option(1, help="worker processes checking units in parallel"),
             config: Path | None = typer.Option(None, "--config", "-c", help="validation settings (YAML)"),
             set_: list[str] = typer.Option([], "--set", "-s", help="override one setting: key=value")):
    """Curate and validate a caption corpus (CPT) or instruction set (SFT), as the pipeline's validate step does.

    Exit status: 0 when the dataset expectations hold; 1 when a critical one fails (the outputs are still
    written); 2 when the input or the settings cannot be used."""
    import yaml
    from pydantic import ValidationError

    from components.validate_data.core import DataValidationError, ValidateConfig
    from components.validate_data.core import validate as run_validation
    from components.validate_data.sources import InputError

    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # great-expectations logs a lot at INFO
    try:
        settings = read_settings(config, set_)
        if languages is not None:
            settings["languages"] = languages
        cfg = ValidateConfig(**settings)
        if workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        report = run_validation(input_uri, out, cfg, workers=workers, progress=True)
    except DataValidationError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    except (InputError, ValidationError, ValueError, OSError, yaml.YAMLError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{report.rows_in} rows in: {report.rows_curated} curated, {report.rows_quarantined} quarantined"
               + (f", {report.rows_not_selected} not selected" if report.rows_not_selected else "")
               + f" ({report.kind}, {report.rows_in / max(report.seconds, 1e-9):.0f} rows/s)")
    if report.reasons:
        typer.echo("quarantined by reason: " + ", ".join(f"{k} {v}" for k, v in report.reasons.items()))
    for damaged in report.shards_damaged:
        typer.echo(f"warning: {damaged}", err=True)
    typer.echo(f"curated: {out / 'curated'}  quarantine: {out / 'quarantine.parquet'}  report: {out / 'report.html'}")


@app.command()
def train(stage: str = typer.Argument(..., metavar="{cpt,sft}", help="cpt: captions; sft: conversations"),
          init_model: str = typer.Option(..., "--init-model", help="save_pretrained folder to start from (or s3://)"),
          data: str = typer.Option(..., "--data", help="curated Parquet folder (seavl validate), or JSONL/Parquet"),
          out: str = typer.Option(..., "--out", help="where the trained model's folder goes (local or s3://)"),
          checkpoint_uri: str = typer.Option("", "--checkpoint-uri", help="checkpoints here; a rerun resumes"),
          config: Path | None = typer.Option(None, "--config", "-c", help="training settings (YAML, TrainConfig)"),
          set_: list[str] = typer.Option([], "--set", "-s", help="override one setting: key=value"),
          processes: int = typer.Option(1, "--processes", help="processes on this machine (one per GPU): FSDP2")):
    """Train one stage alone, with the pipeline's own training code.

    Exit status: 0 trained; 1 training failed (out of memory: with what `seavl plan` advises; a checkpoint that
    could not be written: with the one a restart resumes from); 2 the model, the
    data, the checkpoint or the settings cannot be used."""
    from mlflow.exceptions import MlflowException
    from pydantic import ValidationError

    from components.common.models import ModelFolderError
    from components.common.tracking import TrackingUnavailable
    from components.train.checkpoints import CheckpointMismatch, CheckpointWriteError
    from components.train.data import EmptyDataset
    from components.train.launch import TrainingFailed, launch, spec
    from components.train.loop import TrainConfig
    from components.train.recipes import STAGES, OutOfMemory

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}: one of {', '.join(STAGES)}")
        cfg = TrainConfig(**read_settings(config, set_))
        if processes < 1:
            raise ValueError(f"--processes must be at least 1, got {processes}")
        use_registry(init_model)

        def show(metrics: dict, step: int) -> None:
            typer.echo(f"step {step}: " + "  ".join(f"{k.removeprefix('train/')} {v:.4g}" for k, v in metrics.items()))

        result = launch(spec(stage, init_model, data, out, cfg.model_dump(), checkpoint_uri=checkpoint_uri),
                        processes, log_metrics=show)
    except (OutOfMemory, TrainingFailed, CheckpointWriteError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    except (ValidationError, ValueError, OSError, ModelFolderError, EmptyDataset, CheckpointMismatch,
            TrackingUnavailable) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    except MlflowException as err:   # --init-model models:/NAME/VERSION that the registry does not have
        typer.echo(f"error: {init_model}: {err.message}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{stage}: {result.steps} steps, loss {result.first_loss:.3f} -> {result.final_loss:.3f}, "
               f"{result.train_seconds:.0f} s; model: {out}")


@app.command()
def plan(model: str = typer.Option("gemma-3-27b", "--model", help="gemma-3-4b, gemma-3-12b, gemma-3-27b or a folder"),
         gpus: int = typer.Option(1, "--gpus", help="GPUs per node"),
         nodes: int = typer.Option(1, "--nodes"),
         gpu_memory: float = typer.Option(80.0, "--gpu-memory", help="memory of one GPU, GB"),
         batch: int = typer.Option(1, "--batch", help="samples per GPU per micro-batch"),
         seq_len: int = typer.Option(2048, "--seq-len", help="tokens per sample, image tokens included"),
         images: int = typer.Option(1, "--images", help="images per sample"),
         lora: bool = typer.Option(False, "--lora", help="LoRA adapters instead of full fine-tuning"),
         activation_checkpointing: bool = typer.Option(False, "--activation-checkpointing"),
         freeze_vision: bool = typer.Option(False, "--freeze-vision"),
         cpu_offload: bool = typer.Option(False, "--cpu-offload"),
         as_json: bool = typer.Option(False, "--json", help="one JSON object instead of the table")):
    """Per-GPU memory and FLOPs of a training configuration: does it fit, and what to change if not."""
    from rich.console import Console
    from rich.table import Table

    from components.train.plan import Request
    from components.train.plan import plan as make_plan

    wrong = [f"{flag} must be at least 1, got {value}" for flag, value in
             (("--gpus", gpus), ("--nodes", nodes), ("--batch", batch), ("--seq-len", seq_len)) if value < 1]
    wrong += [f"--gpu-memory must be positive, got {gpu_memory:g}"] if gpu_memory <= 0 else []
    if wrong:
        typer.echo(f"error: {'; '.join(wrong)}", err=True)
        raise typer.Exit(2)
    try:
        result = make_plan(Request(model=model, gpus=gpus, nodes=nodes, gpu_memory_gb=gpu_memory, batch=batch,
                                   seq_len=seq_len, images=images, lora=lora, cpu_offload=cpu_offload,
                                   activation_checkpointing=activation_checkpointing, freeze_vision=freeze_vision))
    except (ValueError, OSError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(result.as_json())
        return
    console = Console()
    p = result.params
    console.print(f"{model}: {p['total'] / 1e9:.2f}B parameters (vision {p['vision'] / 1e6:.0f}M, projector "
                  f"{p['projector'] / 1e6:.1f}M, language model {p['language_model'] / 1e9:.2f}B); "
                  f"{gpus * nodes} GPU(s)"
                  f"{', FSDP2' if gpus * nodes > 1 else ''}{', LoRA' if lora else ''}"
                  f"{', activation checkpointing' if activation_checkpointing else ''}"
                  f"{', vision frozen' if freeze_vision else ''}")
    table = Table(title=f"per GPU (GB), batch {batch} x {seq_len} tokens")
    table.add_column("part")
    table.add_column("GB", justify="right")
    for part, gb in result.breakdown_gb.items():
        table.add_row(part.replace("_", " "), f"{gb:.2f}")
    table.add_row("[bold]total[/]", f"[bold]{result.per_gpu_gb:.2f}[/]")
    console.print(table)
    console.print(f"FLOPs per step: {result.flops_per_step:.3g} ({result.flops_per_sample:.3g} per sample)")
    verdict = "[green]fits[/]" if result.fits else "[red]does not fit[/]"
    console.print(f"{verdict} in {gpu_memory:g} GB per GPU")
    for line in result.advice:
        console.print(f"  try {line}")


@app.command()
def check(config: Path = typer.Option(..., "--config", "-c", help="pipeline arguments (YAML)"),
          set_: list[str] = typer.Option([], "--set", "-s", help="override one argument: key=value"),
          gpu_memory: float | None = typer.Option(None, "--gpu-memory", help="memory of one training GPU, GB "
                                                  "(default: that of the GPU train_node_selector names, else 80)"),
          pipeline_root: str = typer.Option("", "--pipeline-root", help="the run's pipeline root: its store is "
                                            "checked too")):
    """Everything about a run that can be known before it starts: parameters, every input it reads (models,
    data, the evaluation suite and its data), whether each training stage fits its GPUs, the tracking server and
    the artifact store. Prints a table of what was checked, then the predicted cost of each stage (tokens, FLOPs,
    GPU-hours and wall-clock time on the requested GPUs; pipelines/cost.py).

    Exit status 0 when every check passes; 2 naming each one that does not."""
    from pipelines.check import check_run

    try:
        settings = apply_overrides(read_yaml(config), set_)
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    settings = with_demo(settings)
    if not report_checks(check_run(settings, gpu_memory_gb=gpu_memory, pipeline_root=pipeline_root),
                         f"seavl check {config}"):
        raise typer.Exit(2)


def report_checks(report, title: str, table_when_passed: bool = True) -> bool:
    """Print a check report (pipelines/check.py) as a table, an error line naming each check that failed, and the
    predicted costs; True when every check passed."""
    from rich.console import Console
    from rich.table import Table

    checks = report.checks
    failed = [c for c in checks if not c.ok]
    console = Console(width=max(Console().width, 160))
    if failed or table_when_passed:
        table = Table(title=title)
        for column in ("what", "target", "result", "detail"):
            table.add_column(column, overflow="fold")
        for c in checks:
            table.add_row(c.what, c.target, "[green]ok[/]" if c.ok else "[red]FAILED[/]", c.detail)
        console.print(table)
    report_costs(report, console)
    for c in failed:
        typer.echo(f"error: {c.what} {c.target}: {c.detail}", err=True)
    if failed:
        typer.echo(f"{len(failed)} of {len(checks)} check(s) failed", err=True)
    else:
        typer.echo(f"all {len(checks)} checks passed")
    return not failed


def report_costs(report, console) -> None:
    """The predicted cost of each stage as a table, with what it rests on."""
    from rich.table import Table

    from pipelines.cost import bases, count, duration, gpu_hours, on_what

    tp = report.throughput
    if report.costs:
        table = Table(title=f"predicted cost on {on_what(tp, report.eval_throughput)}")
        for column in ("stage", "samples / items", "text tokens", "images", "image tokens", "FLOPs", "GPUs",
                       "GPU-hours", "wall-clock"):
            table.add_column(column, justify="left" if column == "stage" else "right")
        for c in report.costs:
            table.add_row(c.stage, f"{c.samples:,}", count(c.text_tokens), count(c.images), count(c.image_tokens),
                          f"{c.flops:.2e}", str(c.gpus), gpu_hours(c.gpu_hours), duration(c.hours))
        total = sum(c.gpu_hours for c in report.costs)
        table.add_row("total (all of the above)", "", "", "", "", f"{sum(c.flops for c in report.costs):.2e}", "",
                      gpu_hours(total), "")
        console.print(table)
        console.print(f"MFU {tp.mfu:.2f}: {tp.basis}", highlight=False)
        console.print(f"tokens counted with {report.tokenizer}", highlight=False)
        for stages, basis in bases(report.costs):
            console.print(f"{', '.join(stages)}: {basis}", highlight=False)
    for line in report.unpredicted:
        console.print(f"not predicted: {line}", highlight=False)


@app.command()
def evaluate(model: str = typer.Option(..., "--model", help="save_pretrained folder (local, s3://) or models:/..."),
             suite: str = typer.Option(..., "--suite", help="the SEA-HELM suite (YAML: tasks, data, judge; local "
                                       "or s3://)"),
             out: Path = typer.Option(Path("seahelm-out"), "--out", help="responses/ and scores.json go here; a "
                                      "rerun into the same folder resumes"),
             gpus: int = typer.Option(1, "--gpus", help="GPUs the model is spread over"),
             backend: str = typer.Option("auto", "--backend", help="auto (vLLM where installed, on GPUs), "
                                         "transformers or vllm")):
    """Run a SEA-HELM suite on one model: SEA-HELM's prompts and limits, its metrics, its aggregation.

    Exit status 0, or 2 when the suite, the data or the model cannot be used (named in the message)."""
    from mlflow.exceptions import MlflowException
    from pydantic import ValidationError
    from rich.console import Console
    from rich.table import Table

    from components.common.models import ModelFolderError
    from components.common.tracking import TrackingUnavailable
    from components.evaluate.inference import BackendUnavailable
    from components.evaluate.seahelm.mcq import TooFewLabels
    from components.evaluate.seahelm.suite import ResponseStore, load_suite, run_suite
    from components.evaluate.seahelm.tasks import EvalDataError

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        if gpus < 1:
            raise ValueError(f"--gpus must be at least 1, got {gpus}")
        loaded = load_suite(str(suite))
        use_registry(model)
        store = ResponseStore(str(out / "responses"))
        store.claim(model)   # refused now when the folder holds another model's replies; marked with the first reply
        result = run_suite(model, loaded, store, gpus=gpus, backend=backend)
    except (EvalDataError, TooFewLabels, ValidationError, ModelFolderError, OSError, ValueError,
            BackendUnavailable, TrackingUnavailable) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    except MlflowException as err:   # --model models:/NAME@ALIAS that the registry does not have
        typer.echo(f"error: {model}: {err.message}", err=True)
        raise typer.Exit(2) from None
    out.mkdir(parents=True, exist_ok=True)
    (out / "scores.json").write_text(result.to_json(), encoding="utf-8")
    table = Table(title=f"{model}: SEA-HELM subset" + (" (replies capped: not comparable)"
                                                      if result.capped_tokens else ""))
    for column in ("task/lang", "n", "metric", "score"):
        table.add_column(column, justify="right" if column in ("n", "score") else "left")
    for key, m in result.tasks.items():
        table.add_row(key, str(m["n"]), m["metric"], f"{m[m['metric']]:.2f}")
    for lang, agg in result.aggregate["languages"].items():
        table.add_row(f"[bold]{lang}[/]", "", "language", f"{agg['score']:.2f}")
    table.add_row("[bold]total[/]", "", "", f"{result.aggregate['total']:.2f}")
    Console().print(table)
    typer.echo(f"scores: {out / 'scores.json'}  responses: {out / 'responses'}")


@app.command()
def score(task: str = typer.Option(..., "--task", help="SEA-HELM task, e.g. cvqa"),
          lang: str = typer.Option(..., "--lang", help="language code as SEA-HELM names it, e.g. id"),
          data: str = typer.Option(..., "--data", help="the task's dataset in its public schema (Parquet, JSONL or a "
                                   "save_to_disk folder; local or s3://)"),
          predictions: str = typer.Option(..., "--predictions", help='JSONL of {"id": ..., "response": ...}, or a '
                                          "folder of such files (seavl evaluate's responses/<task>/<lang>)"),
          judge: str = typer.Option("", "--judge", help="xm3600: the CLIP judge (open_clip checkpoint or "
                                    "transformers CLIPModel folder)"),
          metricx: str = typer.Option("", "--metricx", help="translation: MetricX-24 checkpoint folder with its "
                                      "mT5 tokenizer ('' = chrF++ only)")):
    """Score responses produced elsewhere the way SEA-HELM does; prints one JSON object.

    Exit status 0, or 2 when the data or the predictions cannot be scored (named in the message)."""
    from components.evaluate.seahelm.mcq import TooFewLabels
    from components.evaluate.seahelm.tasks import EvalDataError, dumps, score_predictions

    try:
        result = score_predictions(task, lang, data, predictions, judge, metricx)
    except (EvalDataError, TooFewLabels, OSError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(dumps(result))


@app.command()
def pull(uri: str = typer.Argument(..., metavar="models:/NAME@ALIAS", help="a registered version: models:/NAME@ALIAS "
                                   "or models:/NAME/VERSION"),
         out: Path = typer.Option(..., "--out", help="a new (or empty) folder for the save_pretrained files")):
    """Download a registered model version as a save_pretrained folder that transformers loads.

    Exit status 0, or 2 when the tracking server cannot be reached or the version or folder cannot be used."""
    from components.common import tracking
    from components.register.core import PullError
    from components.register.core import pull as pull_version

    try:
        tracking.check_reachable()
        version, folder = pull_version(uri, out)
    except (tracking.TrackingUnavailable, PullError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{uri} is version {version}: {folder}")


def pipeline_arguments(config: Path | None, overrides: list[str]) -> dict:
    """Pipeline arguments from an optional YAML file, `key=value` overrides on top; unknown names refused
    (ValueError). Without either: {} (the pipeline's defaults)."""
    return typed_arguments(read_settings(config, overrides, "--param"))


@contextmanager
def compiled(image_registry: str | None, image_tag: str | None, pipeline_root: str | None) -> Iterator[str]:
    """The pipeline compiled (compile_pipeline) into a temporary YAML file, for as long as the block runs."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="seavl-") as tmp:
        package = Path(tmp) / "sealion_vl_pipeline.yaml"
        compile_pipeline(package, image_registry, image_tag, pipeline_root)
        yield str(package)


HOST_HELP = "the Kubeflow Pipelines API, e.g. http://localhost:8888 (default: $KFP_HOST)"
TOKEN_HELP = "bearer token (default: $KFP_TOKEN, else the pod's KF Pipelines service-account token)"
NAMESPACE_HELP = "your profile namespace (multi-user Kubeflow)"


@app.command()
def schedule(host: str | None = typer.Option(None, "--host", help=HOST_HELP),
             cron: str = typer.Option(..., "--cron", help="when: KFP's 6-field cron, seconds first ('0 0 3 * * *' is "
                                      "03:00 daily), or a standard 5-field one ('0 3 * * *')"),
             param: list[str] = typer.Option([], "--param", "-p", help="one pipeline argument: key=value"),
             config: Path | None = typer.Option(None, "--config", "-c", help="pipeline arguments (YAML; default: "
                                                "the pipeline's defaults)"),
             experiment: str = typer.Option("sealion-vl", "--experiment", help="KFP experiment (created if missing)"),
             name: str = typer.Option("sealion-vl-retraining", "--name", help="the recurring run's name"),
             namespace: str | None = typer.Option(None, "--namespace", help=NAMESPACE_HELP),
             token: str | None = typer.Option(None, "--token", help=TOKEN_HELP),
             image_registry: str | None = typer.Option(None, help="registry the cluster pulls the images from"),
             image_tag: str | None = typer.Option(None, help="image tag (default: <version>-<git commit>)"),
             pipeline_root: str | None = typer.Option(None, "--pipeline-root", help="where KFP keeps the runs' "
                                                      "artifacts, e.g. s3://sealion-vl/pipeline-root")):
    """Retrain on a schedule: the pipeline, compiled as `seavl compile` does, as a KFP recurring run (one run at a
    time, no catch-up of missed runs). Scheduled runs skip unchanged data unless told skip_if_unchanged=false.

    Exit status 0, or 2 when the host, the credentials, the cron expression or the arguments cannot be used."""
    import yaml

    from pipelines import kfp_client

    try:
        cron_used = kfp_client.normalise_cron(cron)
        args = pipeline_arguments(config, param)
        args.setdefault("skip_if_unchanged", True)
        args.setdefault("git_commit", git_commit())
        client = kfp_client.connect(host, namespace, token)
        with compiled(image_registry, image_tag, pipeline_root) as package:
            schedule_id = kfp_client.create_schedule(client, package, cron_used, args, experiment, name)
    except (kfp_client.KfpUnavailable, kfp_client.KfpError, ValueError, OSError, yaml.YAMLError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"scheduled {schedule_id} ({name}, experiment {experiment}): cron '{cron_used}'"
               + (f" (from '{cron.strip()}')" if cron_used != " ".join(cron.split()) else ""))


@app.command()
def submit(host: str | None = typer.Option(None, "--host", help=HOST_HELP),
           param: list[str] = typer.Option([], "--param", "-p", help="one pipeline argument: key=value"),
           config: Path | None = typer.Option(None, "--config", "-c", help="pipeline arguments (YAML; default: the "
                                              "pipeline's defaults)"),
           experiment: str = typer.Option("sealion-vl", "--experiment", help="KFP experiment (created if missing)"),
           name: str | None = typer.Option(None, "--name", help="the run's name (default: sealion-vl-<time>)"),
           namespace: str | None = typer.Option(None, "--namespace", help=NAMESPACE_HELP + "; where the "
                                                "credentials secret must be (default: kubeflow)"),
           token: str | None = typer.Option(None, "--token", help=TOKEN_HELP),
           image_registry: str | None = typer.Option(None, help="registry the cluster pulls the images from"),
           image_tag: str | None = typer.Option(None, help="image tag (default: <version>-<git commit>)"),
           pipeline_root: str | None = typer.Option(None, "--pipeline-root", help="where KFP keeps the run's "
                                                    "artifacts, e.g. s3://sealion-vl/pipeline-root"),
           check_secret: bool = typer.Option(True, "--check-secret/--no-check-secret", help="check with kubectl "
                                             "that the credentials secret is in the namespace"),
           check_run_first: bool = typer.Option(True, "--check/--no-check", help="run `seavl check` on the "
                                                "arguments first (inputs, plan, tracking, S3) and stop if it fails"),
           gpu_memory: float | None = typer.Option(None, "--gpu-memory", help="memory of one training GPU, GB "
                                                   "(--check; default: that of the GPU train_node_selector names)")):
    """Compile the pipeline and start one run of it on a Kubeflow Pipelines cluster; prints the run's URL.

    Exit status 0, or 2 when the host, the credentials, the arguments or the credentials secret cannot be used,
    or a check of `seavl check` fails (named)."""
    import time

    import yaml

    from components.common.images import CREDENTIALS_SECRET
    from pipelines import kfp_client

    try:
        args = pipeline_arguments(config, param)
        if check_run_first:
            from pipelines.check import check_run

            if not report_checks(check_run(args, gpu_memory_gb=gpu_memory, pipeline_root=pipeline_root or ""),
                                 "seavl check", table_when_passed=False):
                raise typer.Exit(2)
        args.setdefault("git_commit", git_commit())
        if check_secret:
            found = kfp_client.check_secret(CREDENTIALS_SECRET, namespace or "kubeflow")
            typer.echo(f"secret {CREDENTIALS_SECRET} in namespace {namespace or 'kubeflow'}: {found}")
        client = kfp_client.connect(host, namespace, token)
        with compiled(image_registry, image_tag, pipeline_root) as package:
            run_id, url = kfp_client.create_run(client, package, args, experiment,
                                                name or time.strftime("sealion-vl-%Y%m%d-%H%M%S"), pipeline_root)
    except (kfp_client.KfpUnavailable, kfp_client.KfpError, kfp_client.SecretMissing, ValueError, OSError,
            yaml.YAMLError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"run {run_id} started in experiment {experiment}: {url}")


@app.command()
def schedules(host: str | None = typer.Option(None, "--host", help=HOST_HELP),
              experiment: str | None = typer.Option(None, "--experiment", help="only this KFP experiment's"),
              namespace: str | None = typer.Option(None, "--namespace", help=NAMESPACE_HELP),
              token: str | None = typer.Option(None, "--token", help=TOKEN_HELP)):
    """The recurring runs: id, name, cron, status, created.

    Exit status 0, or 2 when the host, the credentials or the experiment cannot be used."""
    from datetime import datetime, timezone

    from rich.console import Console
    from rich.table import Table

    from pipelines import kfp_client

    try:
        found = kfp_client.list_schedules(kfp_client.connect(host, namespace, token), experiment)
    except (kfp_client.KfpUnavailable, kfp_client.KfpError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    table = Table(title=f"{len(found)} recurring run(s)" + (f" in experiment {experiment}" if experiment else ""))
    for column in ("id", "name", "cron", "status", "created"):
        table.add_column(column, no_wrap=column == "id")
    for s in found:
        created = datetime.fromisoformat(s["created"]).astimezone(timezone.utc) if s["created"] else None
        table.add_row(s["id"], s["name"], s["cron"], s["status"], f"{created:%Y-%m-%d %H:%M} UTC" if created else "")
    Console().print(table)


@app.command()
def unschedule(schedule_id: str = typer.Argument(..., metavar="ID", help="the recurring run's id (seavl schedules)"),
               host: str | None = typer.Option(None, "--host", help=HOST_HELP),
               namespace: str | None = typer.Option(None, "--namespace", help=NAMESPACE_HELP),
               token: str | None = typer.Option(None, "--token", help=TOKEN_HELP)):
    """Delete one recurring run (the runs it started stay).

    Exit status 0, or 2 when the host or the credentials cannot be used or no recurring run has that id."""
    from pipelines import kfp_client

    try:
        gone = kfp_client.delete_schedule(kfp_client.connect(host, namespace, token), schedule_id)
    except (kfp_client.KfpUnavailable, kfp_client.KfpError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"removed {gone['id']} ({gone['name']}, cron '{gone['cron']}')")


@app.command("compare")
def compare_runs(run_ids: list[str] = typer.Argument(None, metavar="[RUN_ID ...]", help="MLflow or KFP ids of "
                                                     "pipeline runs"),
                 last: int | None = typer.Option(None, "--last", help="the N most recent pipeline runs (default 2)"),
                 experiment: str | None = typer.Option(None, "--experiment", help="only runs of this MLflow "
                                                       "experiment (with --last)"),
                 plot_file: Path = typer.Option(Path("compare.png"), "--plot", help="where the plot goes (PNG)")):
    """Pipeline runs side by side from MLflow: the parameters that differ, the candidate's scores per benchmark
    and language, the gate's decision; and a plot of the headline scores.

    Exit status 0, or 2 when the tracking server cannot be reached or a run is unknown."""
    import time

    from rich.console import Console
    from rich.table import Table

    from components.common import tracking
    from pipelines import compare as cmp

    try:
        if run_ids and last:
            raise ValueError("give run ids or --last, not both")
        if last is not None and last < 1:
            raise ValueError(f"--last must be at least 1, got {last}")
        tracking.check_reachable()
        runs = cmp.by_id(run_ids) if run_ids else cmp.latest(last or 2, experiment)
    except (tracking.TrackingUnavailable, cmp.UnknownRun, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    if not runs:
        typer.echo("error: no pipeline runs found" + (f" in experiment {experiment}" if experiment else ""),
                   err=True)
        raise typer.Exit(2)
    table = Table(title=f"{len(runs)} pipeline run(s), newest first" if not run_ids else "pipeline runs")
    table.add_column("")
    for run in runs:
        table.add_column(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(run.started / 1000)), justify="right")
    table.add_row("MLflow run", *[r.parent_run_id[:12] for r in runs])
    table.add_row("[bold]decision[/]", *[cmp.decision(r) for r in runs])
    for name, values in cmp.differing_params(runs).items():
        table.add_row(f"param {name}", *[v if len(v) <= 40 else v[:37] + "..." for v in values])
    for key in cmp.headline_keys(runs):   # a benchmark's row is named task/lang: its headline metric
        label = key if key.startswith(("overall/", "seahelm/")) else key.rsplit("/", 1)[0]
        table.add_row(label, *[f"{r.scores['candidate'][key]:.2f}" if key in r.scores.get("candidate", {}) else "–"
                             for r in runs])
    Console().print(table)
    typer.echo(f"plot: {cmp.plot(runs, plot_file)}")


def show_result(kfp_run_id: str) -> None:
    """The table of scores by role, the registered version and what KFP's cache served, of one pipeline run."""
    from rich.console import Console
    from rich.table import Table

    from pipelines import results

    res = results.for_run(kfp_run_id)
    console = Console()
    if res.skipped:
        console.print(f"pipeline run {res.run_name} (MLflow run {res.parent_run_id}): {res.skipped}")
        console.print(f"champion is still version {res.champion} of {res.model_name}")
        console.print(f"MLflow: {tracking_hint()}")
        return
    table = Table(title=f"pipeline run {res.run_name}  (MLflow run {res.parent_run_id})")
    table.add_column("metric")
    for role in res.roles:
        table.add_column(role, justify="right")
    for key in res.keys:
        table.add_row(key, *[f"{res.scores[r].get(key, float('nan')):.3f}" for r in res.roles])
    console.print(table)
    console.print(f"registered: [bold]{res.model_name}[/] version [bold]{res.version}[/]; gate: {res.gate}; "
                  f"champion is now version {res.champion}")
    if res.reused:
        console.print(f"reused from the cache: {', '.join(sorted(res.reused))}")
    console.print(f"MLflow: {tracking_hint()}")


def tracking_hint() -> str:
    from components.common import tracking

    uri = tracking.tracking_uri()
    return f"mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite") else uri


if __name__ == "__main__":
    app()
