"""Row checks: each takes one record's values and returns what it found or the reason to set it aside.

Pure functions and small scorers (language identification, Southeast-Asian relevance, CLIP similarity);
rows.py applies them to records in order. Every rejection is a `Reject(reason, detail)` with a reason code
from schema.REASONS and a detail short enough to read (long values are cut).
"""
from __future__ import annotations

import hashlib
import io
import math
import posixpath
import re
import unicodedata
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from components.validate_data.schema import cut

LEXICON = Path(__file__).with_name("data") / "sea_lexicon.tsv"
ACCEPTED_MODES = {"RGB", "RGBA", "L", "LA", "P", "PA", "CMYK", "YCbCr", "I;16"}
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # Unicode category Cc, less tab and newlines


@dataclass(frozen=True)
class Reject:
    reason: str
    detail: str


# --- paths ---------------------------------------------------------------------------------------------------

def confine(root: str, base: str, ref: str) -> str | Reject:
    """The URI of image `ref` (relative to `base`, the manifest's folder, or absolute), if it lies under
    `root`; else a Reject. Works the same for local paths and s3:// URIs."""
    def split(uri: str) -> tuple[str, str]:
        if "://" in uri:
            scheme, rest = uri.split("://", 1)
            bucket, _, key = rest.partition("/")
            return f"{scheme}://{bucket}", "/" + key
        return "", str(Path(uri).absolute()) if not uri.startswith("/") else uri

    root_prefix, root_path = split(root.rstrip("/") or "/")
    if "://" in ref or ref.startswith("/"):
        prefix, path = split(ref)
    else:
        prefix, base_path = split(base)
        path = posixpath.join(base_path, ref)
    path = posixpath.normpath(path)
    root_path = posixpath.normpath(root_path)
    inside = prefix == root_prefix and (path == root_path or path.startswith(root_path.rstrip("/") + "/"))
    if not inside:
        return Reject("image_outside_root", f"image path {cut(ref, 120)!r} leads outside the dataset root {root}")
    return prefix + path if prefix else path


# --- captions ------------------------------------------------------------------------------------------------

def check_caption(value, min_chars: int, max_chars: int) -> str | Reject:
    """The caption NFC-normalised, or why it is unusable."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return Reject("caption_empty", "the caption is empty")
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as err:
            return Reject("caption_not_utf8", f"not valid UTF-8 ({err.reason} at byte {err.start})")
    if not isinstance(value, str):
        return Reject("record_unreadable", f"caption is a {type(value).__name__}, expected a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:   # lone surrogates from JSON escapes
        return Reject("caption_not_utf8", f"not encodable as UTF-8 ({err.reason} at character {err.start})")
    text = unicodedata.normalize("NFC", value.strip())
    control = CONTROL.search(text)
    if control is not None:
        return Reject("caption_control_chars", f"control character U+{ord(control.group()):04X} in {cut(text, 80)!r}")
    if len(text) > max_chars:
        return Reject("caption_too_long", f"{len(text)} characters, limit {max_chars}: {cut(text, 80)!r}")
    if len(text) < min_chars:
        return Reject("caption_empty", f"{len(text)} characters, minimum {min_chars}")
    return text


def normalised(text: str) -> str:
    """A caption as compared for exact duplicates: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def pair_key(image_sha256: str, caption: str) -> str:
    return hashlib.blake2b(f"{image_sha256}\0{normalised(caption)}".encode(), digest_size=8).hexdigest()


# --- images --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageInfo:
    sha256: str
    phash: str
    width: int
    height: int


