"""`seavl`: compile the pipeline, run it locally through kfp.local, look at results.

    seavl compile [-o sealion_vl_pipeline.yaml]              YAML to upload in the Kubeflow UI
    seavl image-tag                                          the tag to build docker/ images with
    seavl run [--config FILE] [--set key=value ...] [--cache]  the whole pipeline on this machine (demo by default)
    seavl demo                                               build (or find) the demo corpus and tiny model
    seavl validate INPUT --out DIR [--languages ...] [--workers N] [--config FILE] [--set key=value ...]
                                                             curate and validate a caption corpus or SFT set
"""
from __future__ import annotations

import logging
import subprocess
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


def load_arguments(config: Path, overrides: list[str], demo_root: Path | None) -> dict:
    """Pipeline arguments from a YAML file, `{demo}` filled in, then `key=value` overrides on top."""
    import yaml

    from pipelines.sealion_vl import sealion_vl

    args = yaml.safe_load(config.read_text()) or {}
    for item in overrides:
        if "=" not in item:
            raise typer.BadParameter(f"--set takes key=value, got {item!r}")
        key, value = item.split("=", 1)
        args[key.strip()] = parse_value(value)
    known = set(sealion_vl.component_spec.inputs or {})
    unknown = sorted(set(args) - known)
    if unknown:
        raise typer.BadParameter(f"unknown pipeline parameter(s) {unknown}; known: {sorted(known)}")
    if demo_root is not None:
        args = {k: v.replace("{demo}", str(demo_root)) if isinstance(v, str) else v for k, v in args.items()}
    return args


@app.command()
def compile(output: Path = typer.Option(Path("sealion_vl_pipeline.yaml"), "--output", "-o"),
            image_registry: str | None = typer.Option(None, help="registry the cluster pulls the images from"),
            image_tag: str | None = typer.Option(None, help="image tag (default: <version>-<git commit>)")):
    """Write the pipeline YAML to upload in the Kubeflow UI (Pipelines -> Upload pipeline)."""
    import yaml
    from kfp import compiler

    from components.common import images
    from pipelines.sealion_vl import sealion_vl

    commit = git_commit()
    compiler.Compiler().compile(sealion_vl, str(output), pipeline_parameters={"git_commit": commit})
    docs = list(yaml.safe_load_all(output.read_text()))
    tag = image_tag or images.release_tag(commit)
    used = set()
    for executor in docs[0]["deploymentSpec"]["executors"].values():
        container = executor["container"]
        container["image"] = images.retag(container["image"], tag, image_registry)
        used.add(container["image"])
    output.write_text(yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True))
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
    except tracking.TrackingUnavailable as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    demo_root = None
    if "{demo}" in config.read_text():
        from demo.build import ensure_demo

        demo_root = ensure_demo(seed).root
    args = load_arguments(config, set_, demo_root)
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
        settings = yaml.safe_load(config.read_text()) if config else {}
        if settings is not None and not isinstance(settings, dict):
            raise ValueError(f"{config} must hold key: value settings")
        settings = settings or {}
        for item in set_:
            if "=" not in item:
                raise ValueError(f"--set takes key=value, got {item!r}")
            key, value = item.split("=", 1)
            settings[key.strip()] = parse_value(value)
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


def show_result(kfp_run_id: str) -> None:
    """The table of scores by role, the registered version and what KFP's cache served, of one pipeline run."""
    from rich.console import Console
    from rich.table import Table

    from pipelines import results

    res = results.for_run(kfp_run_id)
    console = Console()
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
