"""The demo corpus: synthetic scenes (coloured shapes, counted, on one side) described in eight languages.

Written as the project's data contracts (see components/common/records.py), so that every step reads the
demo exactly as it reads real data:
  captions.jsonl    CPT caption pairs            (id, image, caption, lang, source, width, height, sha256)
  sft.jsonl         instruction conversations    (id, messages, images, lang, source)
  text.jsonl        the base model's text corpus (id, messages, lang): translations between the languages,
                    prompted as SEA-HELM prompts its translation tasks
  eval/             the evaluation suite, in the public schemas SEA-HELM reads (demo/evalsets.py)
Images are PNG files beside the manifests; manifests name them by relative path. Part of the SFT conversations
use SEA-HELM's prompt formats (answer tags, options, text before images), as instruction mixtures do.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from demo import evalsets
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


def seahelm_turns(task: str, lang: str, fields: dict, images: int, answer: str) -> list[dict]:
    """A user turn as SEA-HELM prompts `task` (preamble, template, then the images) and the tagged answer."""
    from components.evaluate.seahelm.tasks import conversation, prompts

    user = conversation(task, lang, fields, [None] * images)[0]
    user["content"] = [c if c["type"] == "text" else {"type": "image"} for c in user["content"]]
    tag = prompts()[task]["languages"][lang]["answer_tag"]
    return [user, _assistant(f"{tag} {answer}")]


def translation_turns(scene: Scene, lang: str, to_english: bool, template: int = 0) -> list[dict]:
    """A SEA-HELM translation request between English and `lang` about the scene's caption, answered."""
    src, tgt = (lang, "en") if to_english else ("en", lang)
    text = L.caption(src, scene.count, scene.colour, scene.shape, scene.side, template)
    return seahelm_turns("translation-xx-en" if to_english else "translation-en-xx", lang, {"text": text}, 0,
                         L.caption(tgt, scene.count, scene.colour, scene.shape, scene.side, template))


def seahelm_vision_turns(scene: Scene, lang: str, rng: random.Random, other: Scene) -> tuple[list[dict], int]:
    """(turns, images) of a SEA-HELM-format vision request about `scene` in `lang`: a caption (XM3600's
    prompt), a colour question with lettered options (CVQA's or WorldCuisines'), or a true/false hypothesis
    about two images (MARVL's, `other` the right image or the scene a false hypothesis describes)."""
    from components.evaluate.seahelm.tasks import MARVL_LABELS

    formats = [f for f, langs in (("xm3600", evalsets.XM3600_LANGS), ("cvqa", evalsets.CVQA_LANGS),
                                  ("wc", evalsets.WC_LANGS), ("marvl", evalsets.MARVL_LANGS)) if lang in langs]
    kind = rng.choice(formats)
    if kind == "xm3600":
        return seahelm_turns("xm3600", lang, {}, 1, evalsets.hypothesis(lang, scene, rng)), 1
    if kind == "marvl":
        truth = rng.random() < 0.5
        text = evalsets.hypothesis(lang, scene if truth else other, rng)
        return seahelm_turns("marvl", lang, {"hypothesis": text}, 2, MARVL_LABELS[lang][truth]), 2
    options = evalsets.colour_options(lang, rng, extra=1 if kind == "wc" else 0)
    letter = "ABCDE"[options.index(L.answer(lang, "colour", scene.colour))]
    fields = {"question": L.QUESTIONS[lang]["colour"],
              **{f"option_{'abcde'[k]}": option for k, option in enumerate(options)}}
    return seahelm_turns("cvqa" if kind == "cvqa" else "world_cuisine_task1", lang, fields, 1, letter), 1


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
        draw = rng.random()
        images = [meta["image"]]
        if draw < 0.3:
            # caption requests, as MAmmoTH-VL mixes captioning into its instructions: without them SFT
            # wears away what CPT taught (CIDEr fell by half in some languages)
            messages = [_user(L.CAPTION_PROMPTS[lang], image=True), _assistant(describe)]
        elif draw < 0.65 and lang != "vi":   # SEA-HELM's formats (no SEA-HELM vision task is in Vietnamese
            other = rng.choice([x for x in scenes if x != scene])   # but XM3600, drawn with the captions)
            messages, n_images = seahelm_vision_turns(scene, lang, rng, other)
            if n_images == 2:
                images.append(_save(render(other, rng), root, f"images/sft/{i:06d}-b.png")["image"])
        else:
            messages = []
            for turn, attribute in enumerate(rng.sample(L.ATTRIBUTES, rng.randint(1, 2))):  # 1-2 questions
                messages += [_user(L.QUESTIONS[lang][attribute], image=turn == 0),
                             _assistant(L.answer(lang, attribute, scene.attr(attribute)))]
        sft.append({"id": f"sft-{i:06d}", "messages": messages, "images": images, "lang": lang,
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
                for to_english in (True, False):
                    text.append({"id": f"text-{len(text):06d}", "lang": "en" if to_english else lang,
                                 "messages": translation_turns(scene, lang, to_english, template)})
    _write_jsonl(root / "text.jsonl", text)
    counts["text"] = len(text)

    # the evaluation suite, in the public schemas (scenes drawn afresh; the translations are of held-out scenes)
    counts.update(evalsets.build_suite(root / "eval", rng, scenes, render))
    counts["translation"] = evalsets.translation_items(root / "eval", heldout)
    evalsets.write_suite_file(root / "eval")
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
