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
        metrics.cider({"a": ["x"], "c": ["y"]}, {"b": "x", "c": "y"}, "en")


def test_tokenize_splits_unspaced_scripts_and_drops_punctuation():
    assert metrics.tokenize("Two RED circles, left.", "en") == "two red circles left"
    assert metrics.tokenize("左边有两个", "zh") == "左 边 有 两 个"
    # Thai vowels and tone marks stay with their consonant
    assert metrics.tokenize("สีแดง", "th").split() == ["สี", "แ", "ด", "ง"]


def test_cider_equals_pycocoevalcap_on_whitespace_tokenised_english():
    from pycocoevalcap.cider.cider import Cider

    refs = {"1": ["a red circle on the left", "one red circle left"], "2": ["two blue squares on the right"],
            "3": ["a green triangle in the middle", "green triangle centre"]}
    hyps = {"1": "a red circle", "2": "two blue squares right", "3": "a yellow triangle in the middle"}
    ours, per_item = metrics.cider(refs, hyps, "en")
    theirs, their_items = Cider().compute_score(refs, {k: [v] for k, v in hyps.items()})
    assert ours == pytest.approx(theirs, abs=1e-9)
    assert [per_item[k] for k in sorted(refs)] == pytest.approx(list(their_items), abs=1e-9)


def test_cider_tokenisation_fixes():
    # an NFD-written Vietnamese caption identical to its NFC reference is a perfect match
    import unicodedata

    ref = "hai hình tròn màu đỏ ở bên trái"
    refs = {"a": [ref], "b": ["một hình vuông xanh lam"]}
    score, per_item = metrics.cider(refs, {"a": unicodedata.normalize("NFD", ref), "b": "một hình vuông xanh lam"},
                                    "vi")
    assert per_item["a"] == pytest.approx(10.0, abs=1e-6)
    # Latin words and numbers inside Chinese stay whole
    assert metrics.tokenize("两部iPhone 15手机", "zh") == "两 部 iphone 15 手 机"
    # a reference made only of punctuation is dropped instead of crashing pycocoevalcap
    score, per_item = metrics.cider({"a": ["...", "red circle"], "b": ["blue square"], "c": ["!!"]},
                                    {"a": "red circle", "b": "blue square", "c": "x"}, "en")
    assert set(per_item) == {"a", "b"} and score > 0
    # one item alone cannot be scored: every weight would be 0
    with pytest.raises(metrics.TooFewItems):
        metrics.cider({"a": ["red circle"]}, {"a": "red circle"}, "en")


def test_chrf():
    assert metrics.chrf(["dua lingkaran merah"], [["dua lingkaran merah"]]) == pytest.approx(100.0)
    assert metrics.chrf(["zzz"], [["dua lingkaran merah"]]) < 5
