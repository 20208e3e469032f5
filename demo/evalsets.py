"""The demo's evaluation suite, written in the public schemas SEA-HELM reads, so that the demo runs through the
same tasks, adapters, prompts and metrics as a release evaluation:

  xm3600/<split>.parquet        floschne/xm3600 (image_id, captions, image {bytes, path}); Tagalog is split `fil`
  cvqa/test.parquet             afaji/cvqa (ID, Subset, Question, Options, Label, image, ...)
  marvl/<lang>.parquet          floschne/marvl (id, hypothesis, label, left_img, right_img, ...)
  world_cuisines/task1.parquet, task2.parquet, images/   worldcuisines/vqa-v1.1 (qa_id, lang, prompt_type, ...)
  text/translation-*/<lang>.jsonl   SEA-HELM's own text files (id, label, prompts [{"text"}])
  suite.yaml                    the suite naming them (relative paths), the judge, and a generation cap
  judge/                        a tiny CLIP model trained on the demo captions (XM3600's judge here)

Questions ask about the scenes' colours (the attribute the tiny model reads best); the true/false hypotheses of
MARVL are a caption of the left image or of another scene.
"""
from __future__ import annotations

import io
import random
from pathlib import Path

from demo import vocabulary as L

XM3600_LANGS = ("en", "id", "th", "vi", "tl", "zh")
CVQA_LANGS = ("id", "ms", "tl", "zh", "ta")
MARVL_LANGS = ("id", "ta", "zh")
WC_LANGS = {"en": "en", "id": "id_formal", "th": "th", "tl": "tl", "zh": "zh_cn"}
TRANSLATION_LANGS = ("id", "ms", "th", "vi", "tl", "zh", "ta")
CVQA_SUBSET = {"id": "('Indonesian', 'Indonesia')", "ms": "('Malay', 'Malaysia')", "tl": "('Filipino', 'Philippines')",
               "zh": "('Chinese', 'Singapore')", "ta": "('Tamil', 'India')"}
PER_LANG = 16          # items per task and language (WorldCuisines: 5 per prompt type)
GENERATION_CAP = 40    # new tokens: the demo's replies are one short line; SEA-HELM allows up to 1024


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def colour_options(lang: str, rng: random.Random, extra: int = 0) -> list[str]:
    """The four colour words in a random order, plus `extra` shape words that are never the answer."""
    options = [L.answer(lang, "colour", c) for c in L.COLOURS]
    rng.shuffle(options)
    return options + [L.answer(lang, "shape", s) for s in L.SHAPES[:extra]]


def hypothesis(lang: str, scene, rng: random.Random) -> str:
    return L.caption(lang, scene.count, scene.colour, scene.shape, scene.side, rng.randrange(2))


