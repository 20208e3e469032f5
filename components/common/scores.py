"""Score tables side by side. A model's table maps names such as `<task>/<lang>/<metric>`, `seahelm/<lang>/score`
and `overall/<side>` to values (components/evaluate/core.py); `Scores` holds the tables of every model evaluated,
by role, with the candidate's paired bootstrap intervals against each other role and the notes on where the
figures depart from SEA-HELM's."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

ROLES = ("candidate", "base", "cpt", "champion")  # report column order; reference models follow


@dataclass
class Scores:
    """{role: {"<task>/<lang>/<metric>": value}} plus per-item outputs, for every model evaluated."""
    by_role: dict[str, dict[str, float]] = field(default_factory=dict)
    samples: dict[str, list[dict]] = field(default_factory=dict)      # example outputs by role
    differences: dict[str, dict] = field(default_factory=dict)        # "<role>/<task>/<lang>" -> {mean, low, high, n}
    notes: list[str] = field(default_factory=list)
    headline: dict[str, str] = field(default_factory=dict)            # task -> the metric that stands for it
    groups: dict[str, dict] = field(default_factory=dict)  # "<base|champion>/<group>/<lang>" -> {mean, low, high, n}

    @property
    def roles(self) -> list[str]:
        return [r for r in ROLES if r in self.by_role] + [r for r in self.by_role if r not in ROLES]

    def to_json(self) -> str:
        return json.dumps({"scores": self.by_role, "samples": self.samples, "differences": self.differences,
                           "notes": self.notes, "headline": self.headline, "groups": self.groups},
                          ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Scores:
        doc = json.loads(text)
        return cls(doc["scores"], doc.get("samples", {}), doc.get("differences", {}), doc.get("notes", []),
                   doc.get("headline", {}), doc.get("groups", {}))
