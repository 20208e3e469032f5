"""SEA-HELM's text-task metrics (src/metrics/*.py @6844e6c), each on 0-100.

- QA: SQuAD token F1 and exact match, the best over an item's references (Thai and Chinese: the first only, as
  SEA-HELM does), after lower-casing, removing ASCII punctuation and collapsing whitespace; Thai is
  word-segmented first (pythainlp, newmm) and Chinese too (jieba), as SEA-HELM does. `normalized_f1` = F1
  (its chance level is 0).
- Translation: chrF++ (sacrebleu, character 6-grams + word 2-grams), SEA-HELM's fallback where MetricX-24 is
  not run.
- Summarisation: ROUGE-L F1 (rouge-score's LCS; Thai and Chinese word-segmented first, any script kept).
"""
from __future__ import annotations

import string
from collections import Counter


def _normalize(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(text.split())


def _segment(text: str, lang: str) -> str:
    """Thai and Chinese split into words first (pythainlp newmm, jieba), as SEA-HELM's QA metric does."""
    if lang == "th":
        from pythainlp import word_tokenize

        return " ".join(word_tokenize(text, engine="newmm"))
    if lang == "zh":
        import jieba

        return " ".join(jieba.cut(text))
    return text


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = _normalize(prediction).split(), _normalize(reference).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def qa_metrics(predictions: list[str], references: list[list[str]], lang: str = "en") -> tuple[dict, list[float]]:
    """({"exact_match", "f1", "normalized_f1"}, per-item F1 x 100)."""
    if len(predictions) != len(references):
        raise ValueError("one list of references per prediction")
    if not predictions:
        raise ValueError("no items to score")
    f1s, exact = [], []
    for pred, refs in zip(predictions, references, strict=True):
        pred = _segment(pred, lang)
        # SEA-HELM scores Thai and Chinese against their first reference only (question_answering.py)
        refs = [_segment(r, lang) for r in (refs[:1] if lang in ("th", "zh") else refs)]
        f1s.append(max(token_f1(pred, r) for r in refs))
        exact.append(max(float(_normalize(pred) == _normalize(r)) for r in refs))
    f1 = 100 * sum(f1s) / len(f1s)
    return ({"exact_match": 100 * sum(exact) / len(exact), "f1": f1, "normalized_f1": max(f1, 0.0)},
            [100 * f for f in f1s])


def chrf_pp(predictions: list[str], references: list[list[str]]) -> float:
    """Corpus chrF++ (sacrebleu CHRF(word_order=2)), 0-100."""
    from components.evaluate.metrics import chrf

    return chrf(predictions, references, word_order=2)


def sentence_chrf_pp(predictions: list[str], references: list[list[str]]) -> list[float]:
    """chrF++ of each item on its own (0-100): what the paired bootstrap resamples. Its mean is close to, not
    equal to, the corpus figure, which sums n-gram statistics over items before taking the F-score."""
    from sacrebleu.metrics import CHRF

    metric = CHRF(word_order=2)
    return [float(metric.sentence_score(p, refs).score) for p, refs in zip(predictions, references, strict=True)]


class _Tokenizer:
    """rouge-score's tokenizer interface over SEA-HELM's segmentation: Thai and Chinese split into words first,
    then lower-cased whitespace tokens (rouge-score's default keeps ASCII letters and digits only, which would
    leave a Thai or Tamil summary with no tokens)."""

    def __init__(self, lang: str):
        self.lang = lang

    def tokenize(self, text: str) -> list[str]:
        import unicodedata

        text = unicodedata.normalize("NFKC", _segment(text, self.lang)).lower()
        return "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text).split()


def rouge_l(predictions: list[str], references: list[str], lang: str = "en") -> tuple[float, list[float]]:
    """Mean ROUGE-L F1 x 100 and per item (rouge-score's LCS over the tokens of `_Tokenizer`)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Tokenizer(lang))
    per = [100 * scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references,
                                                                                strict=True)]
    return sum(per) / len(per), per
