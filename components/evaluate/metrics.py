"""Evaluators: pure metric functions returning numbers or dicts.

CIDEr is pycocoevalcap's CIDEr-D; it splits on whitespace, so text is pre-tokenised here: lower-cased,
punctuation dropped, and scripts written without spaces (Chinese, Japanese, Thai, Lao, Khmer, Burmese)
split into characters, the usual practice for those languages in XM3600 evaluations. chrF comes from
sacrebleu. Multiple-choice accuracy compares the chosen option index with the gold one.
"""
from __future__ import annotations

import unicodedata

UNSPACED_LANGS = {"zh", "ja", "th", "lo", "km", "my"}


def tokenize(text: str, lang: str) -> str:
    """Whitespace-joined tokens of `text` for CIDEr: lower-case, no punctuation, characters for unspaced scripts."""
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text.lower())
    if lang in UNSPACED_LANGS:
        tokens = []
        for word in text.split():
            # keep combining marks (Thai vowels and tones) with their base character
            for ch in word:
                if tokens and unicodedata.category(ch).startswith("M") and tokens[-1] != " ":
                    tokens[-1] += ch
                else:
                    tokens.append(ch)
        return " ".join(tokens)
    return " ".join(text.split())


def cider(references: dict[str, list[str]], hypotheses: dict[str, str], lang: str) -> tuple[float, dict[str, float]]:
    """CIDEr-D of one hypothesis per id against its references; (corpus score, per-id scores).

    Document frequencies come from this call's references only, so compare models on the same item set.
    """
    from pycocoevalcap.cider.cider import Cider

    if set(references) != set(hypotheses):
        raise ValueError("references and hypotheses must cover the same ids")
    if not references:
        return 0.0, {}
    ids = sorted(references)
    gts = {i: [tokenize(r, lang) for r in references[i]] for i in ids}
    res = {i: [tokenize(hypotheses[i], lang)] for i in ids}
    score, per_item = Cider().compute_score(gts, res)
    return float(score), {i: float(s) for i, s in zip(ids, per_item, strict=True)}


def chrf(hypotheses: list[str], references: list[list[str]]) -> float:
    """Corpus chrF (sacrebleu defaults: character 6-grams, beta 2), 0-100."""
    from sacrebleu.metrics import CHRF

    if not hypotheses:
        return 0.0
    n_refs = max(len(r) for r in references)
    streams = [[refs[k] if k < len(refs) else refs[0] for refs in references] for k in range(n_refs)]
    return float(CHRF().corpus_score(hypotheses, streams).score)


def accuracy(predicted: list[int], gold: list[int]) -> float:
    if len(predicted) != len(gold):
        raise ValueError("predicted and gold differ in length")
    return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold) if gold else 0.0
