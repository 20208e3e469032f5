"""Evaluators: pure metric functions returning numbers or dicts.

CIDEr is pycocoevalcap's CIDEr-D; it splits on whitespace, so text is pre-tokenised here: NFKC-normalised (an NFD
Vietnamese caption equals its NFC reference), lower-cased, punctuation dropped; Thai, Lao, Khmer and Burmese,
written without spaces, split into grapheme clusters (a base character with its vowel and tone marks); Chinese
and Japanese into characters, with runs of Latin letters and digits kept whole ("iPhone 15" is two tokens, not
eight). References that tokenise to nothing are dropped (pycocoevalcap fails on them), and CIDEr needs at least
two items, since its weights come from document frequencies over the items scored together. chrF comes from
sacrebleu.
"""
from __future__ import annotations

import logging
import unicodedata

log = logging.getLogger(__name__)

CLUSTER_LANGS = {"th", "lo", "km", "my"}   # no spaces between words: grapheme clusters
CHARACTER_LANGS = {"zh", "ja"}             # characters, Latin and digit runs whole
UNSPACED_LANGS = CLUSTER_LANGS | CHARACTER_LANGS


def tokenize(text: str, lang: str) -> str:
    """Whitespace-joined CIDEr tokens of `text` (see the module docstring)."""
    import regex

    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    if lang in CLUSTER_LANGS:
        tokens = [t for t in regex.findall(r"\X", text) if not t.isspace()]
    elif lang in CHARACTER_LANGS:
        tokens = [t for t in regex.findall(r"[\p{Latin}\p{N}]+|\X", text) if not t.isspace()]
    else:
        tokens = text.split()
    return " ".join(tokens)


class TooFewItems(ValueError):
    """CIDEr over fewer than two items: every n-gram's document frequency equals the item count, so every
    weight, and the score, would be 0 whatever the captions."""


def cider(references: dict[str, list[str]], hypotheses: dict[str, str], lang: str) -> tuple[float, dict[str, float]]:
    """CIDEr-D of one hypothesis per id against its references; (corpus score, per-id scores).

    Document frequencies come from this call's references only, so compare models on the same item set. Items
    whose references all tokenise to nothing are left out (and logged)."""
    from pycocoevalcap.cider.cider import Cider

    if set(references) != set(hypotheses):
        raise ValueError("references and hypotheses must cover the same ids")
    gts = {}
    for i in sorted(references):
        refs = [t for t in (tokenize(r, lang) for r in references[i]) if t]
        if refs:
            gts[i] = refs
    dropped = len(references) - len(gts)
    if dropped:
        log.warning("CIDEr: %d item(s) have no reference left after tokenisation and are not scored", dropped)
    if len(gts) < 2:
        raise TooFewItems(f"CIDEr needs at least two items with references, got {len(gts)}")
    ids = sorted(gts)
    res = {i: [tokenize(hypotheses[i], lang)] for i in ids}
    score, per_item = Cider().compute_score(gts, res)
    return float(score), {i: float(s) for i, s in zip(ids, per_item, strict=True)}


def chrf(hypotheses: list[str], references: list[list[str]], word_order: int = 0) -> float:
    """Corpus chrF (sacrebleu defaults: character 6-grams, beta 2), 0-100; `word_order=2` is chrF++."""
    from sacrebleu.metrics import CHRF

    if not hypotheses:
        return 0.0
    n_refs = max(len(r) for r in references)
    streams = [[refs[k] if k < len(refs) else refs[0] for refs in references] for k in range(n_refs)]
    return float(CHRF(word_order=word_order).corpus_score(hypotheses, streams).score)
