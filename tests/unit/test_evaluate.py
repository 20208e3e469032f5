"""One model through the demo's SEA-HELM suite, resumed after an interruption; the side-by-side comparison with
bootstrap intervals, and the release-style report."""
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from components.common.scores import Scores
from components.evaluate.core import ModelScores, compare, evaluate_model, flat_table
from components.evaluate.report import write_report
from components.evaluate.seahelm.suite import SuiteResult, load_suite


def small_suite(demo, tmp_path, **extra) -> str:
    """The demo suite, cut to three tasks and a few items so that a unit test runs in seconds."""
    import yaml

    doc = yaml.safe_load(Path(demo.suite).read_text())
    keep = ("xm3600", "cvqa", "translation-en-xx")
    doc["tasks"] = {t: doc["tasks"][t] for t in keep}
    doc["tasks"]["xm3600"]["data"] = {k: v for k, v in doc["tasks"]["xm3600"]["data"].items() if k in ("en", "th")}
    doc["tasks"]["cvqa"]["languages"] = ["id"]
    doc["tasks"]["translation-en-xx"]["data"] = {"th": doc["tasks"]["translation-en-xx"]["data"]["th"]}
    doc.update({"max_items": 4, "max_new_tokens": 8, "batch_size": 2, **extra})
    path = tmp_path / "suite.yaml"
    # relative paths are read from the suite's folder: point them at the demo's
    path.write_text(yaml.safe_dump({**doc, "judge": f"{demo.eval_dir}/{doc['judge']}",
                                    "tasks": {t: {**spec, "data": {k: f"{demo.eval_dir}/{v}" for k, v in
                                                                    spec["data"].items()}
                                                  if isinstance(spec["data"], dict) else
                                                  f"{demo.eval_dir}/{spec['data']}"}
                                              for t, spec in doc["tasks"].items()}}))
    return str(path)


def test_the_flat_table_holds_task_metrics_seahelm_aggregates_and_the_gate_headline():
    result = SuiteResult("m", tasks={
        "xm3600/en": {"n": 2, "metric": "normalized_refclipscore", "normalized_refclipscore": 40.0, "cider": 1.0},
        "cvqa/id": {"n": 2, "metric": "normalized_accuracy", "normalized_accuracy": 60.0, "null_count": 1},
        "translation-en-xx/id": {"n": 2, "metric": "chrf_score", "chrf_score": 80.0},
        "translation-xx-en/id": {"n": 2, "metric": "chrf_score", "chrf_score": 70.0}})
    from components.evaluate.seahelm.aggregate import aggregate
    from components.evaluate.seahelm.tasks import prompts

    result.aggregate = aggregate({tuple(k.split("/")): v[v["metric"]] for k, v in result.tasks.items()}, prompts())
    table = flat_table(result)
    assert table["cvqa/id/null_count"] == 1.0 and table["xm3600/en/cider"] == 1.0
    assert table["seahelm/id/vision"] == 60.0 and table["seahelm/id/nlg"] == 75.0   # translations: one group
    assert table["seahelm/id/text"] == 75.0 and table["seahelm/id/score"] == pytest.approx(67.5)
    assert table["seahelm/en/score"] == 40.0 and table["seahelm/total"] == pytest.approx((67.5 + 40.0) / 2)
    assert table["overall/vision"] == pytest.approx(50.0) and table["overall/text"] == 75.0


