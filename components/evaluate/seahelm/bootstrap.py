"""Paired bootstrap confidence intervals of the difference between two models' scores on the same items.

Items are resampled with replacement (the same draw for both models, since they answered the same items), the
difference of the mean per-item scores is taken for each resample, and the percentile interval is returned.
The report shows the bounds beside each difference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Difference:
    mean: float      # mean(candidate) - mean(reference) over the shared items
    low: float       # bounds of the (1 - alpha) percentile interval
    high: float
    n: int


def paired_difference(candidate: dict[str, float], reference: dict[str, float], resamples: int = 2000,
                      alpha: float = 0.05, seed: int = 0) -> Difference:
    """Difference of `candidate` over `reference` on the items both scored ({item id: per-item score})."""
    import numpy as np

    shared = _shared(candidate, reference)
    diff = np.array([candidate[i] - reference[i] for i in shared], dtype=float)
    low, high = _bounds(diff[_resamples(len(shared), resamples, seed)].mean(axis=1), alpha)
    return Difference(float(diff.mean()), low, high, len(shared))


def _shared(a: dict, b: dict) -> list[str]:
    shared = sorted(set(a) & set(b))
    if len(shared) < 2:
        raise ValueError(f"a paired bootstrap needs at least two shared items, got {len(shared)}")
    return shared


def _resamples(n: int, resamples: int, seed: int) -> np.ndarray:
    """Item positions of each resample (one row each), drawn with replacement."""
    import numpy as np

    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _bounds(statistics: np.ndarray, alpha: float) -> tuple[float, float]:
    import numpy as np

    low, high = np.quantile(statistics, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _normalized_balanced_accuracy(gold: np.ndarray, pred: np.ndarray, rows: np.ndarray, classes: list) -> np.ndarray:
    """SEA-HELM's normalised balanced accuracy of each resample (one row of item positions each)."""
    import numpy as np

    g, p = gold[rows], pred[rows]
    recalls = []
    for c in classes:
        total = (g == c).sum(axis=1)
        hit = ((g == c) & (p == c)).sum(axis=1)
        recalls.append(np.where(total > 0, hit / np.maximum(total, 1), np.nan))
    ba = np.nanmean(np.vstack(recalls), axis=0)
    chance = 1 / len(classes)
    return 100 * np.maximum((ba - chance) / (1 - chance), 0.0)


def paired_metric_difference(candidate: list[dict], reference: list[dict], kind: str, resamples: int = 1000,
                             alpha: float = 0.05, seed: int = 0) -> Difference:
    """Difference of a task's metric between two models on the items both answered, with a paired bootstrap
    interval: the same resample of items for both. Items are per-item records ({"id", "gold", "answer",
    "score"}); for multiple choice (`kind` "mcq") SEA-HELM's normalised balanced accuracy is recomputed on each
    resample, for the other tasks the mean per-item score."""
    import numpy as np

    a, b = {r["id"]: r for r in candidate}, {r["id"]: r for r in reference}
    if kind != "mcq":
        return paired_difference({i: r["score"] for i, r in a.items()}, {i: r["score"] for i, r in b.items()},
                                 resamples, alpha, seed)
    shared = _shared(a, b)
    if len({str(a[i]["gold"]) for i in shared}) < 2:
        raise ValueError("balanced accuracy needs at least two distinct gold labels")
    mine, theirs = [a[i] for i in shared], [{**b[i], "gold": a[i]["gold"]} for i in shared]  # one gold for both

    def stat(r):
        return _statistics(mine, r, "mcq") - _statistics(theirs, r, "mcq")
    low, high = _bounds(stat(_resamples(len(shared), resamples, seed)), alpha)
    return Difference(float(stat(np.arange(len(shared))[None, :])[0]), low, high, len(shared))


GROUPS = ("captioning", "vqa", "text")   # what the promotion gate weighs, per language and overall


def group_of(task: str, tasks: dict[str, dict]) -> str:
    """captioning (XM3600), vqa (SEA-HELM's other vision tasks: multiple-choice VQA) or text (every other
    competency)."""
    if task == "xm3600":
        return "captioning"
    return "vqa" if tasks[task]["competency"] == "vision" else "text"