def build_suite(root: Path, rng: random.Random, scenes: list, render) -> dict:
    """Write the demo's evaluation suite under `root`; returns item counts per task."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def picture(scene) -> bytes:
        return _png(render(scene, rng))

    counts: dict[str, int] = {}
    for lang in XM3600_LANGS:
        rows = []
        for i in range(PER_LANG):
            scene = rng.choice(scenes)
            rows.append({"image_id": f"xm-{lang}-{i:03d}", "image_locale": lang,
                         "captions": L.references(lang, scene.count, scene.colour, scene.shape, scene.side),
                         "image": {"bytes": picture(scene), "path": f"xm-{lang}-{i:03d}.png"}})
        split = "fil" if lang == "tl" else lang
        _write(pq, pa, root / "xm3600" / f"{split}.parquet", rows)
        counts["xm3600"] = counts.get("xm3600", 0) + len(rows)

    rows = []
    for lang in CVQA_LANGS:
        for i in range(PER_LANG):
            scene = rng.choice(scenes)
            options = colour_options(lang, rng)
            rows.append({"image": {"bytes": picture(scene), "path": None}, "ID": f"cvqa-{lang}-{i:03d}",
                         "Subset": CVQA_SUBSET[lang], "Question": L.QUESTIONS[lang]["colour"],
                         "Translated Question": L.QUESTIONS["en"]["colour"], "Options": options,
                         "Translated Options": options,
                         "Label": options.index(L.answer(lang, "colour", scene.colour)),
                         "Category": "Objects / materials / clothing", "Image Type": "Self",
                         "Image Source": "demo-synthetic", "License": "CC BY-SA"})
    _write(pq, pa, root / "cvqa" / "test.parquet", rows)
    counts["cvqa"] = len(rows)

    for lang in MARVL_LANGS:
        rows = []
        for i in range(PER_LANG):
            left, right = rng.choice(scenes), rng.choice(scenes)
            truth = i % 2 == 0
            other = rng.choice([s for s in scenes if s != left])
            rows.append({"id": f"marvl-{lang}-{i:03d}", "hypothesis": hypothesis(lang, left if truth else other, rng),
                         "hypo_en": hypothesis("en", left if truth else other, rng), "language": lang,
                         "label": truth, "chapter": "demo", "concept": "shapes",
                         "left_img": {"bytes": picture(left), "path": None},
                         "right_img": {"bytes": picture(right), "path": None}})
        _write(pq, pa, root / "marvl" / f"{lang}.parquet", rows)
        counts["marvl"] = counts.get("marvl", 0) + len(rows)

    for task, prompt_types, per_type in (("task1", (1, 3, 4), 5), ("task2", (2,), 10)):
        rows = []
        for lang, code in WC_LANGS.items():
            for prompt_type in prompt_types:
                for i in range(per_type):
                    scene = rng.choice(scenes)
                    name = f"images/{task}-{code}-{prompt_type}-{i:02d}.png"
                    path = root / "world_cuisines" / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(picture(scene))
                    options = colour_options(lang, rng, extra=1)
                    gold = options.index(L.answer(lang, "colour", scene.colour))
                    rows.append({"qa_id": f"wc-{task}-{code}-{prompt_type}-{i:02d}", "lang": code,
                                 "food_id": i, "prompt_id": prompt_type, "prompt_type": prompt_type,
                                 "question": L.QUESTIONS[lang]["colour"], "options": options,
                                 "mcq_answer_index": gold, "answer": options[gold], "image_url": "",
                                 "image_path": name, "task": task, "lang_status": "demo"})
        _write(pq, pa, root / "world_cuisines" / f"{task}.parquet", rows)
        counts[f"world_cuisine_{task}"] = len(rows)
    return counts


def translation_items(root: Path, heldout: list) -> int:
    """SEA-HELM translation files (translation-en-xx, translation-xx-en) on the held-out scenes, whose
    translations the base model never saw."""
    import json

    n = 0
    for lang in TRANSLATION_LANGS:
        for task, src, tgt in (("translation-en-xx", "en", lang), ("translation-xx-en", lang, "en")):
            lines = []
            for i in range(8):
                s = heldout[i % len(heldout)]
                template = i // len(heldout) % 2
                lines.append({"id": f"{task}-{lang}-{i:03d}",
                              "label": L.caption(tgt, s.count, s.colour, s.shape, s.side, template),
                              "prompts": [{"text": L.caption(src, s.count, s.colour, s.shape, s.side, template)}]})
            path = root / "text" / task / f"{lang}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
            n += len(lines)
    return n


def write_suite_file(root: Path) -> Path:
    import yaml

    tasks = {
        "xm3600": {"data": {lang: f"xm3600/{'fil' if lang == 'tl' else lang}.parquet" for lang in XM3600_LANGS}},
        "cvqa": {"data": "cvqa/test.parquet", "languages": list(CVQA_LANGS)},
        "marvl": {"data": {lang: f"marvl/{lang}.parquet" for lang in MARVL_LANGS}},
        "world_cuisine_task1": {"data": "world_cuisines/task1.parquet", "languages": list(WC_LANGS)},
        "world_cuisine_task2": {"data": "world_cuisines/task2.parquet", "languages": list(WC_LANGS)},
        **{task: {"data": {lang: f"text/{task}/{lang}.jsonl" for lang in TRANSLATION_LANGS}}
           for task in ("translation-en-xx", "translation-xx-en")},
    }
    path = root / "suite.yaml"
    path.write_text("# The demo's SEA-HELM suite (demo/evalsets.py). Replies are capped at "
                    f"{GENERATION_CAP} new tokens: a smoke run.\n"
                    + yaml.safe_dump({"tasks": tasks, "judge": "judge", "batch_size": 32,
                                      "max_new_tokens": GENERATION_CAP}, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


def _write(pq, pa, path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def train_judge(folder: Path, tokenizer, captions: list[tuple[bytes, str]], seed: int, steps: int = 300,
                batch_size: int = 64) -> list[float]:
    """A tiny CLIP model trained contrastively on the demo's caption pairs, saved with its processor: XM3600's
    judge in the demo (SEA-HELM's is open_clip's xlm-roberta-large-ViT-H-14). A plain loop: this builds a
    fixture."""
    import torch
    from PIL import Image
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from components.evaluate.seahelm.refclip import with_eos

    torch.manual_seed(seed)
    text = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=2, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    vision = CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=64, intermediate_size=128,
                              num_hidden_layers=2, num_attention_heads=2)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=32))
    processor = CLIPProcessor(image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32},
                                                                    crop_size={"height": 32, "width": 32}),
                              tokenizer=tokenizer)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    losses = []
    model.train()
    for _ in range(steps):
        batch = rng.sample(captions, batch_size)
        pictures = [Image.open(io.BytesIO(b)).convert("RGB") for b, _ in batch]
        inputs = processor(text=with_eos(tokenizer, [c for _, c in batch]), images=pictures, return_tensors="pt",
                           padding=True, truncation=True, max_length=64)
        loss = model(**inputs, return_loss=True).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(round(loss.item(), 4))
    model.eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return losses
