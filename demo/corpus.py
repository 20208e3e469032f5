"""The demo corpus: synthetic scenes (coloured shapes, counted, on one side) described in eight languages.

Written as the project's data contracts (see components/common/records.py), so that every step reads the
demo exactly as it reads real data:
  captions.jsonl    CPT caption pairs            (id, image, caption, lang, source, width, height, sha256)
  sft.jsonl         instruction conversations    (id, messages, images, lang, source)
  text.jsonl        the base model's text corpus (id, messages, lang): translations between the languages
  eval/captions.jsonl, eval/mc.jsonl, eval/text.jsonl   held-out evaluation items
Images are PNG files beside the manifests; manifests name them by relative path.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from demo import vocabulary as L

IMAGE_SIZE = 64
BACKGROUND = (235, 235, 230)
RGB = {"red": (215, 45, 40), "green": (40, 160, 60), "blue": (40, 80, 215), "yellow": (230, 195, 30)}


@dataclass(frozen=True)
class Scene:
    count: int
    colour: str
    shape: str
    side: str

    def attr(self, name: str):
        return getattr(self, name)


@dataclass(frozen=True)
class CorpusSizes:
    """How many scenes each split draws. Defaults keep `make run` within minutes on two cores."""
    cpt_scenes: int = 1280      # each captioned in two random languages: 2,560 caption pairs
    cpt_langs_per_scene: int = 2
    sft_scenes: int = 1600      # one conversation each, in a random language
    eval_scenes_per_lang: int = 24
    mc_per_lang: int = 24       # six per attribute
    text_per_lang: int = 8
    heldout_combos: int = 10    # scenes whose translations the base model never sees (the text task)


def all_scenes() -> list[Scene]:
    return [Scene(n, c, s, p) for n in L.COUNTS for c in L.COLOURS for s in L.SHAPES for p in L.SIDES]


def render(scene: Scene, rng: random.Random, size: int = IMAGE_SIZE):
    """Draw `scene`: shapes of jittered size and colour at random, non-overlapping spots on its side."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), tuple(v + rng.randint(-10, 10) for v in BACKGROUND))
    draw = ImageDraw.Draw(img)
    half = size // 2
    x0 = 0 if scene.side == "left" else half
    boxes: list[tuple[int, int, int, int]] = []
    colour = tuple(max(0, min(255, v + rng.randint(-20, 20))) for v in RGB[scene.colour])
    for _ in range(scene.count):
        for _attempt in range(100):
            d = rng.randint(10, 14)
            x = rng.randint(x0 + 1, x0 + half - d - 1)
            y = rng.randint(1, size - d - 1)
            box = (x, y, x + d, y + d)
            if all(box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3] for b in boxes):
                break
        boxes.append(box)
        if scene.shape == "circle":
            draw.ellipse(box, fill=colour)
        elif scene.shape == "square":
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=colour)
    return img