def test_a_model_runs_the_suite_and_an_interrupted_run_resumes_from_its_replies(demo, tmp_path, monkeypatch):
    """Replies are kept batch by batch; a restart generates only what is missing and scores the same."""
    from components.evaluate import inference

    suite = small_suite(demo, tmp_path)
    result = evaluate_model(demo.base_model, suite, "")
    assert {k for k in result.table if k.count("/") == 2 and k.split("/")[2] in
            ("normalized_refclipscore", "normalized_accuracy", "chrf_score")} == {
        "xm3600/en/normalized_refclipscore", "xm3600/th/normalized_refclipscore", "cvqa/id/normalized_accuracy",
        "translation-en-xx/th/chrf_score"}
    assert set(result.items) == {"xm3600/en", "xm3600/th", "cvqa/id", "translation-en-xx/th"}
    assert all(len(v) == 4 for v in result.items.values()) and result.capped_tokens == 8
    assert ModelScores.from_json(result.to_json()) == result
    assert result.logged("base", suite).pipeline_metrics["eval/base/seahelm/total"] == result.table["seahelm/total"]
    assert evaluate_model("", suite, "") == ModelScores(model="")  # no champion yet

    real_generate, calls = inference.generate, []

    def dies_after_three_batches(model, processor, conversations, max_new_tokens, batch_size, on_batch=None,
                                 progress=""):
        def counted(positions, replies):
            calls.append(len(positions))
            on_batch(positions, replies)
            if len(calls) == 3:
                raise KeyboardInterrupt("preempted")
        return real_generate(model, processor, conversations, max_new_tokens, batch_size, counted, progress)

    store = str(tmp_path / "replies")
    monkeypatch.setattr(inference, "generate", dies_after_three_batches)
    with pytest.raises(KeyboardInterrupt):
        evaluate_model(demo.base_model, suite, store, model_id="fp-1")
    generated = []

    def counting(model, processor, conversations, *args, **kwargs):
        generated.append(len(conversations))
        return real_generate(model, processor, conversations, *args, **kwargs)

    monkeypatch.setattr(inference, "generate", counting)
    resumed = evaluate_model(demo.base_model, suite, store, model_id="fp-1")
    # tasks run in the suite's order: cvqa/id's 4 replies were all kept; translation-en-xx/th's first batch of 2
    # was kept, then the run died; xm3600 had not started
    assert generated == [2, 4, 4]
    assert resumed.table == pytest.approx(result.table)
    generated.clear()
    assert evaluate_model(demo.base_model, suite, store, model_id="fp-1").table == pytest.approx(result.table)
    assert generated == []                  # everything kept: nothing generated
    evaluate_model(demo.base_model, suite, store, model_id="fp-2")   # another model's replies are its own
    assert sum(generated) == 16


def test_a_changed_prompt_limit_never_reuses_old_replies(demo, tmp_path):
    store = str(tmp_path / "replies")
    evaluate_model(demo.base_model, small_suite(demo, tmp_path), store, model_id="m")
    suite = load_suite(small_suite(demo, tmp_path))
    assert suite.prompt_key("cvqa", "id") != suite.model_copy(update={"max_new_tokens": 9}).prompt_key("cvqa", "id")


class Tables(HTMLParser):
    """The rows of each <table id=...> of an HTML page."""

    def __init__(self):
        super().__init__()
        self.tables, self.current, self.row = {}, None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.current = dict(attrs).get("id")
            self.tables[self.current] = []
        elif tag == "tr" and self.current:
            self.row = []
            self.tables[self.current].append(self.row)
        elif tag in ("td", "th") and self.row is not None:
            self.row.append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self.current = None

    def handle_data(self, data):
        if self.row is not None and self.current:
            self.row[-1] += data


