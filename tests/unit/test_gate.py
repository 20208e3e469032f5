"""The promotion gate's decisions."""
import json

from components.register.core import decide, gate

BASE = {"summary/captioning": 0.10, "summary/text": 70.0}


def test_better_captions_and_same_text_promote():
    d = decide({"summary/captioning": 1.5, "summary/text": 70.0}, BASE, text_tolerance=2.0)
    assert d.promote and len(d.reasons) == 2


def test_text_loss_within_tolerance_promotes_beyond_it_does_not():
    assert decide({"summary/captioning": 1.5, "summary/text": 68.5}, BASE, text_tolerance=2.0).promote
    d = decide({"summary/captioning": 1.5, "summary/text": 67.9}, BASE, text_tolerance=2.0)
    assert not d.promote and "text: candidate 67.9000 < base 70.0000" in d.reasons[1]


def test_worse_captioning_does_not_promote_unless_tolerated():
    worse = {"summary/captioning": 0.05, "summary/text": 75.0}
    assert not decide(worse, BASE, text_tolerance=2.0).promote
    assert decide(worse, BASE, text_tolerance=2.0, caption_tolerance=0.1).promote


def test_missing_scores_never_promote():
    d = decide({"summary/text": 80.0}, BASE, text_tolerance=2.0)
    assert not d.promote and "missing" in d.reasons[0]


def test_gate_reads_the_evaluate_steps_scores_json():
    doc = json.dumps({"scores": {"base": BASE, "candidate": {"summary/captioning": 2.0, "summary/text": 71.0}}})
    assert gate(doc, text_tolerance=0.0).promote