def _save(img, root: Path, rel: str) -> dict:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")
    return {"image": rel, "width": img.width, "height": img.height,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _user(text: str, image: bool) -> dict:
    content = ([{"type": "image"}] if image else []) + [{"type": "text", "text": text}]
    return {"role": "user", "content": content}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def translation_pair(scene: Scene, src: str, tgt: str, template: int = 0) -> tuple[str, str]:
    """(prompt, answer) asking to translate the scene's caption from `src` into `tgt`."""
    text = L.caption(src, scene.count, scene.colour, scene.shape, scene.side, template)
    prompt = L.TRANSLATE_PROMPT.format(name=L.LANG_NAMES[tgt], text=text)
    return prompt, L.caption(tgt, scene.count, scene.colour, scene.shape, scene.side, template)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def build_corpus(root: Path, seed: int, sizes: CorpusSizes = CorpusSizes()) -> dict:
    """Write the whole demo corpus under `root`; returns the row counts of each file."""
    rng = random.Random(seed)
    scenes = all_scenes()
    heldout = rng.sample(scenes, sizes.heldout_combos)
    counts = {}

    captions = []
    for i in range(sizes.cpt_scenes):
        scene = rng.choice(scenes)
        meta = _save(render(scene, rng), root, f"images/cpt/{i:06d}.png")
        for lang in rng.sample(L.LANGUAGES, sizes.cpt_langs_per_scene):
            template = rng.randrange(len(L.CAPTION_TEMPLATES[lang]))
            text = L.caption(lang, scene.count, scene.colour, scene.shape, scene.side, template)
            captions.append({"id": f"cpt-{i:06d}-{lang}", "caption": text, "lang": lang,
                             "source": "demo-synthetic", **meta})
    _write_jsonl(root / "captions.jsonl", captions)
    counts["captions"] = len(captions)

    sft = []
    for i in range(sizes.sft_scenes):
        scene = rng.choice(scenes)
        meta = _save(render(scene, rng), root, f"images/sft/{i:06d}.png")
        lang = rng.choice(L.LANGUAGES)
        template = rng.randrange(len(L.CAPTION_TEMPLATES[lang]))
        describe = L.caption(lang, scene.count, scene.colour, scene.shape, scene.side, template)
        if rng.random() < 0.4:
            # caption requests, as MAmmoTH-VL mixes captioning into its instructions: without them SFT
            # wears away what CPT taught (CIDEr fell by half in some languages)
            messages = [_user(L.CAPTION_PROMPTS[lang], image=True), _assistant(describe)]
        else:
            messages = []
            for turn, attribute in enumerate(rng.sample(L.ATTRIBUTES, rng.randint(1, 2))):  # 1-2 questions
                messages += [_user(L.QUESTIONS[lang][attribute], image=turn == 0),
                             _assistant(L.answer(lang, attribute, scene.attr(attribute)))]
        sft.append({"id": f"sft-{i:06d}", "messages": messages, "images": [meta["image"]], "lang": lang,
                    "source": "demo-synthetic"})
    _write_jsonl(root / "sft.jsonl", sft)
    counts["sft"] = len(sft)

    # The base model's text: translations of every scene's captions between English and each language.
    text = []
    for scene in scenes:
        if scene in heldout:
            continue
        for lang in L.LANGUAGES[1:]:
            for template in range(2):
                for src, tgt in ((lang, "en"), ("en", lang)):
                    prompt, reply = translation_pair(scene, src, tgt, template)
                    text.append({"id": f"text-{len(text):06d}", "lang": tgt,
                                 "messages": [_user(prompt, image=False), _assistant(reply)]})
    _write_jsonl(root / "text.jsonl", text)
    counts["text"] = len(text)

    eval_captions, eval_mc, eval_text = [], [], []
    for lang in L.LANGUAGES:
        for i in range(sizes.eval_scenes_per_lang):
            scene = rng.choice(scenes)
            meta = _save(render(scene, rng), root / "eval", f"images/cap-{lang}-{i:03d}.png")
            eval_captions.append({"id": f"cap-{lang}-{i:03d}", "image": meta["image"], "lang": lang,
                                  "task": "demo_captions",
                                  "references": L.references(lang, scene.count, scene.colour, scene.shape,
                                                             scene.side)})
        for i in range(sizes.mc_per_lang):
            scene = rng.choice(scenes)
            attribute = L.ATTRIBUTES[i % len(L.ATTRIBUTES)]
            meta = _save(render(scene, rng), root / "eval", f"images/mc-{lang}-{i:03d}.png")
            options = [L.answer(lang, attribute, v) for v in L.VALUES[attribute]]
            eval_mc.append({"id": f"mc-{lang}-{i:03d}", "images": [meta["image"]], "lang": lang,
                            "task": "demo_mc", "category": attribute, "question": L.QUESTIONS[lang][attribute],
                            "options": options, "answer": options.index(L.answer(lang, attribute,
                                                                                 scene.attr(attribute)))})
        for i in range(sizes.text_per_lang):
            scene = heldout[i % len(heldout)]
            src = "id" if lang == "en" else "en"
            prompt, _ = translation_pair(scene, src, lang)
            eval_text.append({"id": f"text-{lang}-{i:03d}", "prompt": prompt, "lang": lang,
                              "task": "demo_translation",
                              "references": L.references(lang, scene.count, scene.colour, scene.shape,
                                                         scene.side)})
    _write_jsonl(root / "eval" / "captions.jsonl", eval_captions)
    _write_jsonl(root / "eval" / "mc.jsonl", eval_mc)
    _write_jsonl(root / "eval" / "text.jsonl", eval_text)
    counts.update(eval_captions=len(eval_captions), eval_mc=len(eval_mc), eval_text=len(eval_text))
    (root / "heldout.json").write_text(json.dumps([asdict(s) for s in heldout]))
    return counts


def tokenizer_texts(root: Path) -> list[str]:
    """Every string of the corpus, for training the tokenizer."""
    texts = []
    for name in ("captions.jsonl", "sft.jsonl", "text.jsonl"):
        for line in (root / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if "caption" in row:
                texts.append(row["caption"])
            for m in row.get("messages", []):
                texts += [c["text"] for c in m["content"] if c["type"] == "text"]
    return texts