def test_comparison_intervals_and_the_html_report(tmp_path):
    items = [{"id": f"q{i}", "gold": "AB"[i % 2], "answer": "AB"[i % 2], "score": 100.0} for i in range(20)]
    worse = [dict(r, answer="A", score=100.0 * (r["gold"] == "A")) for r in items]
    cand = ModelScores("m1", {"cvqa/id/normalized_accuracy": 100.0, "seahelm/id/vision": 100.0,
                              "seahelm/id/score": 100.0, "seahelm/total": 100.0, "overall/vision": 100.0},
                       {"cvqa/id": [dict(items[0], response="Jawaban: A"), *items[1:]]})
    base = ModelScores("m0", {"cvqa/id/normalized_accuracy": 0.0, "seahelm/id/vision": 0.0,
                              "seahelm/id/score": 0.0, "seahelm/total": 0.0, "overall/vision": 0.0},
                       {"cvqa/id": worse})
    scores = compare({"base": base, "candidate": cand, "champion": ModelScores(""), "gemma-3-27b-it": base})
    assert scores.roles == ["candidate", "base", "gemma-3-27b-it"]
    d = scores.differences["base/cvqa/id"]
    assert d["mean"] == pytest.approx(100.0) and d["n"] == 20 and d["low"] > 50
    assert any("not run:" in n for n in scores.notes)
    paths = write_report(scores, tmp_path / "report", title="T")
    assert Scores.from_json(paths["scores"].read_text()).differences == scores.differences
    parser = Tables()
    parser.feed(paths["html"].read_text())
    aggregate = parser.tables["aggregate"]
    assert aggregate[0] == ["language", "competency", "candidate", "base", "gemma-3-27b-it"]
    assert ["total", "", "100.00", "0.00", "0.00"] in aggregate
    assert ["id", "language score", "100.00", "0.00", "0.00"] in aggregate
    assert ["id", "vision", "100.00", "0.00", "0.00"] in aggregate
    tasks = parser.tables["tasks"]
    assert tasks[0][-2:] == ["Δ vs base", "Δ vs gemma-3-27b-it"]
    assert tasks[1][:5] == ["cvqa", "id", "normalized_accuracy", "100.00", "0.00"]
    assert tasks[1][-2].startswith("+100.00 [")
    assert parser.tables["examples"][1][:4] == ["candidate", "cvqa/id", "q0", "Jawaban: A"]
    assert "| total |  | 100.00 | 0.00 | 0.00 |" in paths["markdown"].read_text()
    assert json.loads(paths["scores"].read_text())["scores"]["candidate"]["seahelm/total"] == 100.0


def test_a_reply_is_reused_only_for_the_same_item_content(tmp_path):
    """The store keeps each reply with a digest of what the item showed the model: a corrected item under the
    same id (or WorldCuisines' reshuffle of its options) is asked again."""
    from components.evaluate.seahelm.suite import ResponseStore, item_digest
    from components.evaluate.seahelm.tasks import Item

    old, fixed = Item("q1", "A", {"question": "Apa?", "option_a": "x"}), Item("q1", "A", {"question": "Apa?",
                                                                                           "option_a": "y"})
    assert item_digest(old) != item_digest(fixed) and item_digest(old) == item_digest(Item("q1", "B", old.fields))
    store = ResponseStore(str(tmp_path))
    store.add("cvqa", "id", "k", {"q1": ("Jawaban: A", item_digest(old))})
    assert store.load("cvqa", "id", "k") == {"q1": ("Jawaban: A", item_digest(old))}
    assert store.load("cvqa", "id", "other-prompt") == {}
    store.claim("model-a")
    store.claim("model-a")
    from components.evaluate.seahelm.tasks import EvalDataError

    with pytest.raises(EvalDataError, match="holds the replies of model-a, not model-b"):
        store.claim("model-b")


def test_a_set_with_one_gold_label_is_skipped_and_said_not_fatal(demo, tmp_path):
    """A smoke run of 1 item per language leaves CVQA with one distinct gold label: SEA-HELM's normalisation is
    undefined there, so that set is recorded as not scored and the rest of the suite goes on."""
    result = evaluate_model(demo.base_model, small_suite(demo, tmp_path, max_items=1), "")
    assert "cvqa/id" not in result.items and "distinct" in result.skipped["cvqa/id"]
    assert "xm3600/en" in result.items
    scores = compare({"base": result, "candidate": result})
    assert any(n.startswith("not scored: cvqa/id") for n in scores.notes)


def test_duplicate_item_ids_are_refused(tmp_path):
    from components.evaluate.seahelm.tasks import EvalDataError, load_items

    path = tmp_path / "sentiment.jsonl"
    path.write_text("".join(json.dumps({"id": "s1", "label": lab, "prompts": [{"text": "t"}]}) + "\n"
                            for lab in ("Positif", "Negatif")))
    with pytest.raises(EvalDataError, match="appear more than once, e.g. \\['s1'\\]"):
        load_items("sentiment", "id", str(path))
