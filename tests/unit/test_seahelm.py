"""SEA-HELM's scoring, against hand-worked cases: answer extraction, balanced accuracy normalised by chance,
`seavl score` on CVQA-format data."""
import json
import subprocess
import sys

import pytest

from components.evaluate.seahelm.mcq import TooFewLabels, extract_label, mcq_metrics
from tests.support import seahelm

SEAVL = [sys.executable, "-m", "pipelines.cli"]


@pytest.mark.parametrize("response, expected", [
    ("Jawaban: A", "A"),
    ("jawaban: b", "B"),                      # the tag and the letter in lower case
    ("JAWABAN:**C**", "C"),                   # markdown bold between tag and letter
    ("Jawaban: AB", "B"),                     # (A|B|..)+ keeps its last repetition, as re does
    ("D.", "D"),                              # no tag: the whole response, stripped of punctuation
    ("Saya kira jawabannya adalah sate", "null"),
    ("Jawaban: E", "null"),                   # not a gold label
    ("", "null"),
    (None, "null"),
])
def test_answers_are_extracted_as_seahelm_does(response, expected):
    assert extract_label(response, "Jawaban:", ["A", "B", "C", "D"]) == expected


def test_normalized_accuracy_by_hand():
    # recall per gold class: A 1/2, B 1/1, C 1/1, D 1/2 -> balanced accuracy 0.75; K = 4, chance 0.25
    # normalized = 100 * (0.75 - 0.25) / (1 - 0.25) = 66.67
    golds = ["A", "A", "B", "C", "D", "D"]
    preds = ["A", "null", "B", "C", "D", "A"]
    m = mcq_metrics(golds, preds)
    assert m["accuracy"] == pytest.approx(75.0)
    assert m["normalized_accuracy"] == pytest.approx(200 / 3)
    assert m["null_count"] == 1 and m["n"] == 6
    # below chance is 0, not negative: A 0/1, B 2/3 -> BA 1/3 < 1/2
    assert mcq_metrics(["A", "B", "B", "B"], ["null", "B", "B", "A"])["normalized_accuracy"] == 0.0
    with pytest.raises(TooFewLabels):
        mcq_metrics(["A", "A"], ["A", "B"])


def _predictions(path, pairs):
    path.write_text("".join(json.dumps({"id": i, "response": r}) + "\n" for i, r in pairs))
    return path


