"""evaluate: run the SEA-HELM suite on one model; compare: put every model's scores side by side with paired
bootstrap intervals of the differences.

Pure cores. `evaluate_model` takes a model URI, the suite and where replies are kept, and returns the model's
SEA-HELM result (seahelm/suite.py) and its flat score table. Each model is its own pipeline task, so KFP caches
each on its inputs (content fingerprints): a base or reference model is scored once per suite, the champion
once per version. `compare` joins the tables by role.

The flat table, per model (all on SEA-HELM's 0-100 scale):
  <task>/<lang>/<metric>          every metric of every task and language
  seahelm/<lang>/<competency>     SEA-HELM's competency scores, and seahelm/<lang>/score (the language)
  seahelm/<lang>/vision, seahelm/<lang>/text   the vision competency, and the mean of the others (text)
  seahelm/total                   SEA-HELM's total (mean of the languages)
  overall/vision, overall/text    the means over languages of the two above: the gate's headline
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from statistics import mean

from components.common import storage
from components.common.scores import Scores
from components.common.tracking import Logged
from components.evaluate.seahelm import tasks as sh
from components.evaluate.seahelm.suite import ResponseStore, SuiteResult, load_suite, run_suite

log = logging.getLogger(__name__)
VISION = "vision"


def flat_table(result: SuiteResult) -> dict[str, float]:
    """The model's score table (module docstring) from its suite result."""
    table: dict[str, float] = {}
    for key, metrics in result.tasks.items():
        for name, value in metrics.items():
            if name not in ("n", "metric") and isinstance(value, (int, float)) and value is not None:
                table[f"{key}/{name}"] = float(value)
    agg = result.aggregate
    by_side: dict[str, list[float]] = {}
    for lang, entry in agg.get("languages", {}).items():
        table[f"seahelm/{lang}/score"] = entry["score"]
        text = []
        for competency, value in entry["competencies"].items():
            table[f"seahelm/{lang}/{competency}"] = value
            if competency != VISION:
                text.append(value)
        if text:
            table[f"seahelm/{lang}/text"] = mean(text)
            by_side.setdefault("text", []).append(mean(text))
        if VISION in entry["competencies"]:
            by_side.setdefault(VISION, []).append(entry["competencies"][VISION])
    if agg.get("total") is not None:
        table["seahelm/total"] = agg["total"]
    table.update({f"overall/{side}": mean(values) for side, values in by_side.items()})
    return table


@dataclass
class ModelScores:
    """One model's score table, its per-item records by "task/lang", and its suite result's departures."""
    model: str
    table: dict[str, float] = field(default_factory=dict)
    items: dict[str, list[dict]] = field(default_factory=dict)
    capped_tokens: int | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"model": self.model, "scores": self.table, "items": self.items,
                           "capped_tokens": self.capped_tokens, "skipped": self.skipped}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> ModelScores:
        doc = json.loads(text)
        return cls(doc["model"], doc["scores"], doc.get("items", {}), doc.get("capped_tokens"),
                   doc.get("skipped", {}))

    @classmethod
    def from_result(cls, result: SuiteResult) -> ModelScores:
        return cls(result.model, flat_table(result), result.items, result.capped_tokens, result.skipped)

    def logged(self, role: str, suite_uri: str, model_uri: str = "", **params) -> Logged:
        """The role, the model and the suite as params; the table as `eval/<role>/...` pipeline metrics."""
        return Logged(params={"role": role, "model": model_uri or self.model or "(none)", "eval_suite": suite_uri,
                              "capped_tokens": self.capped_tokens or 0, **params},
                      pipeline_metrics={f"eval/{role}/{k}": v for k, v in self.table.items()})


def store_for(root: str, model_id: str) -> ResponseStore:
    """The response store of one model under `root`: a folder named by a hash of the model's identity (its
    content fingerprint or artifact URI), so that a changed model never reads another's replies."""
    return ResponseStore(storage.join(root, hashlib.sha256(model_id.encode()).hexdigest()[:16]))


def evaluate_model(model_uri: str, suite_uri: str, response_root: str, model_id: str = "", gpus: int = 1,
                   max_new_tokens: int = 0, backend: str = "auto") -> ModelScores:
    """Run the suite at `suite_uri` on the model at `model_uri`; an empty URI (no champion yet) scores nothing.
    Replies are kept under `response_root` (a temporary folder when ''); `max_new_tokens` > 0 caps generation
    below SEA-HELM's limits (a smoke run, recorded as `capped_tokens`)."""
    if not model_uri:
        return ModelScores(model="")
    suite = load_suite(suite_uri)
    if max_new_tokens:
        suite = suite.model_copy(update={"max_new_tokens": max_new_tokens})
    if not response_root:
        import tempfile

        response_root = tempfile.mkdtemp(prefix="replies-")
    result = run_suite(model_uri, suite, store_for(response_root, model_id or model_uri), gpus=gpus,
                       backend=backend)
    return ModelScores.from_result(result)


