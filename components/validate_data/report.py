"""The validation's outputs for people: the dataset expectations in great-expectations (with its Data Docs
site), a self-contained HTML report with plots (one file, as the KFP UI shows it), and the failure message."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from components.validate_data.expectations import Rule, build_suite, dataset_rules
from components.validate_data.schema import REASONS


def tables(report, sample: list[dict], ids_in_both: int, cfg) -> dict:
    """The three small tables the dataset expectations look at."""
    import pandas as pd

    accounted = report.rows_curated + report.rows_quarantined + report.rows_not_selected
    summary = pd.DataFrame([{
        "rows_in": report.rows_in, "rows_curated": report.rows_curated, "rows_quarantined": report.rows_quarantined,
        "rows_accounted": accounted, "quarantined_fraction": report.rows_quarantined / max(report.rows_in, 1),
        "ids_in_both": ids_in_both, "shards_damaged": len(report.shards_damaged)}])
    languages = cfg.language_list if report.kind == "captions" else []
    total = max(report.rows_curated, 1)
    shares = pd.DataFrame({"lang": languages, "rows": [report.per_language.get(x, 0) for x in languages]})
    shares["share"] = shares["rows"] / total
    return {"summary": summary, "languages": shares, "sample": pd.DataFrame(sample)}


def run_expectations(report, sample: list[dict], ids_in_both: int, out, cfg, columns: list[str]) -> list[dict]:
    """Run the dataset rules; write the Data Docs site under `out.data_docs`; one result per rule."""
    import logging

    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in [n for n in logging.root.manager.loggerDict if n.startswith("great_expectations")]:
        logging.getLogger(name).setLevel(logging.WARNING)   # some of its modules log every step at INFO
    frames = tables(report, sample, ids_in_both, cfg)
    if frames["sample"].empty:
        import pandas as pd

        frames["sample"] = pd.DataFrame({c: [] for c in columns})
    languages = cfg.language_list if report.kind == "captions" else []
    rules = dataset_rules(columns, cfg.max_quarantined_fraction, cfg.min_language_share, languages)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(site_name="seavl", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(Path(out.data_docs).absolute())},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
    source = context.data_sources.add_pandas("validation")
    results = []
    for table, frame in frames.items():
        mine = [(i, r) for i, r in enumerate(rules) if r.table == table]
        if not mine:
            continue
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all")
        suite = context.suites.add(build_suite(f"{report.kind}_{table}", mine))
        vd = context.validation_definitions.add(gx.ValidationDefinition(name=table, data=batch, suite=suite))
        checkpoint = context.checkpoints.add(gx.Checkpoint(name=table, validation_definitions=[vd], actions=[
            UpdateDataDocsAction(name="docs", site_names=["seavl"])]))
        validation = next(iter(checkpoint.run(batch_parameters={"dataframe": frame}).run_results.values()))
        for r in validation.results:
            results.append(_result(rules[r.expectation_config.meta["rule"]], r, r.expectation_config.meta["rule"]))
    return sorted(results, key=lambda r: r["rule"])


def _result(rule: Rule, r, index: int) -> dict:
    res = r.result or {}
    exc = (r.exception_info or {}).get("exception_message") if isinstance(r.exception_info, dict) else None
    return {"rule": index, "table": rule.table, "expectation": r.expectation_config.type, "kwargs": rule.kwargs,
            "critical": rule.critical, "intent": rule.intent, "success": bool(r.success),
            "unexpected_count": res.get("unexpected_count", 0),
            "partial_unexpected": [str(v)[:200] for v in res.get("partial_unexpected_list", [])[:10]],
            "observed": res.get("observed_value"), "error": exc}


def failure_message(report, out, cfg) -> str:
    """Names each failed critical expectation, with the figures and a few example rows behind it."""
    import pyarrow.parquet as pq

    failed = report.failed_critical
    lines = [f"data validation failed: {len(failed)} critical expectation(s) not met "
             f"({report.rows_in} rows in, {report.rows_curated} curated, {report.rows_quarantined} quarantined)"]
    for r in failed:
        what = f"{r['expectation']}({', '.join(f'{k}={v!r}' for k, v in r['kwargs'].items())})"
        lines.append(f"- {what}: {r['intent']}")
        if r["error"]:
            lines.append(f"    could not be evaluated: {r['error']}")
        column = r["kwargs"].get("column")
        if column == "rows_curated":
            lines.append(f"    no row passed; by reason: {report.reasons}")
        if column in ("quarantined_fraction", "rows_curated"):
            if column == "quarantined_fraction":
                lines.append(f"    quarantined {report.rows_quarantined / max(report.rows_in, 1):.1%} "
                             f"(limit {cfg.max_quarantined_fraction:.0%}); by reason: {report.reasons}")
            if out.quarantine.exists() and r is failed[0]:
                rows = pq.read_table(out.quarantine, columns=["id", "reason", "detail"]).slice(0, cfg.examples)
                lines += [f"      {row}" for row in rows.to_pylist()]
        elif column == "share":
            total = max(report.rows_curated, 1)
            short = [x for x in cfg.language_list if report.per_language.get(x, 0) / total < cfg.min_language_share]
            lines.append(f"    language(s) {short} below the minimum share {cfg.min_language_share:.1%}; curated "
                         f"rows per language: {report.per_language}")
        elif r["expectation"] == "expect_column_pair_values_to_be_equal":
            lines.append(f"    rows in {report.rows_in} != curated {report.rows_curated} + quarantined "
                         f"{report.rows_quarantined} + not selected {report.rows_not_selected}")
        else:
            lines.append(f"    observed {r['observed']}; {r['unexpected_count']} unexpected, e.g. "
                         f"{r['partial_unexpected'][:cfg.examples]}")
    lines.append(f"the quarantine ({out.quarantine}) lists every set-aside row with its reason; Data Docs: "
                 f"{out.data_docs}")
    return "\n".join(lines)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def plots(report, keys) -> dict[str, str]:
    """Base64 PNGs: rows per language and source, the SEA-score histogram, rejections by reason."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    panels = [("curated rows per language", report.per_language),
              ("curated rows per source", dict(list(report.per_source.items())[:15]))]
    for ax, (title, counts) in zip(axes, panels, strict=True):
        ax.bar(list(counts), list(counts.values()), color="#3a7")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=45)
    out["rows"] = _png(fig)
    plt.close(fig)
    if "sea_score" in keys and len(keys):
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.hist(keys["sea_score"].to_numpy(), bins=20, range=(0, 1), color="#37a")
        ax.set_title("SEA relevance of rows that passed the row checks")
        ax.set_xlabel("sea_score")
        out["sea_score"] = _png(fig)
        plt.close(fig)
    if report.reasons:
        fig, ax = plt.subplots(figsize=(6, 0.35 * len(report.reasons) + 1))
        ax.barh(list(report.reasons)[::-1], list(report.reasons.values())[::-1], color="#c44")
        ax.set_title("rows set aside, by reason")
        out["reasons"] = _png(fig)
        plt.close(fig)
    return out