def test_seavl_score_on_cvqa_data(tmp_path):
    data = seahelm.cvqa(tmp_path / "cvqa" / "test.parquet", [
        ("id-1", "id", 0), ("id-2", "id", 0), ("id-3", "id", 1), ("id-4", "id", 2), ("id-5", "id", 3),
        ("id-6", "id", 3), ("ms-1", "ms", 1), ("zh-1", "zh", 2)])
    preds = _predictions(tmp_path / "p.jsonl", [
        ("id-1", "Jawaban: A"), ("id-2", "Saya tidak tahu."), ("id-3", "jawaban: b"), ("id-4", "Jawaban: **C**"),
        ("id-5", "D"), ("id-6", "Jawaban: A")])
    r = subprocess.run([*SEAVL, "score", "--task", "cvqa", "--lang", "id", "--data", str(data.parent),
                        "--predictions", str(preds)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["task"] == "cvqa" and out["lang"] == "id" and out["n"] == 6   # only the Indonesian subset
    assert out["metrics"]["normalized_accuracy"] == pytest.approx(200 / 3)
    assert out["metrics"]["accuracy"] == pytest.approx(75.0) and out["metrics"]["null_count"] == 1


def test_cvqa_hidden_answers_and_incomplete_predictions_are_refused(tmp_path):
    hidden = seahelm.cvqa(tmp_path / "hidden.parquet", [("id-1", "id", 0), ("id-2", "id", -1), ("id-3", "id", 1)])
    preds = _predictions(tmp_path / "p.jsonl", [("id-1", "Jawaban: A"), ("id-2", "Jawaban: D"), ("id-3", "B")])
    r = subprocess.run([*SEAVL, "score", "--task", "cvqa", "--lang", "id", "--data", str(hidden), "--predictions",
                        str(preds)], capture_output=True, text=True)
    assert r.returncode == 2 and "Label -1" in r.stderr and "hides its labels" in r.stderr
    data = seahelm.cvqa(tmp_path / "ok.parquet", [("id-1", "id", 0), ("id-3", "id", 1)])
    partial = _predictions(tmp_path / "partial.jsonl", [("id-1", "Jawaban: A")])
    r = subprocess.run([*SEAVL, "score", "--task", "cvqa", "--lang", "id", "--data", str(data), "--predictions",
                        str(partial)], capture_output=True, text=True)
    assert r.returncode == 2 and "no prediction" in r.stderr and "id-3" in r.stderr
    r = subprocess.run([*SEAVL, "score", "--task", "cvqa", "--lang", "th", "--data", str(data), "--predictions",
                        str(partial)], capture_output=True, text=True)
    assert r.returncode == 2 and "not 'th'" in r.stderr


@pytest.fixture(scope="module")
def tiny_clip(demo, tmp_path_factory):
    """A tiny random transformers CLIPModel with the demo's tokenizer: the judge interface SEA-HELM's open_clip
    model sits behind, small enough for CI."""
    import torch
    from transformers import AutoProcessor, CLIPConfig, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tok = AutoProcessor.from_pretrained(demo.base_model).tokenizer
    text = CLIPTextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, max_position_embeddings=64, pad_token_id=tok.pad_token_id,
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    vision = CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("clip")
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(folder)
    images = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tok).save_pretrained(folder)
    return folder


def test_refclipscore_equals_a_direct_computation_with_the_same_encoder(tiny_clip):
    import numpy as np
    import torch
    from transformers import AutoProcessor, CLIPModel

    from components.evaluate.seahelm.refclip import TransformersClipJudge, refclipscore
    from components.evaluate.seahelm.tasks import extract_answer as extract_caption
    from tests.support.corpus import jpeg

    assert extract_caption("Caption: two red circles\nmore", "Caption:") == "two red circles"
    assert extract_caption("Caption: **a cat**", "Caption:") == "a cat**"
    assert extract_caption("no tag here", "Caption:") == "no tag here"
    images = [jpeg(i) for i in range(3)]
    captions = ["dua lingkaran merah", "satu persegi biru", ""]
    references = [["dua lingkaran merah di kiri", "lingkaran merah"], ["persegi biru"], ["segitiga hijau"]]
    metrics, per_item = refclipscore(TransformersClipJudge(str(tiny_clip), device="cpu"), images, captions,
                                     references)

    model, processor = CLIPModel.from_pretrained(tiny_clip), AutoProcessor.from_pretrained(tiny_clip)
    import io

    from PIL import Image

    def unit(output):   # the projected features (transformers 5 returns them as pooler_output)
        t = output if isinstance(output, torch.Tensor) else output.pooler_output
        return t / t.norm(dim=-1, keepdim=True)

    with torch.no_grad():
        img = unit(model.get_image_features(**processor(images=[Image.open(io.BytesIO(b)).convert("RGB")
                                                                for b in images], return_tensors="pt")))
        def text(texts):
            return unit(model.get_text_features(**processor(text=texts, return_tensors="pt", padding=True)))
        cap = text(captions)
        expected = []
        clip_scores = []
        for i, refs in enumerate(references):
            c = 2.5 * max(float(img[i] @ cap[i]), 0.0)
            r = max(float(v @ cap[i]) for v in text(refs))
            clip_scores.append(c)
            expected.append(2 * c * r / (c + r) if c + r else 0.0)
    assert metrics["refclipscore"] == pytest.approx(float(np.mean(expected)), abs=1e-5)
    assert metrics["normalized_refclipscore"] == pytest.approx(100 * max(float(np.mean(expected)), 0), abs=1e-3)
    assert metrics["clipscore"] == pytest.approx(float(np.mean(clip_scores)), abs=1e-5)
    assert per_item == pytest.approx([100 * max(e, 0) for e in expected], abs=1e-3)
    assert metrics["null_count"] == 1


def test_marvl_uses_the_languages_true_false_words_and_simplified_chinese(tmp_path):
    from components.evaluate.seahelm.tasks import marvl, score_predictions

    data = seahelm.marvl(tmp_path / "zh.parquet", [("m1", "這是一杯茶", True), ("m2", "兩隻貓", False),
                                                   ("m3", "三個人", True), ("m4", "沒有狗", False)])
    items = marvl(str(data), "zh")
    assert [i.label for i in items] == ["正确", "错误", "正确", "错误"]
    assert items[0].fields["hypothesis"] == "这是一杯茶" and len(items[0].images) == 2
    # SEA-HELM's Chinese MARVL tag has a full-width colon; with a half-width one the reply is unparsable
    assert extract_label("答案: 正确", "答案：", ["正确", "错误"]) == "null"
    preds = _predictions(tmp_path / "p.jsonl", [("m1", "答案：正确"), ("m2", "答案：**错误**"), ("m3", "错误"),
                                                ("m4", "我不确定")])
    out = score_predictions("marvl", "zh", str(data), str(preds))
    # recall: 正确 1/2, 错误 1/2 -> BA 0.5 = chance for K = 2 -> normalized 0
    assert out["metrics"]["accuracy"] == pytest.approx(50.0) and out["metrics"]["normalized_accuracy"] == 0.0
    assert out["metrics"]["null_count"] == 1


def test_world_cuisines_moves_the_gold_option_as_seahelm_does(tmp_path):
    import numpy as np

    from components.evaluate.seahelm.tasks import score_predictions, world_cuisines

    rows = [(f"q{t}-{i}", "id_formal", t, i % 5) for t in (4, 1, 3) for i in range(5)]
    rows += [("other", "th", 1, 0)] * 5
    data = seahelm.world_cuisines(tmp_path / "task1.parquet", rows, tmp_path)
    items = world_cuisines("task1")(str(data), "id", image_root=str(tmp_path))
    assert len(items) == 15 and [i.id.split("-")[0] for i in items] == ["q1"] * 5 + ["q3"] * 5 + ["q4"] * 5
    # one generator, seed 3722236, shuffles [0..4] for prompt type 1, then 3, then 4
    rng = np.random.default_rng(3722236)
    expected = []
    for _ in (1, 3, 4):
        targets = [0, 1, 2, 3, 4]
        rng.shuffle(targets)
        expected += targets
    assert [i.label for i in items] == ["ABCDE"[t] for t in expected]
    for item in items:   # the gold dish sits at its new letter; the others keep their order
        gold = int(item.id.split("-")[1]) % 5
        options = [item.fields[f"option_{k}"] for k in "abcde"]
        assert options["ABCDE".index(item.label)] == f"dish-{item.id}-{gold}"
        assert [o for o in options if o != f"dish-{item.id}-{gold}"] == \
            [f"dish-{item.id}-{k}" for k in range(5) if k != gold]
    assert len(items[0].images) == 1
    preds = _predictions(tmp_path / "p.jsonl", [(i.id, f"Jawaban: {i.label}") for i in items])
    out = score_predictions("world_cuisine_task1", "id", str(data), str(preds))
    assert out["metrics"]["normalized_accuracy"] == pytest.approx(100.0) and out["n"] == 15


def test_aggregation_groups_then_competencies_then_languages_then_total():
    from components.evaluate.seahelm.aggregate import aggregate
    from components.evaluate.seahelm.tasks import prompts

    tasks = {**prompts(), "sentiment": {"competency": "nlu"}}
    scores = {("world_cuisine_task1", "id"): 40.0, ("world_cuisine_task2", "id"): 60.0,   # one group: 50
              ("cvqa", "id"): 20.0, ("marvl", "id"): 80.0,                                   # vision: (50+20+80)/3
              ("sentiment", "id"): 90.0,                                                     # nlu: 90
              ("xm3600", "vi"): 30.0}
    out = aggregate(scores, tasks)
    assert out["languages"]["id"]["competencies"] == {"nlu": 90.0, "vision": pytest.approx(50.0)}
    assert out["languages"]["id"]["score"] == pytest.approx(70.0)
    assert out["languages"]["vi"]["score"] == 30.0
    assert out["total"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="mystery"):
        aggregate({("mystery", "id"): 1.0}, tasks)


def test_seavl_score_on_xm3600_with_a_clip_judge(tmp_path, tiny_clip):
    from components.evaluate.seahelm.refclip import TransformersClipJudge, refclipscore
    from components.evaluate.seahelm.tasks import xm3600

    data = seahelm.xm3600(tmp_path / "id.parquet", [("a", ["dua lingkaran merah"]),
                                                    ("b", ["persegi biru", "satu persegi biru"])])
    preds = _predictions(tmp_path / "p.jsonl", [("a", "Keterangan: dua lingkaran merah"), ("b", "satu segitiga")])
    r = subprocess.run([*SEAVL, "score", "--task", "xm3600", "--lang", "id", "--data", str(data), "--predictions",
                        str(preds), "--judge", str(tiny_clip)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    items = xm3600(str(data), "id")
    direct, _ = refclipscore(TransformersClipJudge(str(tiny_clip), device="cpu"), [i.image for i in items],
                             ["dua lingkaran merah", "satu segitiga"], [i.references for i in items])
    assert out["n"] == 2 and out["metrics"]["normalized_refclipscore"] == pytest.approx(
        direct["normalized_refclipscore"], abs=1e-4)
    r = subprocess.run([*SEAVL, "score", "--task", "xm3600", "--lang", "id", "--data", str(data), "--predictions",
                        str(preds)], capture_output=True, text=True)
    assert r.returncode == 2 and "--judge" in r.stderr


def test_text_metrics_by_hand():
    from components.evaluate.seahelm.text import chrf_pp, qa_metrics, rouge_l

    # "the red car" vs "a red car": common {red, car} -> P 2/3, R 2/3, F1 2/3; best over two references
    m, per = qa_metrics(["The red car!", "biru"], [["a red car", "merah"], ["hijau"]])
    assert per == pytest.approx([200 / 3, 0.0]) and m["f1"] == pytest.approx(100 / 3)
    assert m["normalized_f1"] == m["f1"] and m["exact_match"] == 0.0
    assert qa_metrics(["A red car."], [["a red car"]])[0]["exact_match"] == 100.0
    # Thai and Chinese are word-segmented first: a right answer written without spaces still matches
    assert qa_metrics(["แมวสองตัว"], [["แมว สอง ตัว"]], "th")[0]["f1"] == pytest.approx(100.0)
    assert qa_metrics(["两只猫"], [["两只 猫"]], "zh")[0]["f1"] == pytest.approx(100.0)
    assert chrf_pp(["dua lingkaran merah"], [["dua lingkaran merah"]]) == pytest.approx(100.0)
    assert chrf_pp(["dua lingkaran"], [["dua lingkaran merah"]]) < 100.0
    # ROUGE-L: LCS "red car" of 3 and 2 tokens -> P 1, R 2/3, F 0.8
    mean, per = rouge_l(["red car", "blue"], ["a red car", "green"])
    assert per == pytest.approx([80.0, 0.0]) and mean == pytest.approx(40.0)


def test_paired_bootstrap_brackets_the_difference():
    from components.evaluate.seahelm.bootstrap import paired_difference

    same = {str(i): float(i % 2) for i in range(50)}
    d = paired_difference(same, same)
    assert (d.mean, d.low, d.high, d.n) == (0.0, 0.0, 0.0, 50)
    better = {k: v + 1.0 for k, v in same.items()}
    assert paired_difference(better, same).low == pytest.approx(1.0)
    # a noisy gain: the interval holds the mean and is wider than nothing
    import random

    rng = random.Random(0)
    noisy = {k: v + rng.gauss(0.2, 1.0) for k, v in same.items()}
    d = paired_difference(noisy, same)
    assert d.low < d.mean < d.high and d.high - d.low > 0.2
    with pytest.raises(ValueError, match="two shared items"):
        paired_difference({"a": 1.0}, {"a": 0.0})


def test_prompts_are_seahelms_text_first_then_images(tmp_path):
    from components.evaluate.seahelm.tasks import conversation, cvqa

    data = seahelm.cvqa(tmp_path / "c.parquet", [("id-1", "id", 2), ("id-2", "id", 0)])
    item = cvqa(str(data), "id")[0]
    turn = conversation("cvqa", "id", item.fields, ["<image>"])
    assert [c["type"] for c in turn[0]["content"]] == ["text", "image"]
    assert turn[0]["content"][0]["text"] == (
        'Jawablah hanya dengan menggunakan format berikut ini:\n"Jawaban: ANSWER"\n'
        "Ganti ANSWER dengan pilihan yang telah dipilih. Gunakan huruf A, B, C, atau D saja sebagai jawabannya."
        "\n\nPertanyaan: Apa ini? (id-1)\nA: nasi\nB: mi\nC: roti\nD: sate")
    assert item.label == "C"
    xm = conversation("xm3600", "en", {}, ["<image>"])[0]["content"][0]["text"]
    assert xm == ('Provide a one sentence image caption for the given image.\n\nPlease respond using the following '
                  'format:\n"Caption: CAPTION"\nReplace CAPTION with your image caption.')   # empty template: stripped


def test_seavl_evaluate_runs_a_suite_and_resumes(demo, tmp_path, tiny_clip):
    """The tiny demo model through SEA-HELM's prompts on CVQA, MARVL and XM3600 fixtures: every task and
    language scored and aggregated; a rerun into the same folder generates nothing new."""
    import yaml

    cvqa = seahelm.cvqa(tmp_path / "cvqa.parquet", [("id-1", "id", 0), ("id-2", "id", 1), ("id-3", "id", 2)])
    marvl = seahelm.marvl(tmp_path / "marvl-id.parquet", [("m1", "Dua kucing", True), ("m2", "Tiga anjing", False)])
    xm = seahelm.xm3600(tmp_path / "xm-en.parquet", [("a", ["two red circles"]), ("b", ["a blue square"])])
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({
        "tasks": {"cvqa": {"data": str(cvqa), "languages": ["id"]}, "marvl": {"data": {"id": str(marvl)}},
                  "xm3600": {"data": {"en": str(xm)}}},
        "judge": str(tiny_clip), "batch_size": 2, "max_new_tokens": 6}))
    out = tmp_path / "out"
    r = subprocess.run([*SEAVL, "evaluate", "--model", demo.base_model, "--suite", str(suite), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores["tasks"]) == {"cvqa/id", "marvl/id", "xm3600/en"}
    assert scores["tasks"]["cvqa/id"]["n"] == 3 and "normalized_accuracy" in scores["tasks"]["cvqa/id"]
    assert "normalized_refclipscore" in scores["tasks"]["xm3600/en"]
    assert set(scores["aggregate"]["languages"]) == {"id", "en"} and scores["aggregate"]["total"] is not None
    replies = out / "responses" / "cvqa" / "id"
    parts = sorted(replies.glob("part-*.jsonl"))
    assert sum(len(p.read_text().splitlines()) for p in parts) == 3
    again = subprocess.run([*SEAVL, "evaluate", "--model", demo.base_model, "--suite", str(suite), "--out",
                            str(out)], capture_output=True, text=True)
    assert again.returncode == 0 and sorted(replies.glob("part-*.jsonl")) == parts   # nothing generated again
    assert json.loads((out / "scores.json").read_text())["tasks"] == scores["tasks"]
    # the kept replies are what `seavl score` reads: the same figures from the folder of parts
    scored = subprocess.run([*SEAVL, "score", "--task", "cvqa", "--lang", "id", "--data", str(cvqa),
                             "--predictions", str(replies)], capture_output=True, text=True)
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert json.loads(scored.stdout)["metrics"] == {k: v for k, v in scores["tasks"]["cvqa/id"].items()
                                                    if k not in ("n", "metric")}
    suite.write_text(yaml.safe_dump({"tasks": {"cvqa": {"data": str(cvqa), "languages": ["th"]}}}))
    bad = subprocess.run([*SEAVL, "evaluate", "--model", demo.base_model, "--suite", str(suite)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "not 'th'" in bad.stderr


def _save_to_disk(folder, rows: list[dict]):
    """A `datasets.save_to_disk` folder as datasets writes it: Arrow stream files named in state.json."""
    import pyarrow as pa

    folder.mkdir(parents=True)
    table = pa.Table.from_pylist(rows)
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink, \
            pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}],
                                                   "_split": "eval"}))
    return folder


