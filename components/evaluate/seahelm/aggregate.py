"""SEA-HELM's aggregation (src/aggregate_metrics.py @6844e6c), all on 0-100:

task scores (each task's own metric) -> tasks of one `aggregation_group` (the two WorldCuisines tasks, the two
translation directions) averaged into one -> competency = mean of its tasks -> language = mean of its
competencies -> total = mean of the languages in the run.
"""
from __future__ import annotations

from statistics import mean


def aggregate(scores: dict[tuple[str, str], float], tasks: dict[str, dict]) -> dict:
    """`scores[(task, lang)]` -> {"languages": {lang: {"score", "competencies": {name: score}}}, "total"}.
    `tasks[name]` gives each task's `competency` and optional `aggregation_group` (prompts.yaml)."""
    unknown = sorted({t for t, _ in scores} - set(tasks))
    if unknown:
        raise ValueError(f"no competency is known for task(s) {unknown}")
    languages: dict[str, dict] = {}
    for lang in sorted({lang for _, lang in scores}):
        units: dict[tuple[str, str], list[float]] = {}   # (competency, task or group) -> scores
        for (task, task_lang), value in scores.items():
            if task_lang == lang:
                spec = tasks[task]
                units.setdefault((spec["competency"], spec.get("aggregation_group") or task), []).append(value)
        competencies: dict[str, list[float]] = {}
        for (competency, _), values in units.items():
            competencies.setdefault(competency, []).append(mean(values))
        by_competency = {c: mean(v) for c, v in sorted(competencies.items())}
        languages[lang] = {"score": mean(by_competency.values()), "competencies": by_competency}
    return {"languages": languages, "total": mean(v["score"] for v in languages.values()) if languages else None}