def write_html(report, keys, out, cfg) -> None:
    """One self-contained page: counts, expectations, plots (inline), reasons with their meaning."""
    rows = "".join(
        f"<tr class={'ok' if r['success'] else ('bad' if r['critical'] else 'warn')}><td>{'✔' if r['success'] else '✘'}"
        f"</td><td>{'critical' if r['critical'] else 'warning'}</td><td>{html.escape(r['expectation'])}<br><small>"
        f"{html.escape(str(r['kwargs']))}</small></td><td>{html.escape(r['intent'])}</td>"
        f"<td>{html.escape(str(r['observed'] if r['observed'] is not None else r['unexpected_count']))}</td></tr>"
        for r in report.results)
    reasons = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td><td>{html.escape(REASONS.get(k, ''))}</td></tr>"
                      for k, v in report.reasons.items())
    images = "".join(f'<img alt="{k}" src="data:image/png;base64,{v}">' for k, v in plots(report, keys).items())
    damaged = "".join(f"<li>{html.escape(d)}</li>" for d in report.shards_damaged) or "<li>none</li>"
    page = f"""<!doctype html><meta charset="utf-8"><title>validate_data: {report.kind}</title>
<style>body{{font-family:sans-serif;margin:1em}}td,th{{border-bottom:1px solid #ddd;padding:4px;text-align:left}}
.bad{{background:#fdd}}.warn{{background:#ffd}}img{{max-width:100%;margin:4px}}</style>
<h2>validate_data ({report.kind})</h2>
<p>{report.rows_in} rows in: <b>{report.rows_curated}</b> curated, <b>{report.rows_quarantined}</b> quarantined,
{report.rows_not_selected} not selected; {report.shards} unit(s) read in {report.seconds:.1f} s.
Fingerprint <code>{html.escape(report.fingerprint)}</code>.</p>
<h3>Dataset expectations</h3><table><tr><th></th><th></th><th>expectation</th><th>intent</th><th>observed</th></tr>
{rows}</table><h3>Plots</h3>{images}
<h3>Set aside, by reason</h3><table><tr><th>reason</th><th>rows</th><th>meaning</th></tr>{reasons}</table>
<h3>Damaged shards</h3><ul>{damaged}</ul>"""
    Path(out.report).write_text(page, encoding="utf-8")
