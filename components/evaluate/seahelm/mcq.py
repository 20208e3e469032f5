"""Multiple-choice scoring as SEA-HELM does it (src/metrics/f1_acc_metric.py, seahelm_metric.py @6844e6c).

- The answer is searched with `<answer tag>[\\s\\*]*(L1|L2|...)+` over the distinct gold labels, ignoring case,
  in the first response; when nothing matches, the whole response is taken instead.
- It is lower-cased, stripped of ASCII punctuation and whitespace at both ends, whitespace-collapsed, and mapped
  back to a gold label; anything else is `null`.
- `accuracy` is scikit-learn's balanced accuracy (the mean recall per gold class) x 100;
  `normalized_accuracy` = 100 x max((BA - 1/K) / (1 - 1/K), 0) with K the number of distinct gold labels, so
  that chance is 0; `null_count` counts unparsable answers. Per item, the score is exact match.
"""
from __future__ import annotations

import re
import string


def normalize_answer(text: str) -> str:
    """Lower-case, strip ASCII punctuation, spaces and newlines at both ends, collapse whitespace."""
    return " ".join(text.lower().strip(string.punctuation + " " + "\n").split())


def extract_label(response: str | None, answer_tag: str, labels: list[str], null: str = "null") -> str:
    """The gold label a response names, or `null`. `labels` are the task's distinct gold labels."""
    if response is None:
        return null
    pattern = answer_tag + r"[\s\*]*(" + "|".join(map(str, labels)) + r")+"
    found = re.search(pattern, response, flags=re.IGNORECASE)
    answer = found.group(1).strip() if found and found.group(1) is not None else response.strip()
    return {str(label).lower(): str(label) for label in labels}.get(normalize_answer(answer), null)


class TooFewLabels(ValueError):
    """Balanced accuracy normalised by chance needs at least two distinct gold labels."""


def mcq_metrics(golds: list[str], predictions: list[str], null: str = "null") -> dict:
    """SEA-HELM's figures for one task and language: normalized_accuracy, accuracy, macro_f1, null_count, n."""
    from sklearn.metrics import balanced_accuracy_score, f1_score

    if len(golds) != len(predictions):
        raise ValueError(f"{len(golds)} gold labels but {len(predictions)} predictions")
    classes = sorted(set(golds))
    if len(classes) < 2:
        raise TooFewLabels(f"the gold labels hold {len(classes)} distinct value(s) ({classes}); balanced accuracy "
                           "normalised by chance needs at least two")
    import warnings

    with warnings.catch_warnings():   # `null` is a predicted class that is never gold: expected, not a problem
        warnings.simplefilter("ignore")
        balanced = balanced_accuracy_score(golds, predictions)
        macro_f1 = f1_score(golds, predictions, average="macro")
    chance = 1 / len(classes)
    return {"normalized_accuracy": 100 * max((balanced - chance) / (1 - chance), 0.0),
            "accuracy": 100 * balanced, "macro_f1": 100 * macro_f1,
            "null_count": sum(p == null for p in predictions), "n": len(golds)}
