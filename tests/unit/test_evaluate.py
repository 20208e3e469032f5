"""Evaluation tasks by name, one model's score table, the side-by-side comparison and its report."""
import json

import pytest

from components.common.scores import aggregate
from components.evaluate.core import EvalConfig, ModelScores, compare, evaluate_model, load_items
from components.evaluate.report import first_per_group, write_report
from components.evaluate.tasks import get_task, registry


def test_tasks_are_picked_by_name():
    assert set(registry()) == {"captions", "multiple_choice", "text"}
    assert [t.name for t in EvalConfig(tasks="text, captions").task_list] == ["text", "captions"]
    with pytest.raises(ValueError, match="unknown evaluation task 'xm3600'.*captions"):
        _ = EvalConfig(tasks="captions,xm3600").task_list


def test_items_are_filtered_by_language_and_capped_with_images_resolved(demo):
    items = load_items(get_task("multiple_choice"), demo.eval_dir, ["th", "zh"], limit=3)
    assert [r["lang"] for r in items] == ["th"] * 3 + ["zh"] * 3
    assert all(p.startswith(demo.eval_dir) for r in items for p in r["images"])
    assert load_items(get_task("captions"), "/nonexistent", []) == []


def test_aggregate_means_over_languages_and_groups():
    table = {"a/en/cider": 1.0, "a/th/cider": 3.0, "b/en/cider": 5.0, "m/en/accuracy": 0.5}
    out = aggregate(table, {"a": "captioning", "b": "captioning", "m": "multiple_choice"})
    assert out == {"a/all/cider": 2.0, "b/all/cider": 5.0, "m/all/accuracy": 0.5,
                   "overall/captioning": 3.0, "overall/multiple_choice": 0.5}


def test_a_model_is_scored_on_every_configured_task(demo):
    cfg = EvalConfig(languages="en,th", max_items_per_task=4, max_new_tokens=8)
    result = evaluate_model(demo.base_model, demo.eval_dir, cfg)
    per_lang = {k for k in result.table if k.count("/") == 2 and "/all/" not in k}
    assert per_lang == {f"{task}/{lang}/{metric}" for lang in ("en", "th") for task, metric in
                        (("demo_captions", "cider"), ("demo_mc", "accuracy"), ("demo_translation", "chrf"))}
    assert result.table["overall/text"] == pytest.approx(
        (result.table["demo_translation/en/chrf"] + result.table["demo_translation/th/chrf"]) / 2)
    assert 0 <= result.table["overall/multiple_choice"] <= 1
    assert len(result.samples) == 3 * 2 * 4  # one per item
    again = ModelScores.from_json(result.to_json())
    assert again == result
    logged = result.logged("base", demo.eval_dir, cfg)
    assert logged.pipeline_metrics["eval/base/overall/text"] == result.table["overall/text"]
    assert evaluate_model("", demo.eval_dir, cfg) == ModelScores(model="")  # no champion yet


def test_an_interrupted_evaluation_resumes_from_its_response_cache(demo, tmp_path, monkeypatch):
    """Replies are kept batch by batch; a restart generates only what is missing and scores the same."""
    from components.evaluate import inference

    cfg = EvalConfig(tasks="captions,multiple_choice", languages="en,th", max_items_per_task=4, max_new_tokens=8,
                     batch_size=2)
    uninterrupted = evaluate_model(demo.base_model, demo.eval_dir, cfg)
    cached = cfg.model_copy(update={"response_cache": str(tmp_path / "responses")})
    real_generate, calls = inference.generate, []

    def dies_after_two_batches(model, processor, conversations, max_new_tokens, batch_size, on_batch=None,
                               progress=""):
        def counted(positions, replies):
            calls.append(len(positions))
            on_batch(positions, replies)
            if len(calls) == 2:
                raise KeyboardInterrupt("preempted")
        return real_generate(model, processor, conversations, max_new_tokens, batch_size, counted, progress)

    monkeypatch.setattr(inference, "generate", dies_after_two_batches)
    with pytest.raises(KeyboardInterrupt):
        evaluate_model(demo.base_model, demo.eval_dir, cached)
    monkeypatch.setattr(inference, "generate", real_generate)
    generated = []

    def counting(model, processor, conversations, *args, **kwargs):
        generated.append(len(conversations))
        return real_generate(model, processor, conversations, *args, **kwargs)

    monkeypatch.setattr(inference, "generate", counting)
    resumed = evaluate_model(demo.base_model, demo.eval_dir, cached)
    assert generated[0] == 8 - 4            # captions: 4 of 8 replies came from the cache
    assert resumed.table == pytest.approx(uninterrupted.table)
    generated.clear()
    assert evaluate_model(demo.base_model, demo.eval_dir, cached).table == pytest.approx(uninterrupted.table)
    assert generated == [0, 0]              # everything cached: nothing generated


def test_the_comparison_leaves_out_a_missing_champion_and_reports_any_ids(tmp_path):
    base = ModelScores("m0", {"t/en/cider": 1.0, "overall/captioning": 1.0},
                       [{"task": "t", "lang": "en", "id": "q-17", "output": "a", "reference": "b"},
                        {"task": "t", "lang": "en", "id": "q-18", "output": "c", "reference": "d"}])
    cand = ModelScores("m1", {"t/en/cider": 2.0, "overall/captioning": 2.0}, base.samples)
    scores = compare({"base": base, "candidate": cand, "champion": ModelScores("")})
    assert scores.roles == ["base", "candidate"]
    assert [s["id"] for s in first_per_group(base.samples)] == ["q-17"]
    paths = write_report(scores, tmp_path / "report", title="T")
    page = paths["html"].read_text()
    assert "q-17" not in page and ">a<" in page and ">c<" not in page  # one example per task and language
    assert json.loads(paths["scores"].read_text())["scores"]["candidate"]["t/en/cider"] == 2.0
    assert "| overall |  | captioning | 1.000 | 2.000 |" in paths["markdown"].read_text()
