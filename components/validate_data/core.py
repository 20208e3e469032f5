"""validate_data: check a caption manifest with great-expectations and write the curated manifest.

Pure core: takes URIs and a config, returns a `ValidationReport`; raises `DataValidationError`, naming the
failed expectation and example rows, when a critical rule fails, so the pipeline stops before training. The
error carries what the step's run should still show (the Data Docs and every expectation's result).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

from components.common import records, storage
from components.common.languages import LANGUAGES
from components.common.tracking import Logged
from components.validate_data.expectations import Rule, build_suite, caption_rules

log = logging.getLogger(__name__)
DERIVED = {"image_status", "caption_chars"}  # columns prepare_frame adds for the rules to check


class ValidateConfig(BaseModel):
    languages: str = Field(",".join(LANGUAGES), description="comma-separated ISO 639-1 codes accepted")
    min_caption_chars: int = 1
    max_caption_chars: int = 1000
    examples: int = Field(5, description="how many failing rows to quote in an error")

    @property
    def language_list(self) -> list[str]:
        return records.split_list(self.languages)


class DataValidationError(ValueError):
    """A critical expectation failed; the message names it and quotes example rows. `logged` holds what the
    step's run still records: every expectation's result and the Data Docs."""

    def __init__(self, message: str, logged: Logged):
        super().__init__(message)
        self.logged = logged


@dataclass
class ValidationReport:
    rows_in: int
    rows_out: int
    fingerprint: str
    results: list[dict] = field(default_factory=list)
    per_language: dict[str, int] = field(default_factory=dict)

    @property
    def failed_critical(self) -> list[dict]:
        return [r for r in self.results if r["critical"] and not r["success"]]

    def metrics(self) -> dict[str, float]:
        out = {"data/rows_in": self.rows_in, "data/rows_out": self.rows_out,
               "data/expectations_evaluated": len(self.results),
               "data/expectations_failed": sum(not r["success"] for r in self.results),
               "data/critical_failed": len(self.failed_critical)}
        out.update({f"data/rows/{lang}": n for lang, n in self.per_language.items()})
        return out

    def to_json(self) -> str:
        return json.dumps({"rows_in": self.rows_in, "rows_out": self.rows_out, "fingerprint": self.fingerprint,
                           "per_language": self.per_language, "results": self.results},
                          indent=2, ensure_ascii=False, default=str)

    def logged(self, manifest_uri: str, cfg: ValidateConfig, data_docs_dir: Path | None) -> Logged:
        """What the step's run records: config, row counts, every expectation's result, the Data Docs."""
        import tempfile

        results = Path(tempfile.mkdtemp()) / "validation.json"
        results.write_text(self.to_json(), encoding="utf-8")
        artifacts = {"": results}
        if data_docs_dir is not None and Path(data_docs_dir).exists():
            artifacts["data_docs"] = Path(data_docs_dir)
        return Logged(params={"manifest": manifest_uri, **cfg.model_dump()}, pipeline_metrics=self.metrics(),
                      tags={"data.fingerprint": self.fingerprint} if self.fingerprint else {}, artifacts=artifacts)


def image_status(uris: list[str]) -> dict[str, str]:
    """'ok', 'missing' or 'undecodable' for each distinct image URI."""
    status = {}
    for uri in dict.fromkeys(uris):
        if not isinstance(uri, str) or not uri:
            status[uri] = "missing"
            continue
        try:
            records.load_image(uri)
            status[uri] = "ok"
        except FileNotFoundError:
            status[uri] = "missing"
        except (ValueError, IsADirectoryError):
            status[uri] = "undecodable"
    return status


def prepare_frame(manifest_uri: str):
    """The manifest with image URIs resolved and the derived columns the rules check."""
    df = records.read_table(manifest_uri)
    if "image" in df.columns:
        df["image"] = [records.resolve(manifest_uri, p) if isinstance(p, str) and p else p for p in df["image"]]
        status = image_status(list(df["image"]))
        df["image_status"] = [status[p] for p in df["image"]]
    else:
        df["image_status"] = "missing"
    df["caption_chars"] = df["caption"].map(lambda c: len(c.strip()) if isinstance(c, str) else 0) \
        if "caption" in df.columns else 0
    return df


def run_suite(df, rules: list[Rule], data_docs_dir: Path | None = None) -> list[dict]:
    """Validate `df` against `rules`; returns one result per rule. Writes Data Docs HTML if asked."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_def = (context.data_sources.add_pandas("manifest").add_dataframe_asset("captions")
                 .add_batch_definition_whole_dataframe("all"))
    suite = context.suites.add(build_suite("caption_manifest", rules))
    vd = context.validation_definitions.add(gx.ValidationDefinition(name="caption_manifest", data=batch_def,
                                                                    suite=suite))
    actions = []
    if data_docs_dir is not None:
        context.add_data_docs_site(site_name="seavl", site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(Path(data_docs_dir).absolute())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        actions.append(UpdateDataDocsAction(name="docs", site_names=["seavl"]))
    checkpoint = context.checkpoints.add(gx.Checkpoint(name="caption_manifest", validation_definitions=[vd],
                                                       actions=actions))
    result = checkpoint.run(batch_parameters={"dataframe": df})
    validation = next(iter(result.run_results.values()))
    out = []
    for r in sorted(validation.results, key=lambda r: r.expectation_config.meta["rule"]):
        rule = rules[r.expectation_config.meta["rule"]]
        res = r.result or {}
        exc = (r.exception_info or {}).get("exception_message") if isinstance(r.exception_info, dict) else None
        out.append({"expectation": r.expectation_config.type, "kwargs": rule.kwargs, "critical": rule.critical,
                    "intent": rule.intent, "success": bool(r.success),
                    "unexpected_count": res.get("unexpected_count", 0),
                    "partial_unexpected": res.get("partial_unexpected_list", [])[:10],
                    "observed": res.get("observed_value"), "error": exc})
    return out


def failure_message(failed: list[dict], df, examples: int) -> str:
    schema = [r for r in failed if r["expectation"] == "expect_table_columns_to_match_set"]
    failed = schema or failed  # with columns missing, the per-column failures only repeat it
    lines = [f"data validation failed: {len(failed)} critical expectation(s) not met"]
    for r in failed:
        column = r["kwargs"].get("column")
        what = f"{r['expectation']}({', '.join(f'{k}={v!r}' for k, v in r['kwargs'].items())})"
        lines.append(f"- {what}: {r['intent']}")
        if r["expectation"] == "expect_table_columns_to_match_set":
            missing = sorted(set(r["kwargs"]["column_set"]) - set(df.columns))
            lines.append(f"    missing column(s): {missing}; present: {sorted(set(df.columns) - DERIVED)}")
            continue
        if r["error"]:
            lines.append(f"    could not be evaluated: {r['error']}")
        lines.append(f"    {r['unexpected_count']} row(s) fail, e.g. {r['partial_unexpected'][:examples]}")
        if column and column in df.columns and r["partial_unexpected"]:
            bad = df[df[column].isin(r["partial_unexpected"][:examples])]
            cols = [c for c in ("id", "image", "lang", "caption", column) if c in df.columns]
            for row in bad[list(dict.fromkeys(cols))].head(examples).to_dict("records"):
                lines.append(f"      {row}")
    return "\n".join(lines)


def validate_captions(manifest_uri: str, curated_path: Path, data_docs_dir: Path | None,
                      cfg: ValidateConfig) -> ValidationReport:
    """Validate the caption manifest at `manifest_uri`; write the curated manifest to `curated_path`."""
    df = prepare_frame(manifest_uri)
    rules = caption_rules(cfg.language_list, cfg.min_caption_chars, cfg.max_caption_chars)
    results = run_suite(df, rules, data_docs_dir)
    report = ValidationReport(rows_in=len(df), rows_out=0, fingerprint="", results=results)
    if report.failed_critical:
        raise DataValidationError(failure_message(report.failed_critical, df, cfg.examples),
                                  report.logged(manifest_uri, cfg, data_docs_dir))
    curated = df.drop_duplicates(subset=["image", "lang", "caption"]).drop(columns=sorted(DERIVED))
    report.rows_out = records.write_jsonl(curated.to_dict("records"), curated_path)
    report.per_language = {str(k): int(v) for k, v in curated["lang"].value_counts().sort_index().items()}
    report.fingerprint = storage.fingerprint(str(curated_path))
    log.info("validated %s: %d rows in, %d curated", manifest_uri, report.rows_in, report.rows_out)
    return report