def test_seahelm_text_tasks_read_its_files_and_score_by_its_metrics(tmp_path):
    """SEA-HELM's own text files (here as a save_to_disk folder and as JSONL): sentiment through the multiple-
    choice path, QA by token F1 over every accepted answer, translation by chrF++, summaries by ROUGE-L."""
    from components.evaluate.seahelm.tasks import score_predictions

    sentiment = _save_to_disk(tmp_path / "sentiment-id", [
        {"id": "s1", "label": "Positif", "prompts": [{"text": "Enak sekali!"}]},
        {"id": "s2", "label": "Negatif", "prompts": [{"text": "Buruk."}]},
        {"id": "s3", "label": "Netral", "prompts": [{"text": "Biasa."}]}])
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "s1", "response": "Jawaban: Positif"}, {"id": "s2", "response": "jawaban: negatif"},
        {"id": "s3", "response": "Saya tidak tahu"}]))
    m = score_predictions("sentiment", "id", str(sentiment), str(preds))["metrics"]
    # recalls 1, 1, 0 -> BA 2/3, K = 3: 100 * (2/3 - 1/3) / (2/3) = 50
    assert m["normalized_accuracy"] == pytest.approx(50.0) and m["null_count"] == 1

    qa = tmp_path / "qa-id.jsonl"
    qa.write_text(json.dumps({"id": "q1", "label": ["Jakarta", "kota Jakarta"],
                              "prompts": [{"text": "...", "question": "Di mana?"}]}) + "\n")
    preds.write_text(json.dumps({"id": "q1", "response": "Jawaban: di kota Jakarta"}) + "\n")
    m = score_predictions("qa", "id", str(qa), str(preds))["metrics"]
    assert m["normalized_f1"] == pytest.approx(100 * 2 * (2 / 3) * 1 / (2 / 3 + 1))   # best over the answers

    mt = tmp_path / "mt-id.jsonl"
    mt.write_text(json.dumps({"id": "t1", "label": "dua lingkaran merah", "prompts": [{"text": "two red"}]}) + "\n")
    preds.write_text(json.dumps({"id": "t1", "response": "Terjemahan: dua lingkaran merah"}) + "\n")
    assert score_predictions("translation-en-xx", "id", str(mt), str(preds))["metrics"]["chrf_score"] == \
        pytest.approx(100.0)

    summ = tmp_path / "abssum-th.jsonl"
    summ.write_text(json.dumps({"id": "a1", "label": "แมว สอง ตัว", "prompts": [{"text": "..."}]}) + "\n")
    preds.write_text(json.dumps({"id": "a1", "response": "บทสรุป: แมวสองตัว"}) + "\n")
    m = score_predictions("abssum", "th", str(summ), str(preds))["metrics"]
    assert m["normalized_rougel_f1"] == pytest.approx(100.0)   # Thai segmented, so words match


