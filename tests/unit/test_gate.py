"""The promotion gate's decisions on SEA-HELM aggregates (0-100)."""
from components.register.core import decide, version_tags

BASE = {"overall/vision": 40.0, "overall/text": 70.0, "seahelm/id/vision": 40.0, "seahelm/id/text": 70.0,
        "seahelm/th/text": 70.0}


def candidate(**changes) -> dict:
    return {**BASE, "overall/vision": 50.0, "seahelm/id/vision": 50.0, **{k.replace("__", "/"): v
                                                                          for k, v in changes.items()}}


def test_better_vision_and_same_text_promote():
    d = decide(candidate(), BASE, text_tolerance=2.0)
    assert d.promote and len(d.reasons) == 2
    assert d.markdown().startswith("Gate: **promote**")


def test_text_loss_within_tolerance_promotes_beyond_it_does_not():
    assert decide(candidate(overall__text=68.5), BASE, text_tolerance=2.0).promote
    d = decide(candidate(overall__text=67.9), BASE, text_tolerance=2.0)
    assert not d.promote and "text (overall): candidate 67.90 < base 70.00 - tolerance 2" in d.reasons
    assert "**do not promote**" in d.markdown()


def test_one_language_falling_beyond_the_language_tolerance_does_not_promote():
    ok = candidate(**{"seahelm__th__text": 66.0})
    assert decide(ok, BASE, text_tolerance=2.0, language_tolerance=5.0).promote
    d = decide(candidate(**{"seahelm__th__text": 64.0}), BASE, text_tolerance=2.0, language_tolerance=5.0)
    assert not d.promote and "text (th): candidate 64.00 < base 70.00 - tolerance 5" in d.reasons


def test_worse_vision_does_not_promote_unless_tolerated():
    worse = candidate(overall__vision=39.0, seahelm__id__vision=39.0)
    assert not decide(worse, BASE, text_tolerance=2.0).promote
    assert decide(worse, BASE, text_tolerance=2.0, vision_tolerance=1.5).promote


def test_missing_scores_never_promote():
    d = decide({"overall/text": 80.0}, BASE, text_tolerance=2.0)
    assert not d.promote and "missing" in d.reasons[0]


def test_version_tags_carry_lineage_scores_and_verdict():
    tags = version_tags({"candidate": {"overall/text": 71.0, "seahelm/total": 55.0, "en/x": 1.0},
                         "base": {"overall/vision": 40.0}}, True, "why", {"git_commit": "abc"})
    assert tags == {"git_commit": "abc", "candidate.text": "71.0000", "candidate.total": "55.0000",
                    "base.vision": "40.0000", "gate.promote": "true", "gate.reasons": "why"}
