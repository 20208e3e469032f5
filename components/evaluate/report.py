"""The comparison report: a Markdown table of every task and language side by side for each model, and
a per-language bar chart per task, embedded in an HTML page (KFP visualization, MLflow artifact)."""
from __future__ import annotations

import base64
import html
from pathlib import Path

from components.common.scores import Scores


def markdown(scores: Scores, title: str = "Evaluation") -> str:
    roles = scores.roles
    keys = sorted({k for table in scores.by_role.values() for k in table},
                  key=lambda k: (k.startswith("overall/"), k))
    lines = [f"# {title}", "", "| task | lang | metric | " + " | ".join(roles) + " |",
             "|---|---|---|" + "---:|" * len(roles)]
    for key in keys:
        parts = key.split("/")
        task, lang, metric = (parts[0], "", parts[1]) if len(parts) == 2 else parts
        cells = [f"{scores.by_role[r][key]:.3f}" if key in scores.by_role[r] else "-" for r in roles]
        lines.append(f"| {task} | {lang} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(scores: Scores, path: Path) -> Path:
    """One panel per task/metric: per-language bars, one colour per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roles = scores.roles
    panels = sorted({tuple(k.split("/")[::2]) for t in scores.by_role.values() for k in t
                     if k.count("/") == 2 and "/all/" not in k})
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.8 * max(1, len(panels))), squeeze=False)
    for ax, (task, metric) in zip(axes[:, 0], panels, strict=True):
        langs = sorted({k.split("/")[1] for t in scores.by_role.values() for k in t
                        if k.startswith(f"{task}/") and k.endswith(f"/{metric}") and "/all/" not in k})
        width = 0.8 / len(roles)
        for i, role in enumerate(roles):
            vals = [scores.by_role[role].get(f"{task}/{lang}/{metric}", 0.0) for lang in langs]
            ax.bar([x + i * width for x in range(len(langs))], vals, width, label=role)
        ax.set_xticks([x + width * (len(roles) - 1) / 2 for x in range(len(langs))], langs)
        ax.set_title(f"{task} ({metric})")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def first_per_group(samples: list[dict]) -> list[dict]:
    """The first per-item output of each (task, language): one example of each for the report."""
    firsts: dict[tuple[str, str], dict] = {}
    for s in samples:
        firsts.setdefault((s["task"], s["lang"]), s)
    return list(firsts.values())


def html_page(scores: Scores, chart: Path, title: str = "Evaluation") -> str:
    roles = scores.roles
    img = base64.b64encode(chart.read_bytes()).decode()
    rows = []
    for line in markdown(scores, title).splitlines()[4:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    examples = []
    for role in roles:
        for s in first_per_group(scores.samples.get(role, [])):
            examples.append(f"<tr><td>{role}</td><td>{html.escape(s['task'])}</td><td>{s['lang']}</td>"
                            f"<td>{html.escape(s['output'])}</td><td>{html.escape(s['reference'])}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ["task", "lang", "metric", *roles])
    return (f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1><img src='data:image/png;base64,{img}'/>"
            f"<table border='1' cellspacing='0'><tr>{head}</tr>{''.join(rows)}</table>"
            f"<h2>Example outputs</h2><table border='1' cellspacing='0'><tr><th>model</th><th>task</th>"
            f"<th>lang</th><th>output</th><th>reference</th></tr>{''.join(examples)}</table></body></html>")


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