def test_paired_interval_of_balanced_accuracy_recomputes_seahelms_metric():
    from components.evaluate.seahelm.bootstrap import paired_metric_difference
    from components.evaluate.seahelm.mcq import mcq_metrics

    golds = list("ABCD" * 10)
    good = [{"id": str(i), "gold": g, "answer": g if i % 4 else "null", "score": 0} for i, g in enumerate(golds)]
    poor = [{"id": str(i), "gold": g, "answer": "A", "score": 0} for i, g in enumerate(golds)]
    d = paired_metric_difference(good, poor, "mcq")
    expected = (mcq_metrics(golds, [r["answer"] for r in good])["normalized_accuracy"]
                - mcq_metrics(golds, [r["answer"] for r in poor])["normalized_accuracy"])
    assert d.mean == pytest.approx(expected) and d.low <= d.mean <= d.high and d.n == 40
    same = paired_metric_difference(good, good, "mcq")
    assert (same.mean, same.low, same.high) == (0.0, 0.0, 0.0)


def test_a_suites_images_are_what_training_must_not_contain(demo):
    from components.validate_data.core import eval_image_hashes

    shas, phashes = eval_image_hashes([demo.suite])
    # XM3600 96 + CVQA 80 + MARVL 48 x 2 + WorldCuisines 125 images, a few of them identical renderings
    assert 380 <= len(shas) <= 397 and len(phashes) == len(shas)   # each distinct image compared once


