"""The comparison report, written like a model release: where the figures depart from SEA-HELM's, SEA-HELM's
aggregated table (total, languages, competencies) for every model, per-language bar charts of each competency
with one bar per model, every task and language with the candidate's paired bootstrap 95% intervals against each
other model, every secondary metric, and example outputs. As Markdown and as one self-contained HTML page (KFP
visualization, MLflow artifact)."""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

from components.common.scores import Scores


@dataclass
class Table:
    id: str
    title: str
    header: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", "| " + " | ".join(self.header) + " |",
                 "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        return (f"<h2>{html.escape(self.title)}</h2><table id='{self.id}' border='1' cellspacing='0' "
                f"cellpadding='3'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _cell(table: dict, key: str) -> str:
    return f"{table[key]:.2f}" if key in table else "-"


def _languages(scores: Scores) -> list[str]:
    return sorted({k.split("/")[1] for t in scores.by_role.values() for k in t
                   if k.startswith("seahelm/") and k.count("/") == 2})


def _competencies(scores: Scores, lang: str) -> list[str]:
    return sorted({k.split("/")[2] for t in scores.by_role.values() for k in t
                   if k.startswith(f"seahelm/{lang}/")} - {"score", "text"})


def aggregate_table(scores: Scores) -> Table:
    roles = scores.roles
    rows = [["total", "", *(_cell(scores.by_role[r], "seahelm/total") for r in roles)]]
    for lang in _languages(scores):
        rows.append([lang, "language score", *(_cell(scores.by_role[r], f"seahelm/{lang}/score") for r in roles)])
        rows += [[lang, c, *(_cell(scores.by_role[r], f"seahelm/{lang}/{c}") for r in roles)]
                 for c in _competencies(scores, lang)]
    return Table("aggregate", "SEA-HELM aggregates (0-100)", ["language", "competency", *roles], rows)


def _task_keys(scores: Scores) -> list[tuple[str, str, str]]:
    """(task, lang, headline metric) of every task and language any model was scored on."""
    found = set()
    for table in scores.by_role.values():
        for key in table:
            task, _, rest = key.partition("/")
            if task in scores.headline and rest.count("/") == 1:
                lang, metric = rest.split("/")
                if metric == scores.headline[task]:
                    found.add((task, lang, metric))
    return sorted(found)


def task_table(scores: Scores) -> Table:
    roles = scores.roles
    others = [r for r in roles if r != "candidate"] if "candidate" in roles else []
    rows = []
    for task, lang, metric in _task_keys(scores):
        row = [task, lang, metric, *(_cell(scores.by_role[r], f"{task}/{lang}/{metric}") for r in roles)]
        for other in others:
            d = scores.differences.get(f"{other}/{task}/{lang}")
            row.append(f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]" if d else "-")
        rows.append(row)
    return Table("tasks", "Tasks (headline metric; candidate minus each model, paired bootstrap 95% interval)",
                 ["task", "lang", "metric", *roles, *(f"Δ vs {o}" for o in others)], rows)


def metric_table(scores: Scores) -> Table:
    roles = scores.roles
    keys = sorted({k for t in scores.by_role.values() for k in t
                   if k.split("/")[0] in scores.headline and k.count("/") == 2})
    return Table("metrics", "Every metric", ["task", "lang", "metric", *roles],
                 [[*k.split("/"), *(_cell(scores.by_role[r], k) for r in roles)] for k in keys])


def example_table(scores: Scores) -> Table:
    rows = []
    for role in scores.roles:
        for s in scores.samples.get(role, []):
            gold = s["gold"] if isinstance(s["gold"], str) else " | ".join(map(str, s["gold"]))
            rows.append([role, s["key"], str(s["id"]), str(s.get("response") or "")[:300], str(s["answer"])[:200],
                         gold[:300], f"{s['score']:.1f}"])
    return Table("examples", "Example outputs", ["model", "task/lang", "id", "response", "extracted", "gold",
                                                  "score"], rows)


def bar_chart(scores: Scores, path: Path) -> Path:
    """One panel per competency and one for the language score: languages along x, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roles, langs = scores.roles, _languages(scores)
    panels = ["score", *sorted({c for lang in langs for c in _competencies(scores, lang)})]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.6 * len(panels)), squeeze=False)
    width = 0.8 / max(1, len(roles))
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        for i, role in enumerate(roles):
            vals = [scores.by_role[role].get(f"seahelm/{lang}/{panel}", 0.0) for lang in langs]
            ax.bar([x + i * width for x in range(len(langs))], vals, width, label=role)
        ax.set_xticks([x + width * (len(roles) - 1) / 2 for x in range(len(langs))], langs)
        ax.set_ylim(0, 100)
        ax.set_title("language score" if panel == "score" else panel)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def tables(scores: Scores) -> list[Table]:
    return [aggregate_table(scores), task_table(scores), metric_table(scores), example_table(scores)]


def markdown(scores: Scores, title: str = "Evaluation") -> str:
    notes = "".join(f"- {n}\n" for n in scores.notes)
    return f"# {title}\n\n{notes}\n" + "\n".join(t.markdown() for t in tables(scores))


def html_page(scores: Scores, chart: Path, title: str = "Evaluation") -> str:
    img = base64.b64encode(chart.read_bytes()).decode()
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in scores.notes)
    parts = [t.html() for t in tables(scores)]
    return (f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1><ul id='notes'>{notes}</ul>{parts[0]}"
            f"<h2>Per language</h2><img alt='per-language scores' src='data:image/png;base64,{img}'/>"
            f"{''.join(parts[1:])}</body></html>")


def write_report(scores: Scores, out_dir: Path, title: str = "Evaluation") -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chart = bar_chart(scores, out_dir / "per_language.png")
    paths = {"markdown": out_dir / "report.md", "html": out_dir / "report.html", "chart": chart,
             "scores": out_dir / "scores.json"}
    paths["markdown"].write_text(markdown(scores, title), encoding="utf-8")
    paths["html"].write_text(html_page(scores, chart, title), encoding="utf-8")
    paths["scores"].write_text(scores.to_json(), encoding="utf-8")
    return paths
