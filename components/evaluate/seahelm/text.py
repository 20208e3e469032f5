"""SEA-HELM's text-task metrics (src/metrics/*.py @6844e6c), each on 0-100.

- QA: SQuAD token F1 and exact match, the best over an item's references (Thai and Chinese: the first only, as
  SEA-HELM does), after lower-casing, removing ASCII punctuation and collapsing whitespace; Thai is
  word-segmented first (pythainlp, newmm) and Chinese too (jieba), as SEA-HELM does. `normalized_f1` = F1
  (its chance level is 0).
- Translation: MetricX-24 as SEA-HELM runs it when its checkpoint is given; else chrF++ (sacrebleu, character
  6-grams + word 2-grams), SEA-HELM's fallback where MetricX-24 is not run.
- Summarisation: ROUGE-L F1 (rouge-score's LCS; Thai and Chinese word-segmented first, any script kept).
"""
from __future__ import annotations

import string
from collections import Counter
from pathlib import Path


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


METRICX_TOKEN = 250089          # <extra_id_10>: the logit MetricX-24 reads its score from
METRICX_MAX_LENGTH = 1536
METRICX_PROMPT = "source: {source} candidate: {candidate} reference: {reference}"


class MetricX:
    """MetricX-24 (google/metricx-24-hybrid-xxl-v2p6-bfloat16), as SEA-HELM runs it for translation
    (src/serving/offline/metricx_serving.py, metricx_models.py): "source: ... candidate: ... reference: ..."
    tokenised with mT5's tokenizer (at most 1,536 tokens, the last token dropped), one decoder step from token 0,
    the score is the logit of <extra_id_10> clamped to [0, 25] (0 best).

    `folder` holds the checkpoint (safetensors) and the mT5 tokenizer files, saved side by side. The encoder and
    decoder load as transformers' MT5Model; the logit needs only row 250089 of the checkpoint's own, untied
    `lm_head` (transformers' MT5ForConditionalGeneration would tie the head to the input embeddings, which is not
    MetricX's model), read from the weights file directly."""

    def __init__(self, folder: str, device: str | None = None, batch_size: int = 8):
        import torch
        from transformers import AutoTokenizer, MT5Model

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = MT5Model.from_pretrained(folder, dtype="auto").to(self.device).eval()
        self.head = _lm_head_row(Path(folder), METRICX_TOKEN).to(self.device, self.model.dtype)
        self.batch_size = batch_size

    def scores(self, sources: list[str], candidates: list[str], references: list[str]) -> list[float]:
        """MetricX-24 score of each candidate, 0 (best) to 25."""
        import torch

        prompts = [METRICX_PROMPT.format(source=s, candidate=c, reference=r)
                   for s, c, r in zip(sources, candidates, references, strict=True)]
        out: list[float] = []
        for i in range(0, len(prompts), self.batch_size):
            tokens = self.tokenizer(prompts[i:i + self.batch_size], truncation=True, padding=True,
                                    max_length=METRICX_MAX_LENGTH, return_tensors="pt")
            ids, mask = tokens["input_ids"][:, :-1].to(self.device), tokens["attention_mask"][:, :-1].to(self.device)
            start = torch.zeros((ids.shape[0], 1), dtype=torch.long, device=self.device)
            with torch.no_grad():
                hidden = self.model(input_ids=ids, attention_mask=mask, decoder_input_ids=start).last_hidden_state
            out += torch.clamp((hidden[:, 0, :] @ self.head).float(), 0, 25).cpu().tolist()
        return out


def _lm_head_row(folder: Path, row: int):
    """Row `row` of `lm_head.weight` from a safetensors checkpoint (one file, or shards named by its index)."""
    import json

    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    if index.exists():
        name = json.loads(index.read_text())["weight_map"].get("lm_head.weight")
    else:
        name = "model.safetensors" if (folder / "model.safetensors").exists() else None
    if name is None:
        raise ValueError(f"{folder} holds no safetensors checkpoint with an lm_head.weight (MetricX-24's untied "
                         "head); convert a pytorch_model.bin with save_pretrained(safe_serialization=True)")
    with safe_open(str(folder / name), framework="pt") as f:
        if "lm_head.weight" not in f.keys():  # noqa: SIM118 (safe_open has keys(), no __contains__)
            raise ValueError(f"{folder / name} has no lm_head.weight: MetricX-24's head is untied")
        return f.get_slice("lm_head.weight")[row]


def metricx_metrics(scores: list[float]) -> tuple[dict, list[float]]:
    """SEA-HELM's figures from MetricX-24 scores: the mean raw score and the mean of 100 x max((25 - s) / 25, 0)."""
    per = [100 * max((25 - s) / 25, 0.0) for s in scores]
    return ({"metricx_wmt24_scores": sum(scores) / len(scores),
             "normalized_metricx_wmt24_scores": sum(per) / len(per)}, per)
