"""What KFP's cache saves: the demo pipeline run twice with caching on, the second time with unchanged inputs.

    make bench        (or: python -m tests.benchmarks.bench_cached_rerun)

Prints both wall times, their ratio and which steps the second run reused; asserts nothing about time. Runs in a
temporary SEAVL_HOME (its own MLflow store and kfp.local cache), so earlier runs do not help.
"""
from __future__ import annotations

import os
import tempfile
import time


def main() -> None:
    from demo.build import ensure_demo
    from pipelines import results
    from pipelines.cli import DEFAULT_CONFIG, load_arguments
    from pipelines.local import run_pipeline

    args = load_arguments(DEFAULT_CONFIG, [], ensure_demo().root)
    args["git_commit"] = "bench"
    with tempfile.TemporaryDirectory() as home:
        os.environ["SEAVL_HOME"] = home
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        seconds, runs = [], []
        for _ in range(2):
            started = time.perf_counter()
            runs.append(run_pipeline(args, cache=True))
            seconds.append(time.perf_counter() - started)
        reused = sorted(results.for_run(runs[1]).reused)
    print(f"first run (nothing cached):      {seconds[0]:7.1f} s")
    print(f"second run (inputs unchanged):   {seconds[1]:7.1f} s")
    print(f"ratio second/first: {seconds[1] / seconds[0]:.2f}; reused: {', '.join(reused)}")


if __name__ == "__main__":
    main()