def differences(by_role: dict[str, ModelScores], against: str = "candidate") -> dict[str, dict]:
    """Paired bootstrap 95% intervals of `against` minus every other role, per task and language, on each task's
    headline metric: {"<role>/<task>/<lang>": {"mean", "low", "high", "n"}}."""
    from components.evaluate.seahelm.bootstrap import paired_metric_difference

    out: dict[str, dict] = {}
    mine = by_role.get(against)
    if mine is None or not mine.model:
        return out
    for role, other in by_role.items():
        if role == against or not other.model:
            continue
        for key, items in mine.items.items():
            if key not in other.items:
                continue
            try:
                d = paired_metric_difference(items, other.items[key], sh.kind(key.split("/")[0]))
            except ValueError as err:
                log.info("no interval for %s vs %s on %s: %s", against, role, key, err)
                continue
            out[f"{role}/{key}"] = {"mean": d.mean, "low": d.low, "high": d.high, "n": d.n}
    return out


def notes(by_role: dict[str, ModelScores]) -> list[str]:
    """Where these figures depart from SEA-HELM's: what a reader must know before comparing with published ones."""
    ran = {key.split("/")[0] for s in by_role.values() for key in s.items}
    out = ["replies are greedy; SEA-HELM samples, seeded, with each model's own generation config (Gemma-3: top-k "
           "64, top-p 0.95), so even a matching task and metric differ from published figures by sampling noise"]
    substituted = {sh.prompts()[task]["metric"] for task in ran
                   if sh.headline(task, _metrics_of(by_role, task)) != sh.prompts()[task]["metric"]}
    out += [f"{metric} → {sh.SUBSTITUTES[metric][0]}: {sh.SUBSTITUTES[metric][1]}" for metric in sorted(substituted)]
    if "abssum" in ran:
        out.append("abssum: ROUGE-L over this project's tokenisation (th and zh word-segmented, any script kept); "
                   "SEA-HELM's fork tokenises with pyonmttok and Burmese syllables")
    missing = sorted(set(sh.ALL_SEAHELM_TEXT_TASKS) - ran)
    if missing:
        out.append("not run: " + ", ".join(missing) + " — aggregates are a SEA-HELM subset; compare with published "
                   "SEA-HELM numbers task by task, where task and metric match")
    english = sorted({key.split("/")[1] for s in by_role.values() for key in s.items
                      if key.startswith("xm3600/") and key.split("/")[1] not in sh.prompts()["xm3600"]["languages"]})
    if english:
        out.append(f"xm3600 in {', '.join(english)}: SEA-HELM does not run these languages; prompted with its "
                   "English prompt and tag")
    skipped = sorted({f"{key} ({why})" for s in by_role.values() for key, why in s.skipped.items()})
    if skipped:
        out.append("not scored: " + "; ".join(skipped))
    capped = sorted({s.capped_tokens for s in by_role.values() if s.capped_tokens})
    if capped:
        out.append(f"generation capped at {capped[0]} new tokens (below SEA-HELM's limits): a smoke run, not "
                   "comparable with published figures")
    return out


def compare(by_role: dict[str, ModelScores]) -> Scores:
    """Every role that has a model (an empty champion is left out), side by side, with the candidate's paired
    bootstrap intervals against each other role."""
    present = {role: s for role, s in by_role.items() if s.model}
    examples = {role: [dict(r, key=key) for key, rows in s.items.items() for r in rows if "response" in r]
                for role, s in present.items()}
    headline = {task: sh.headline(task, _metrics_of(present, task))
                for task in {key.split("/")[0] for s in present.values() for key in s.items}}
    return Scores({role: s.table for role, s in present.items()}, examples,
                  differences=differences(present), notes=notes(present), headline=headline,
                  groups=gate_groups(present, headline))


GATED = ("base", "champion")  # the roles the promotion gate compares the candidate with


def gate_groups(by_role: dict[str, ModelScores], headline: dict[str, str]) -> dict[str, dict]:
    """The candidate minus the base and minus the champion on what the gate weighs (captioning, VQA, text; per
    language and overall), over the tasks and languages SEA-HELM aggregates, with 95% stratified paired bootstrap
    intervals: {"<role>/<group>/<lang | overall>": {"mean", "low", "high", "n"}}."""
    from components.evaluate.seahelm.bootstrap import group_differences

    mine = by_role.get("candidate")
    if mine is None:
        return {}

    def scored(s: ModelScores) -> tuple[dict[str, list[dict]], dict[str, float]]:
        keys = [k for k in s.items if k.split("/")[1] in sh.prompts()[k.split("/")[0]]["languages"]
                and f"{k}/{headline[k.split('/')[0]]}" in s.table]
        return {k: s.items[k] for k in keys}, {k: s.table[f"{k}/{headline[k.split('/')[0]]}"] for k in keys}

    items, values = scored(mine)
    out = {}
    for role in GATED:
        if role in by_role:
            other_items, other_values = scored(by_role[role])
            found = group_differences(items, other_items, (values, other_values),
                                      {k: sh.kind(k.split("/")[0]) for k in items}, sh.prompts())
            out.update({f"{role}/{name}": {"mean": d.mean, "low": d.low, "high": d.high, "n": d.n}
                        for name, d in found.items()})
    return out


def _metrics_of(by_role: dict[str, ModelScores], task: str) -> set[str]:
    """The metric names any model's table holds for `task`."""
    return {key.split("/")[2] for s in by_role.values() for key in s.table
            if key.startswith(f"{task}/") and key.count("/") == 2}


def overall_metrics(scores: Scores) -> dict[str, float]:
    """The headline figures of every role, `<role>/overall/<side>` and `<role>/seahelm/total`."""
    return {f"{role}/{key}": value for role, table in scores.by_role.items() for key, value in table.items()
            if key.startswith("overall/") or key == "seahelm/total"}
