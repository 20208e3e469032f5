"""The promotion gate: configured thresholds on the 95% paired bootstrap intervals of the candidate's captioning,
VQA and text scores against the base and the champion, overall and per language (SEA-HELM's 0-100 scale).

The scores are built item by item, as evaluate writes them, in the shape of the release: XM3600 in its six
SEA-HELM languages, CVQA in seven, and two text tasks (Belebele multiple choice and QA F1) in eight."""
import numpy as np
import pytest
from pydantic import ValidationError

from components.evaluate.core import ModelScores, flat_table, gate_groups
from components.evaluate.seahelm import tasks as sh
from components.evaluate.seahelm.bootstrap import _statistics, group_scores
from components.register.core import GateConfig, Thresholds, decide, version_tags

CAPTION_LANGS = ("en", "id", "th", "tl", "vi", "zh")
VQA_LANGS = ("id", "ms", "ta", "tl", "zh", "jv", "su")
TEXT_LANGS = ("id", "ms", "ta", "th", "tl", "vi", "zh", "jv")
HEADLINE = {"xm3600": "normalized_refclipscore", "cvqa": "normalized_accuracy",
            "belebele-qa-mc": "normalized_accuracy", "qa": "normalized_f1"}
N = 400


def _scores(items: dict[str, list[dict]]) -> ModelScores:
    table = {}
    for key, records in items.items():
        task = key.split("/")[0]
        kind = "mcq" if HEADLINE[task] == "normalized_accuracy" else "mean"
        table[f"{key}/{HEADLINE[task]}"] = float(_statistics(records, np.arange(len(records))[None, :], kind)[0])
    return ModelScores("model", table, items)


def _mcq(rng, accuracy: float, n: int = N) -> list[dict]:
    gold = rng.choice(list("ABCD"), n)
    right = rng.random(n) < accuracy
    wrong = np.array([{"A": "B", "B": "C", "C": "D", "D": "A"}[g] for g in gold])
    answers = np.where(right, gold, wrong)
    return [{"id": f"q{i}", "gold": g, "answer": a, "score": 100.0 * (g == a)} for i, (g, a) in enumerate(
        zip(gold, answers, strict=True))]


def _flip(rng, records: list[dict], right_to_wrong: float, wrong_to_right: float = 0.0) -> list[dict]:
    """The same items answered by another model: a fraction of the right answers turned wrong and back."""
    out = []
    for r in records:
        right = r["gold"] == r["answer"]
        if (right and rng.random() < right_to_wrong) or (not right and rng.random() < wrong_to_right):
            answer = r["gold"] if not right else {"A": "B", "B": "C", "C": "D", "D": "A"}[r["gold"]]
            r = {**r, "answer": answer, "score": 100.0 * (answer == r["gold"])}
        out.append(r)
    return out


def _graded(rng, mean: float, n: int = N) -> list[dict]:
    return [{"id": f"g{i}", "score": float(s)} for i, s in enumerate(np.clip(rng.normal(mean, 20, n), 0, 100))]


def _shifted(rng, records: list[dict], shift: float, noise: float) -> list[dict]:
    return [{**r, "score": float(np.clip(r["score"] + shift + rng.normal(0, noise), 0, 100))} for r in records]


def release(caption_gain: dict[str, float], text_shift: dict[str, float] | None = None, seed: int = 0
            ) -> dict[str, ModelScores]:
    """Base and candidate item by item: captioning moved per language by `caption_gain`, multiple-choice VQA
    down a little (1% of right answers turned wrong), text nearly unchanged, or moved per language by
    `text_shift` (points on QA, and that share of right Belebele answers turned wrong)."""
    rng = np.random.default_rng(seed)
    base, cand = {}, {}
    for lang in CAPTION_LANGS:
        base[f"xm3600/{lang}"] = _graded(rng, 50)
        cand[f"xm3600/{lang}"] = _shifted(rng, base[f"xm3600/{lang}"], caption_gain.get(lang, 0.0), 3)
    for lang in VQA_LANGS:
        base[f"cvqa/{lang}"] = _mcq(rng, 0.6)
        cand[f"cvqa/{lang}"] = _flip(rng, base[f"cvqa/{lang}"], 0.01)
    for lang in TEXT_LANGS:
        shift = (text_shift or {}).get(lang, 0.0)
        base[f"belebele-qa-mc/{lang}"] = _mcq(rng, 0.8)
        cand[f"belebele-qa-mc/{lang}"] = (_flip(rng, base[f"belebele-qa-mc/{lang}"], -shift / 100) if shift < 0
                                          else _flip(rng, base[f"belebele-qa-mc/{lang}"], 0.005, 0.005))
        base[f"qa/{lang}"] = _graded(rng, 60)
        cand[f"qa/{lang}"] = _shifted(rng, base[f"qa/{lang}"], shift, 1)
    return {"candidate": _scores(cand), "base": _scores(base)}


def groups(by_role: dict[str, ModelScores]) -> dict[str, dict]:
    return gate_groups(by_role, HEADLINE)


