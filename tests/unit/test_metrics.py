"""Metric functions against hand-worked cases."""
import math

import pytest

from components.evaluate import metrics


def test_cider_hand_worked_case():
    # Two items with disjoint words, so every n-gram has document frequency 1 and weight ln(2).
    refs = {"a": ["red circle left"], "b": ["blue square right"]}
    hyps = {"a": "red circle", "b": "blue square right"}
    score, per_item = metrics.cider(refs, hyps, "en")
    # b matches its reference exactly: cosine 1 for n = 1..3; CIDEr-D averages n = 1..4 and a
    # three-word sentence has no 4-gram (cosine 0), so 10 * (1 + 1 + 1 + 0) / 4 = 7.5.
    assert per_item["b"] == pytest.approx(7.5, abs=1e-6)
    # a: unigram cosine 2/sqrt(6), bigram 1/sqrt(2), no trigram or 4-gram in the hypothesis; the length
    # penalty uses bigram counts (2 vs 1): exp(-1 / (2 * 6^2)).
    expected_a = 10 * (2 / math.sqrt(6) + 1 / math.sqrt(2)) / 4 * math.exp(-1 / 72)
    assert per_item["a"] == pytest.approx(expected_a, abs=1e-6)
    assert score == pytest.approx((expected_a + 7.5) / 2, abs=1e-6)


def test_cider_wrong_caption_scores_zero_and_ids_must_match():
    score, _ = metrics.cider({"a": ["red circle"], "b": ["blue square"]}, {"a": "green", "b": "yellow"}, "en")
    assert score == 0.0
    with pytest.raises(ValueError):
        metrics.cider({"a": ["x"]}, {"b": "x"}, "en")


def test_tokenize_splits_unspaced_scripts_and_drops_punctuation():
    assert metrics.tokenize("Two RED circles, left.", "en") == "two red circles left"
    assert metrics.tokenize("左边有两个", "zh") == "左 边 有 两 个"
    # Thai vowels and tone marks stay with their consonant
    assert metrics.tokenize("สีแดง", "th").split() == ["สี", "แ", "ด", "ง"]


def test_chrf_and_accuracy():
    assert metrics.chrf(["dua lingkaran merah"], [["dua lingkaran merah"]]) == pytest.approx(100.0)
    assert metrics.chrf(["zzz"], [["dua lingkaran merah"]]) < 5
    assert metrics.accuracy([0, 1, 2, 3], [0, 1, 0, 0]) == 0.5