def test_the_inference_backend_is_chosen_and_refused_clearly(demo, monkeypatch):
    """auto takes vLLM only where it is installed and there is a GPU (neither here): transformers; vllm asked for
    where it cannot run, or an unknown backend, is refused with what to do."""
    from components.evaluate import inference

    model, _ = inference.load(demo.base_model, backend="auto")
    assert not isinstance(model, inference.VllmModel) and not inference.vllm_available()
    with pytest.raises(inference.BackendUnavailable, match="needs the vllm package and a GPU"):
        inference.load(demo.base_model, backend="vllm")
    with pytest.raises(inference.BackendUnavailable, match="unknown inference backend 'tgi'"):
        inference.load(demo.base_model, backend="tgi")


def test_vllm_requests_carry_the_chat_template_prompt_and_the_images(demo):
    """What the vLLM backend hands to vLLM: the prompt rendered by the model's own chat template, with an image
    placeholder per image, and the images in prompt order."""
    from PIL import Image

    from components.common.models import load_processor
    from components.evaluate.inference import VllmModel
    from components.evaluate.seahelm.tasks import conversation

    processor = load_processor(demo.base_model)
    pictures = [Image.new("RGB", (64, 64), c) for c in ("red", "blue")]
    request = VllmModel.request(processor, conversation("marvl", "id", {"hypothesis": "Dua kucing"}, pictures))
    assert request["multi_modal_data"]["image"] == pictures
    assert request["prompt"].count(processor.tokenizer.boi_token) == 2 and "Hipotesis:\nDua kucing" in \
        request["prompt"] and request["prompt"].rstrip().endswith("model")
    assert "multi_modal_data" not in VllmModel.request(processor, conversation("translation-en-xx", "id",
                                                                               {"text": "two"}, []))