def test_the_release_pattern_passes_the_release_thresholds():
    """Captioning up in zh, th and vi, text nearly unchanged, MCQ VQA down a little: what Gemma-SEA-LION-v4-27B-VL
    published against its base; the release's thresholds (GateConfig's defaults) promote it."""
    by_role = release({"zh": 6.0, "th": 5.0, "vi": 4.0})
    g = groups(by_role)
    assert g["base/captioning/overall"]["low"] > 0 and g["base/captioning/zh"]["mean"] == pytest.approx(6.0, abs=0.6)
    assert -1.0 < g["base/text/overall"]["low"] < 0 < g["base/text/overall"]["high"]
    assert -3.0 < g["base/vqa/overall"]["low"] < g["base/vqa/overall"]["mean"] < 0
    d = decide(g, GateConfig(), compare_champion=False)
    assert d.promote, d.reasons
    assert d.reasons[0] == "no champion yet: compared with the base only"
    assert any(r.startswith("vs base, captioning (overall): +2.") and "lower bound >= +0.00" in r for r in d.reasons)


def test_a_collapse_of_one_languages_text_does_not_pass_even_when_the_aggregate_would():
    by_role = release({"zh": 6.0, "th": 5.0, "vi": 4.0}, text_shift={"th": -15.0})
    g = groups(by_role)
    assert g["base/text/th"]["high"] < -5.0
    d = decide(g, GateConfig(), compare_champion=False)
    assert not d.promote
    floor = [r for r in d.reasons if "language_floor" in r]
    assert len(floor) == 1 and floor[0].startswith("vs base, text (th): -1")
    # a looser aggregate limit lets the overall text through; the per-language floor still stops it
    loose = GateConfig(base=Thresholds(text_regression=5.0))
    d = decide(g, loose, compare_champion=False)
    assert not d.promote and any("text (overall)" in r and ">=" in r for r in d.reasons)
    assert any("text (th)" in r for r in d.reasons)


def test_the_champion_is_consulted_and_only_a_better_model_takes_its_place():
    previous = release({"zh": 6.0, "th": 5.0, "vi": 4.0}, seed=1)
    # the champion is the last release; this candidate captions worse than it (though better than the base)
    worse = release({"zh": 1.0, "th": 1.0, "vi": 1.0}, seed=1)
    by_role = {"candidate": worse["candidate"], "base": previous["base"], "champion": previous["candidate"]}
    g = groups(by_role)
    assert g["champion/captioning/overall"]["high"] < 0 < g["base/captioning/overall"]["low"]
    d = decide(g, GateConfig())
    assert not d.promote
    assert any(r.startswith("vs champion, captioning (overall)") and "lower bound <" in r for r in d.reasons)
    # the same weights as the champion (a rerun) differ by exactly nothing: they pass against it
    same = {"candidate": previous["candidate"], "base": previous["base"], "champion": previous["candidate"]}
    g = groups(same)
    qa_langs = [lang for lang in TEXT_LANGS if lang in sh.prompts()["qa"]["languages"]]  # SEA-HELM's QA: 5 of them
    assert g["champion/text/overall"] == {"mean": 0.0, "low": 0.0, "high": 0.0,
                                          "n": N * (len(TEXT_LANGS) + len(qa_langs))}
    assert decide(g, GateConfig()).promote


def test_group_scores_aggregate_as_seahelm_does():
    """The gate's text score of a language is SEA-HELM's: the flat table's seahelm/<lang>/text."""
    from components.evaluate.seahelm.aggregate import aggregate
    from components.evaluate.seahelm.suite import SuiteResult

    scores = release({"zh": 6.0})["candidate"]
    headline = {tuple(k.split("/")[:2]): v for k, v in scores.table.items()}
    result = SuiteResult(model="m", tasks={"/".join(k): {"n": N, "metric": HEADLINE[k[0]],
                                                           HEADLINE[k[0]]: v} for k, v in headline.items()})
    result.aggregate = aggregate(headline, sh.prompts())
    table = flat_table(result)
    grouped = group_scores(headline, sh.prompts())
    for lang in TEXT_LANGS:
        assert grouped[f"text/{lang}"] == pytest.approx(table[f"seahelm/{lang}/text"])
    assert grouped["captioning/zh"] == pytest.approx(table["xm3600/zh/normalized_refclipscore"])
    assert grouped["vqa/overall"] == pytest.approx(np.mean([grouped[f"vqa/{lang}"] for lang in VQA_LANGS]))


def test_nothing_to_compare_with_never_promotes_and_settings_are_checked():
    d = decide({}, GateConfig(), compare_champion=False)
    assert not d.promote and "vs base: no scores to compare" in d.reasons
    # a group the candidate was scored on but that pairs with nothing (replies lost, ids changed) is not waved through
    g = {k: v for k, v in groups(release({"zh": 6.0})).items() if not k.startswith("base/vqa/")}
    d = decide(g, GateConfig(), compare_champion=False, expected={"captioning", "vqa", "text"})
    assert not d.promote and "vs base, vqa: scored, but no item pairs with the other model's: cannot be judged" \
        in d.reasons
    assert decide(g, GateConfig(), compare_champion=False, expected={"captioning", "text"}).promote
    with pytest.raises(ValidationError, match="captioning_gian"):
        GateConfig(**{"base": {"captioning_gian": 1.0}})
    with pytest.raises(ValidationError):
        GateConfig(**{"base": {"text_regression": -1.0}})


def test_version_tags_carry_lineage_scores_and_verdict():
    tags = version_tags({"candidate": {"overall/text": 71.0, "seahelm/total": 55.0, "en/x": 1.0},
                         "base": {"overall/vision": 40.0}}, True, "why", {"git_commit": "abc"})
    assert tags == {"git_commit": "abc", "candidate.text": "71.0000", "candidate.total": "55.0000",
                    "base.vision": "40.0000", "gate.promote": "true", "gate.reasons": "why"}