def inspect_image(data: bytes, *, min_side: int, max_aspect: float, max_pixels: int) -> ImageInfo | Reject:
    """Decode `data` fully and check it; returns its hashes and size, or why it is unusable."""
    import imagehash
    from PIL import Image, UnidentifiedImageError

    if not data:
        return Reject("image_empty", "the image has zero bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                return Reject("image_too_large", f"{width}x{height} = {width * height} pixels, limit {max_pixels}")
            if img.mode not in ACCEPTED_MODES:
                return Reject("image_mode", f"pixel mode {img.mode!r}; accepted: {sorted(ACCEPTED_MODES)}")
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        return Reject("image_too_large", cut(str(err), 200))
    except UnidentifiedImageError:
        return Reject("image_corrupt", f"not a recognised image format ({len(data)} bytes, starts {data[:8]!r})")
    except OSError as err:
        reason = "image_truncated" if "truncated" in str(err).lower() else "image_corrupt"
        return Reject(reason, cut(f"cannot decode: {err}", 200))
    except (ValueError, SyntaxError) as err:
        return Reject("image_corrupt", cut(f"cannot decode: {err}", 200))
    if min(width, height) < min_side:
        return Reject("image_too_small", f"{width}x{height}, minimum side {min_side}")
    if max(width, height) / max(min(width, height), 1) > max_aspect:
        return Reject("image_aspect", f"{width}x{height}, aspect ratio limit {max_aspect}")
    return ImageInfo(hashlib.sha256(data).hexdigest(), str(imagehash.phash(img)), width, height)


# --- language ------------------------------------------------------------------------------------------------

CONFUSABLE = [{"ms", "id"}]   # the detector cannot tell these apart reliably: it abstains between them
# Languages written in a script of their own: a caption mostly in that script is in that language, no model
# needed (the detector's cost grows with every language it weighs). Han is shared with Japanese: a caption
# declared `zh` with kana goes to the detector.
SCRIPTS = {"th": ("\u0e00", "\u0e7f"), "ta": ("\u0b80", "\u0bff"), "lo": ("\u0e80", "\u0eff"),
           "km": ("\u1780", "\u17ff"), "my": ("\u1000", "\u109f"), "zh": ("\u4e00", "\u9fff")}


def script_share(text: str, lang: str) -> float:
    """The share of `text`'s letters that are in `lang`'s own script."""
    low, high = SCRIPTS[lang]
    letters = [c for c in text if c.isalpha()]
    return sum(low <= c <= high for c in letters) / max(len(letters), 1)


@dataclass(frozen=True)
class LanguageVerdict:
    lang: str | None
    score: float | None      # confidence in `lang`; None when the detector abstained
    reject: Reject | None = None


class LanguageIdentifier:
    """lingua (models shipped in the wheel, nothing downloaded). Abstains for languages it does not know
    (Javanese, Sundanese, Burmese, Khmer, Lao), between confusable pairs (Malay/Indonesian) and on short text.

    Rows are scored with lingua's fast low-accuracy mode (trigrams); a row it would reject is scored again in
    high-accuracy mode, which decides. Low-accuracy mode alone takes short Tagalog for Malay (75 of the demo's
    2,560 captions); high-accuracy mode on every row is ~9x slower. The detector weighs the accepted languages
    plus `extra` (English by default): each language added slows it, and text in a language it does not weigh
    is taken for the nearest one it does (add e.g. es,fr,de,pt to have such text named and set aside).
    Captions declared in a language with a script of its own (Thai, Tamil, Chinese, Lao, Khmer, Burmese)
    and mostly written in it are accepted without the model."""

    def __init__(self, accepted: list[str], min_chars: int, min_confidence: float, high_accuracy: bool = False,
                 extra: list[str] = ("en",)):
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        self.accepted, self.min_chars, self.min_confidence = set(accepted), min_chars, min_confidence
        self.known: dict[str, object] = {}
        for code in dict.fromkeys([*accepted, *extra]):
            iso = getattr(IsoCode639_1, code.upper(), None)
            if iso is not None:
                self.known[code] = Language.from_iso_code_639_1(iso)
        self.code_of = {lang: code for code, lang in self.known.items()}
        builder = LanguageDetectorBuilder.from_languages(*self.known.values())
        self.precise = builder.build()
        self.detector = self.precise if high_accuracy else builder.with_low_accuracy_mode().build()

    def _scores(self, detector, text: str) -> tuple[dict[str, float], str | None]:
        values = {self.code_of[v.language]: v.value for v in detector.compute_language_confidence_values(text)}
        return values, (max(values, key=values.get) if values else None)

    def group(self, code: str | None) -> set[str]:
        return next((g for g in CONFUSABLE if code in g), {code})

    def check(self, text: str, declared: str | None) -> LanguageVerdict:
        if declared is not None and declared not in self.accepted:
            return LanguageVerdict(declared, None, Reject("language_not_accepted",
                                                          f"declared {declared!r}; accepted: {sorted(self.accepted)}"))
        if declared in SCRIPTS and "ja" not in self.known:
            share = script_share(text, declared)
            if share >= 0.5:                                 # written in its own script
                return LanguageVerdict(declared, share)
            if share < 0.1 and len(text) >= self.min_chars:   # hardly a letter of it
                return LanguageVerdict(declared, share, Reject("language_mismatch", f"declared {declared!r} but "
                                                               f"{share:.0%} of the letters are in its script"))
        if declared is not None and declared not in self.known:
            return LanguageVerdict(declared, None)           # the detector does not know it: abstain
        if len(text) < self.min_chars:
            if declared is None:
                return LanguageVerdict(None, None, Reject("language_unknown",
                                                          f"no language declared and {len(text)} characters are too "
                                                          f"few to identify one (minimum {self.min_chars})"))
            return LanguageVerdict(declared, None)
        values, top = self._scores(self.detector, text)
        would_reject = top is not None and values[top] >= self.min_confidence and top not in self.group(declared)
        if self.detector is not self.precise and (declared is None or would_reject):
            values, top = self._scores(self.precise, text)   # about to reject or to name a language: be sure
        if declared is None:
            if top is None or values[top] < self.min_confidence:
                return LanguageVerdict(None, None, Reject("language_unknown", "no language declared and none "
                                                          f"identified with confidence ≥ {self.min_confidence}"))
            if top not in self.accepted:
                return LanguageVerdict(top, values[top], Reject("language_not_accepted",
                                                                f"identified {top!r} ({values[top]:.2f})"))
            return LanguageVerdict(top, values[top])
        group = self.group(declared)
        score = sum(values.get(c, 0.0) for c in group)
        if top is not None and top not in group and values[top] >= self.min_confidence:
            return LanguageVerdict(declared, score, Reject("language_mismatch",
                                                           f"declared {declared!r} ({score:.2f}) but identified "
                                                           f"{top!r} ({values[top]:.2f})"))
        return LanguageVerdict(declared, score)


# --- Southeast-Asian relevance -------------------------------------------------------------------------------

UNSPACED = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
TOKEN = re.compile(r"[^\s!-/:-@\[-`{-~，。、！？：；（）「」“”‘’·・]+")


@lru_cache(maxsize=4)
def load_lexicon(path: str = str(LEXICON)) -> tuple[dict[str, float], dict[str, float], dict[str, float], dict]:
    """(word terms, substring terms, language priors, {first word: lengths in words of the terms it starts})
    from the TSV lexicon."""
    words, substrings, priors = {}, {}, {}
    starts: dict[str, set[int]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        term, _lang, kind, weight = line.split("\t")
        term = unicodedata.normalize("NFKC", term).casefold()
        if kind == "language":
            priors[term] = float(weight)
        elif UNSPACED.search(term):
            substrings[term] = max(float(weight), substrings.get(term, 0.0))
        else:
            key = " ".join(TOKEN.findall(term))
            words[key] = max(float(weight), words.get(key, 0.0))
            starts.setdefault(key.split()[0], set()).add(len(key.split()))
    return words, substrings, priors, {w: sorted(n) for w, n in starts.items()}


def sea_relevance(texts: list[str], lang: str | None, lexicon=None) -> tuple[float, list[str]]:
    """(score in [0, 1), matched terms): 1 - exp(-sum of the weights of the distinct lexicon terms found in
    `texts` (caption and metadata), plus the prior of the caption's language)."""
    words, substrings, priors, starts = lexicon or load_lexicon()
    found: dict[str, float] = {}
    for text in texts:
        text = unicodedata.normalize("NFKC", text).casefold()
        tokens = TOKEN.findall(text)
        for i, token in enumerate(tokens):
            for n in starts.get(token, ()):
                gram = " ".join(tokens[i:i + n]) if n > 1 else token
                if gram in words:
                    found[gram] = words[gram]
        if UNSPACED.search(text):
            found.update({t: w for t, w in substrings.items() if t in text})
    total = sum(found.values()) + priors.get(lang or "", 0.0)
    return 1.0 - math.exp(-total), sorted(found)


# --- image-text similarity (optional) ------------------------------------------------------------------------

class ClipScorer:
    """Cosine similarity of image and caption embeddings from a transformers CLIP model folder.

    Any encoder with `get_image_features`/`get_text_features` fits the same interface (an open_clip model can
    be wrapped to it; open-clip-torch is not a dependency: it needs torchvision)."""

    def __init__(self, model_dir: str):
        import torch
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        from components.common import storage

        local = storage.localize(model_dir)
        self.torch = torch
        self.model = AutoModel.from_pretrained(local, trust_remote_code=False).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(local)
        self.images = AutoImageProcessor.from_pretrained(local, use_fast=False)

    def scores(self, images: list, captions: list[str]) -> list[float]:
        torch = self.torch
        with torch.no_grad():
            pixels = self.images(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
            text = self.tokenizer(captions, padding=True, truncation=True, return_tensors="pt")
            img = self.model.get_image_features(pixel_values=pixels)
            txt = self.model.get_text_features(**text)
            img = getattr(img, "pooler_output", img)
            txt = getattr(txt, "pooler_output", txt)
            img = torch.nn.functional.normalize(img.float(), dim=-1)
            txt = torch.nn.functional.normalize(txt.float(), dim=-1)
        return (img * txt).sum(-1).tolist()
