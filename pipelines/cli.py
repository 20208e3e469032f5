"""`seavl`: compile the pipeline, run it locally through kfp.local, look at results.

    seavl compile [-o sealion_vl_pipeline.yaml]      YAML to upload in the Kubeflow UI
    seavl run [--config FILE] [--set key=value ...]  the whole pipeline on this machine (demo by default)
    seavl demo                                       build (or find) the demo corpus and tiny model
"""
from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help="SEA-LION VL pipelines: compile, run locally, inspect.")
CONFIG_DIR = Path(__file__).parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "demo.yaml"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
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


def load_arguments(config: Path, overrides: list[str], demo_root: Optional[Path]) -> dict:
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
            image_registry: Optional[str] = typer.Option(None, help="replace the images' registry prefix")):
    """Write the pipeline YAML to upload in the Kubeflow UI (Pipelines -> Upload pipeline)."""
    from kfp import compiler

    from components.common import images
    from pipelines.sealion_vl import sealion_vl

    compiler.Compiler().compile(sealion_vl, str(output), pipeline_parameters={"git_commit": git_commit()})
    if image_registry:
        output.write_text(output.read_text().replace(images.REGISTRY + "/", image_registry.rstrip("/") + "/"))
    typer.echo(f"wrote {output}")


@app.command()
def demo(seed: int = typer.Option(1234, help="the demo's seed (a new seed builds a new demo)")):
    """Build the demo corpus and tiny base model (cached), and print where they are."""
    from components.common.demo.build import ensure_demo

    typer.echo(ensure_demo(seed).root)


@app.command()
def run(config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="pipeline arguments (YAML)"),
        set_: list[str] = typer.Option([], "--set", "-s", help="override one argument: key=value"),
        seed: int = typer.Option(1234, help="seed of the demo corpus and model"),
        cache: bool = typer.Option(False, help="let kfp.local reuse results of identical tasks")):
    """Run the whole pipeline on this machine through kfp.local; print base vs candidate and the version."""
    import kfp.local

    from components.common import tracking
    from components.common.demo.build import ensure_demo
    from pipelines.sealion_vl import sealion_vl

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    home = tracking.home()
    os.environ["SEAVL_HOME"] = str(home)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ["MLFLOW_TRACKING_URI"] = tracking.tracking_uri()  # the steps are subprocesses: pass it on
    uses_demo = "{demo}" in config.read_text()
    demo_root = ensure_demo(seed).root if uses_demo else None
    args = load_arguments(config, set_, demo_root)
    args.setdefault("git_commit", git_commit())
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(home / "pipeline_root"),
                   enable_caching=cache)
    started = int(time.time() * 1000)
    sealion_vl(**args)
    show_result(args.get("mlflow_experiment", "sealion-vl"), started)


def show_result(experiment: str, since_ms: int) -> None:
    """The table of base vs candidate scores and the registered version of the newest pipeline run."""
    from rich.console import Console
    from rich.table import Table

    from pipelines import results

    res = results.latest(experiment, since_ms)
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
    console.print(f"MLflow: {tracking_hint()}")


def tracking_hint() -> str:
    from components.common import tracking

    uri = tracking.tracking_uri()
    return f"mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite") else uri


if __name__ == "__main__":
    app()