def group_scores(headline: dict[tuple[str, str], float | np.ndarray], tasks: dict[str, dict]) -> dict:
    """{"<group>/<lang>" and "<group>/overall": score} from task scores (floats, or arrays of resamples), by
    SEA-HELM's aggregation (aggregate.py): tasks of one aggregation_group averaged, then tasks of a competency,
    then, for text, the competencies; a group's overall score is the mean over the languages that have it."""
    import numpy as np

    units: dict[tuple[str, str, str, str], list] = {}   # (group, lang, competency, task or group) -> scores
    for (task, lang), value in headline.items():
        spec = tasks[task]
        units.setdefault((group_of(task, tasks), lang, spec["competency"], spec.get("aggregation_group") or task),
                         []).append(value)
    competencies: dict[tuple[str, str, str], list] = {}
    for (group, lang, competency, _), values in units.items():
        competencies.setdefault((group, lang, competency), []).append(np.mean(values, axis=0))
    by_lang: dict[tuple[str, str], list] = {}
    for (group, lang, _), values in competencies.items():
        by_lang.setdefault((group, lang), []).append(np.mean(values, axis=0))
    out = {f"{group}/{lang}": np.mean(values, axis=0) for (group, lang), values in sorted(by_lang.items())}
    for group in GROUPS:
        langs = [v for k, v in out.items() if k.startswith(f"{group}/")]
        if langs:
            out[f"{group}/overall"] = np.mean(langs, axis=0)
    return out


def _statistics(records: list[dict], positions: np.ndarray, kind: str) -> np.ndarray:
    """The task's metric on each row of item positions: SEA-HELM's normalised balanced accuracy for multiple
    choice, else the mean per-item score."""
    import numpy as np

    if kind == "mcq":
        gold = np.array([str(r["gold"]) for r in records])
        pred = np.array([str(r["answer"]) for r in records])
        return _normalized_balanced_accuracy(gold, pred, positions, sorted(set(gold.tolist())))
    return np.array([float(r["score"]) for r in records])[positions].mean(axis=1)


def group_differences(candidate: dict[str, list[dict]], other: dict[str, list[dict]],
                      headline: tuple[dict[str, float], dict[str, float]], kinds: dict[str, str],
                      tasks: dict[str, dict], resamples: int = 1000, alpha: float = 0.05, seed: int = 0
                      ) -> dict[str, Difference]:
    """Candidate minus `other` on every gate group (group_scores), with a stratified paired bootstrap interval:
    each task and language resampled on the items both answered (the same draw for both models), every resample
    aggregated as SEA-HELM aggregates. Inputs are {"<task>/<lang>": per-item records} and each model's reported
    headline score per "<task>/<lang>"; the interval is centred on the reported scores' difference (a metric
    computed over a corpus, such as chrF++, is resampled through its per-item scores). Tasks whose items do not
    pair are left out. Each task draws the same resample positions in every language: items are sorted by id,
    so where the languages share their items (XM3600's images, FLORES' sentences) a resample keeps or drops an
    item in all of them at once, and the correlation between languages carries into the overall interval."""
    import zlib

    import numpy as np

    draws: list[dict[tuple[str, str], np.ndarray]] = [{}, {}]
    points: list[dict[tuple[str, str], float]] = [{}, {}]
    sizes: dict[tuple[str, str], int] = {}
    for key in sorted(set(candidate) & set(other) & set(headline[0]) & set(headline[1])):
        a, b = {r["id"]: r for r in candidate[key]}, {r["id"]: r for r in other[key]}
        shared = sorted(set(a) & set(b))
        if len(shared) < 2:
            continue
        kind = kinds[key]
        if kind == "mcq" and len({str(a[i]["gold"]) for i in shared}) < 2:
            continue
        rows = _resamples(len(shared), resamples, seed + zlib.crc32(key.split("/")[0].encode()))
        everything = np.arange(len(shared))[None, :]
        task, lang = key.split("/")
        sizes[(task, lang)] = len(shared)
        for side, records in enumerate(([a[i] for i in shared], [b[i] for i in shared])):
            shift = headline[side][key] - float(_statistics(records, everything, kind)[0])
            draws[side][(task, lang)] = _statistics(records, rows, kind) + shift
            points[side][(task, lang)] = headline[side][key]
    if not draws[0]:
        return {}
    mine, theirs = group_scores(points[0], tasks), group_scores(points[1], tasks)
    boot_mine, boot_theirs = group_scores(draws[0], tasks), group_scores(draws[1], tasks)
    counts: dict[str, int] = {}
    for (task, lang), size in sizes.items():
        group = group_of(task, tasks)
        for name in (f"{group}/{lang}", f"{group}/overall"):
            counts[name] = counts.get(name, 0) + size
    out = {}
    for name in mine:
        low, high = _bounds(boot_mine[name] - boot_theirs[name], alpha)
        out[name] = Difference(float(mine[name] - theirs[name]), low, high, counts.get(name, 0))
    return out
