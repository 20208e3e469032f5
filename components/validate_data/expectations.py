"""The dataset-level expectations: one line each, with its intent, as great-expectations expectations.

Row-level problems never stop a run: rows.py quarantines them with a reason. These rules judge the dataset
as a whole, on three small tables the merge step builds (never the 10M rows): `summary` (one row of counts),
`languages` (one row per requested language) and `sample` (the first curated rows, for the schema).
`critical` rules stop the pipeline before any GPU time is spent; the others are reported as warnings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    table: str                # summary | languages | sample
    expectation: str          # great_expectations.expectations class name
    kwargs: dict[str, Any]
    critical: bool
    intent: str


def dataset_rules(columns: list[str], max_quarantined: float, min_share: float, languages: list[str],
                  min_rows: int = 1) -> list[Rule]:
    rules = [
        Rule("sample", "ExpectTableColumnsToMatchOrderedList", dict(column_list=columns), True,
             "the curated files have exactly the schema training reads"),
        Rule("summary", "ExpectColumnValuesToBeBetween", dict(column="rows_curated", min_value=min_rows), True,
             "there is something to train on"),
        Rule("summary", "ExpectColumnPairValuesToBeEqual", dict(column_A="rows_in", column_B="rows_accounted"), True,
             "nothing is lost: rows in = curated + quarantined (+ not selected)"),
        Rule("summary", "ExpectColumnValuesToBeBetween",
             dict(column="quarantined_fraction", min_value=0.0, max_value=max_quarantined), True,
             "a few broken rows are expected at scale; many mean a broken source or a wrong setting"),
        Rule("summary", "ExpectColumnValuesToBeBetween", dict(column="ids_in_both", min_value=0, max_value=0), True,
             "a row is either curated or quarantined, never both"),
        Rule("summary", "ExpectColumnValuesToBeBetween", dict(column="shards_damaged", min_value=0, max_value=0),
             False, "every shard read to its end (a damaged shard loses the samples after the damage)"),
        Rule("sample", "ExpectColumnValuesToNotBeNull", dict(column="id"), True, "every row can be traced"),
        Rule("sample", "ExpectColumnValuesToBeUnique", dict(column="id"), True, "ids identify rows"),
    ]
    if languages:
        rules += [
            Rule("languages", "ExpectColumnValuesToBeBetween", dict(column="share", min_value=min_share), True,
                 "every requested language is present with at least its minimum share"),
            Rule("sample", "ExpectColumnValuesToBeInSet", dict(column="lang", value_set=languages), True,
                 "only the languages the run trains"),
            Rule("sample", "ExpectColumnValuesToNotBeNull", dict(column="lang_score", mostly=0.5), False,
                 "language identification confirms most rows (it abstains on short text and unknown languages)"),
        ]
    return rules


def build_suite(name: str, rules: list[tuple[int, Rule]]):
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=name)
    for i, rule in rules:
        # meta.rule ties each result back to its rule: GX may evaluate expectations in another order.
        suite.add_expectation(getattr(gxe, rule.expectation)(**rule.kwargs, meta={
            "rule": i, "critical": rule.critical, "intent": rule.intent}))
    return suite
