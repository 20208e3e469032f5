"""Score tables. A model's table maps `<task>/<lang>/<metric>` to a value; `aggregate` adds the mean over
languages of each task (`<task>/all/<metric>`) and the overall figures the gate compares (`overall/<group>`).
`Scores` holds the tables of every model evaluated side by side, by role."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

ROLES = ("base", "cpt", "candidate", "champion")  # report column order


def aggregate(table: dict[str, float], groups: dict[str, str]) -> dict[str, float]:
    """`<task>/all/<metric>` means over languages, and `overall/<group>`: the mean of every per-language value
    of the tasks that count towards that group (`groups` maps task -> group, e.g. demo_captions -> captioning)."""
    by_task: dict[tuple[str, str], list[float]] = {}
    for key, value in table.items():
        task, _lang, metric = key.split("/")
        by_task.setdefault((task, metric), []).append(value)
    out = {f"{task}/all/{metric}": sum(v) / len(v) for (task, metric), v in by_task.items()}
    by_group: dict[str, list[float]] = {}
    for (task, _metric), values in by_task.items():
        if task in groups:
            by_group.setdefault(groups[task], []).extend(values)
    out.update({f"overall/{group}": sum(v) / len(v) for group, v in by_group.items()})
    return out


@dataclass
class Scores:
    """{role: {"<task>/<lang>/<metric>": value}} plus per-item outputs, for every model evaluated."""
    by_role: dict[str, dict[str, float]] = field(default_factory=dict)
    samples: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def roles(self) -> list[str]:
        return [r for r in ROLES if r in self.by_role] + [r for r in self.by_role if r not in ROLES]

    def to_json(self) -> str:
        return json.dumps({"scores": self.by_role, "samples": self.samples}, ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Scores:
        doc = json.loads(text)
        return cls(doc["scores"], doc.get("samples", {}))
