"""The caption manifest's data rules: one line each, with its intent, as great-expectations expectations.

`critical` rules stop the pipeline before any GPU time is spent; the others are reported as warnings.
Derived columns (`image_status`, `caption_chars`) are computed by core.py before validation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.common.records import CAPTION_REQUIRED


@dataclass(frozen=True)
class Rule:
    expectation: str          # great_expectations.expectations class name
    kwargs: dict[str, Any]
    critical: bool
    intent: str


def caption_rules(languages: list[str], min_chars: int, max_chars: int) -> list[Rule]:
    return [
        Rule("ExpectTableColumnsToMatchSet", dict(column_set=list(CAPTION_REQUIRED), exact_match=False), True,
             "every record has the fields CPT reads"),
        Rule("ExpectTableRowCountToBeBetween", dict(min_value=1), True,
             "there is something to train on"),
        Rule("ExpectColumnValuesToNotBeNull", dict(column="id"), True, "every record can be traced"),
        Rule("ExpectColumnValuesToBeUnique", dict(column="id"), True,
             "ids identify records (lineage, dedupe, resume)"),
        Rule("ExpectColumnValuesToNotBeNull", dict(column="caption"), True, "a pair without text teaches nothing"),
        Rule("ExpectColumnValuesToBeBetween", dict(column="caption_chars", min_value=min_chars, max_value=max_chars),
             True, "captions are non-empty and short enough to fit the sequence budget"),
        Rule("ExpectColumnValuesToBeInSet", dict(column="lang", value_set=languages), True,
             "only the languages the model is trained for"),
        Rule("ExpectColumnValuesToBeInSet", dict(column="image_status", value_set=["ok"]), True,
             "every image exists and decodes"),
        Rule("ExpectCompoundColumnsToBeUnique", dict(column_list=["image", "lang", "caption"]), False,
             "the same pair twice is weighted twice (warning: dropped from the curated manifest)"),
        Rule("ExpectColumnValuesToNotBeNull", dict(column="source"), False, "provenance is known"),
    ]


def build_suite(name: str, rules: list[Rule]):
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=name)
    for i, rule in enumerate(rules):
        # meta.rule ties each result back to its rule: GX may evaluate expectations in another order.
        expectation = getattr(gxe, rule.expectation)(**rule.kwargs, meta={"rule": i, "critical": rule.critical,
                                                                          "intent": rule.intent})
        suite.add_expectation(expectation)
    return suite
