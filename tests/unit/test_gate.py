"""The promotion gate's decisions."""
from components.register.core import decide, version_tags

BASE = {"overall/captioning": 0.10, "overall/text": 70.0}


def test_better_captions_and_same_text_promote():
    d = decide({"overall/captioning": 1.5, "overall/text": 70.0}, BASE, text_tolerance=2.0)
    assert d.promote and len(d.reasons) == 2
    assert d.markdown().startswith("Gate: **promote**")


def test_text_loss_within_tolerance_promotes_beyond_it_does_not():
    assert decide({"overall/captioning": 1.5, "overall/text": 68.5}, BASE, text_tolerance=2.0).promote
    d = decide({"overall/captioning": 1.5, "overall/text": 67.9}, BASE, text_tolerance=2.0)
    assert not d.promote and "text: candidate 67.9000 < base 70.0000" in d.reasons[1]
    assert "**do not promote**" in d.markdown()


def test_worse_captioning_does_not_promote_unless_tolerated():
    worse = {"overall/captioning": 0.05, "overall/text": 75.0}
    assert not decide(worse, BASE, text_tolerance=2.0).promote
    assert decide(worse, BASE, text_tolerance=2.0, caption_tolerance=0.1).promote


def test_missing_scores_never_promote():
    d = decide({"overall/text": 80.0}, BASE, text_tolerance=2.0)
    assert not d.promote and "missing" in d.reasons[0]


def test_version_tags_carry_lineage_scores_and_verdict():
    tags = version_tags({"candidate": {"overall/text": 71.0, "en/x": 1.0}, "base": BASE}, True, "why",
                        {"git_commit": "abc"})
    assert tags == {"git_commit": "abc", "candidate.text": "71.0000", "base.captioning": "0.1000",
                    "base.text": "70.0000", "gate.promote": "true", "gate.reasons": "why"}