def test_xm3600_runs_in_any_of_its_languages_with_seahelms_english_prompt_where_it_has_none():
    from components.evaluate.seahelm.tasks import EvalDataError, config, conversation

    assert config("xm3600", "de") == config("xm3600", "en") and config("xm3600", "th")["answer_tag"] == "แคปชั่น:"
    assert conversation("xm3600", "de", {}, []) == conversation("xm3600", "en", {}, [])
    with pytest.raises(EvalDataError, match="SEA-HELM runs cvqa in .*not 'de'"):
        config("cvqa", "de")
    with pytest.raises(EvalDataError, match="not 'fil'"):   # SEA-HELM's code for Tagalog is tl
        config("xm3600", "fil")


@pytest.fixture(scope="module")
def tiny_metricx(demo, tmp_path_factory):
    """A tiny random mT5 checkpoint with an untied head of MetricX-24's vocabulary size (its score is the logit of
    token 250089) and the demo's tokenizer: MetricX's interface, small enough for CI."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoProcessor, MT5Config, MT5Model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("metricx")
    config = MT5Config(vocab_size=250112, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1,
                       num_heads=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    model = MT5Model(config).eval()
    model.save_pretrained(folder)
    tokenizer = AutoProcessor.from_pretrained(demo.base_model).tokenizer
    tokenizer.save_pretrained(folder)
    # a head whose row 250089 points along the decoder's output, so that scores land inside (0, 25), not clamped
    with torch.no_grad():
        hidden = model(input_ids=tokenizer("source: a candidate: b reference: c", return_tensors="pt")["input_ids"],
                       decoder_input_ids=torch.zeros((1, 1), dtype=torch.long)).last_hidden_state[0, 0]
    weights = load_file(folder / "model.safetensors")
    weights["lm_head.weight"] = torch.randn(250112, 16)
    weights["lm_head.weight"][250089] = hidden * 12 / float(hidden @ hidden)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def test_metricx_scores_translations_as_seahelm_runs_it(tiny_metricx, tmp_path):
    """With a MetricX checkpoint the translation headline is SEA-HELM's normalized_metricx_wmt24_scores, each
    item 100 x max((25 - s) / 25, 0), s the clamped logit of <extra_id_10> after one decoder step from token 0
    over "source: .. candidate: .. reference: .." without its last token; chrF++ stays beside it."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, MT5Model

    from components.evaluate.seahelm.tasks import headline, score_predictions

    data = tmp_path / "mt.jsonl"
    rows = [("t1", "two red circles", "dua lingkaran merah", "dua lingkaran merah"),
            ("t2", "one blue square", "satu persegi biru", "tiga segitiga kuning di kiri")]
    data.write_text("".join(json.dumps({"id": i, "label": ref, "prompts": [{"text": src}]}) + "\n"
                            for i, src, ref, _ in rows))
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"id": i, "response": f"Terjemahan: {hyp}"}) + "\n"
                             for i, _, _, hyp in rows))
    m = score_predictions("translation-en-xx", "id", str(data), str(preds), metricx=str(tiny_metricx))["metrics"]

    tok = AutoTokenizer.from_pretrained(tiny_metricx)
    model = MT5Model.from_pretrained(tiny_metricx).eval()
    head = load_file(tiny_metricx / "model.safetensors")["lm_head.weight"]
    # one padded batch, its last column dropped (the longer row's EOS; a shorter row keeps its own), as SEA-HELM
    tokens = tok([f"source: {src} candidate: {hyp} reference: {ref}" for _, src, ref, hyp in rows],
                 padding=True, return_tensors="pt")
    ids, mask = tokens["input_ids"][:, :-1], tokens["attention_mask"][:, :-1]
    with torch.no_grad():
        hidden = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        out = model.decoder(input_ids=torch.zeros((2, 1), dtype=torch.long), encoder_hidden_states=hidden,
                            encoder_attention_mask=mask)
        logits = out.last_hidden_state[:, 0] @ head.T            # the whole head, as MT5ForRegression does
    raw = [float(v) for v in torch.clamp(logits[:, 250089], 0, 25)]
    assert m["metricx_wmt24_scores"] == pytest.approx(sum(raw) / 2, abs=1e-4)
    assert m["normalized_metricx_wmt24_scores"] == pytest.approx(
        sum(100 * max((25 - s) / 25, 0) for s in raw) / 2, abs=1e-3)
    assert 0 < m["normalized_metricx_wmt24_scores"] < 100 and "chrf_score" in m
    assert headline("translation-en-xx", m) == "normalized_metricx_wmt24_scores"
    assert headline("translation-en-xx", {"chrf_score": 1.0}) == "chrf_score"
