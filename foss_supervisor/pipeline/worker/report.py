"""The run report of any pipeline: rows per layer, pass rate, top rejection reasons and step timings.

Add it as the last step (``callable: foss_supervisor.pipeline.worker.report:report``); it writes
``<reports>/<pipeline>/<run_id>.json|.html`` and ``latest.json|.html``, which the dashboard reads. Pipelines
add their own figures on top (orders adds revenue KPIs: see configs/pipelines/orders/steps.py). What it reads, by
convention rather than configuration:

- layers: the row count of every table in the schemas the pipeline owns but its ledger's (files, commits,
  rollbacks: run bookkeeping, which snapshots leave out too);
- run quality: the first step of this run that reported both ``valid`` and ``rejected`` metrics;
- overall quality and reasons: the tables named ``*_rejected`` that have a ``reasons`` list column, against the
  bronze table (``params.bronze``, else the first table of a schema whose name ends in ``bronze``).

JSON shape: ``{pipeline, run_id, mode, generated_at, started_at, layers: {schema.table: rows}, quality:
{run_rows_checked, run_valid, run_rejected, run_pass_rate, overall_pass_rate}, top_rejection_reasons:
[{reason, rows}], kpis: {...}, steps: [...]}``; pass rates are fractions in [0, 1] or null.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from foss_supervisor.base.atomicfile import atomic_write
from foss_supervisor.base.jsonable import jsonable
from foss_supervisor.base.pipelinestates import StepState
from foss_supervisor.pipeline.worker.context import StepContext

__all__ = ["build_report", "render_report_html", "report", "write_report"]


def _quote(schema: str, table: str) -> str:
    return ".".join('"' + p.replace('"', '""') + '"' for p in (schema, table))


def build_report(ctx: StepContext) -> dict[str, Any]:
    """The report document of this run (see the module docstring), without pipeline-specific KPIs."""
    cur = ctx.cursor
    owned = sorted(ctx.schemas)
    tables = cur.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary"
        " AND list_contains(?::VARCHAR[], schema_name) ORDER BY 1, 2",
        [owned],
    ).fetchall()
    tables = [(s, t) for s, t in tables if s != ctx.ledger]  # run bookkeeping, not a layer (as for snapshots)
    layers = {f"{s}.{t}": int(cur.execute(f"SELECT count(*) FROM {_quote(s, t)}").fetchone()[0]) for s, t in tables}  # noqa: S608
    rejected_tables = [
        (s, t)
        for s, t in tables
        if t.endswith("_rejected")
        and cur.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?"
            " AND column_name = 'reasons' AND data_type LIKE '%[]'",
            [s, t],
        ).fetchone()[0]
    ]
    reasons: list[tuple[str, int]] = []
    if rejected_tables:
        union = " UNION ALL ".join(f"SELECT unnest(reasons) AS reason FROM {_quote(s, t)}" for s, t in rejected_tables)  # noqa: S608
        reasons = cur.execute(
            f"SELECT reason, count(*) AS n FROM ({union}) GROUP BY reason ORDER BY n DESC, reason LIMIT 10"  # noqa: S608
        ).fetchall()
    bronze_name = ctx.params.get("bronze") or next((k for k in layers if k.split(".")[0].endswith("bronze")), None)
    bronze = layers.get(str(bronze_name), 0)
    rejected = sum(layers[f"{s}.{t}"] for s, t in rejected_tables)
    steps = list(ctx.run.get("steps", []))
    checked = next((s["metrics"] for s in steps if {"valid", "rejected"} <= set(s.get("metrics") or {})), None)
    run_valid = int(checked["valid"]) if checked else 0
    run_rejected = int(checked["rejected"]) if checked else 0
    run_checked = run_valid + run_rejected
    return {
        "pipeline": ctx.pipeline,
        "run_id": ctx.run_id,
        "mode": ctx.mode,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(),
        "started_at": ctx.run.get("started_at"),
        "layers": layers,
        "quality": {
            "run_rows_checked": run_checked,
            "run_valid": run_valid,
            "run_rejected": run_rejected,
            "run_pass_rate": round(run_valid / run_checked, 6) if run_checked else None,
            "overall_pass_rate": round((bronze - rejected) / bronze, 6) if bronze and rejected_tables else None,
        },
        "top_rejection_reasons": [{"reason": r, "rows": int(n)} for r, n in reasons],
        "kpis": {},
        "steps": steps,
    }


def write_report(ctx: StepContext, doc: Mapping[str, Any]) -> tuple[Path, str]:
    """Write the run's JSON and HTML and the ``latest`` copies, each replaced atomically; (folder, JSON text)."""
    out_dir = ctx.folders.reports / ctx.pipeline
    out_dir.mkdir(parents=True, exist_ok=True)
    body = json.dumps(doc, indent=2, default=jsonable)
    page = render_report_html(doc)
    for name, text in (
        (f"{ctx.run_id}.json", body),
        (f"{ctx.run_id}.html", page),
        ("latest.json", body),
        ("latest.html", page),
    ):
        atomic_write(out_dir / name, text, mode=0o600, durable=False)
    ctx.log(f"report written to {out_dir / (ctx.run_id + '.html')}")
    return out_dir, body


def restore_report(folder: Path, target: str, rid: str) -> bool:
    """After rollback ``rid`` restored run ``target``'s tables: ``target``'s report in ``folder`` (a pipeline's
    reports folder) becomes rollback ``rid``'s (``<rid>.json|.html``, the JSON with ``rolled_back_to``, the page
    as the pipeline wrote it) and the ``latest`` pair the dashboard reads, so nothing shows the counts of the run
    rolled back. A part ``target`` has no readable report of (none written, or pruned) is removed from the
    ``latest`` pair rather than left describing other tables. Returns whether the JSON was restored; raises
    OSError."""
    parts: list[tuple[str, str | None]] = []
    try:
        doc = json.loads((folder / f"{target}.json").read_text(encoding="utf-8"))
        doc = {**doc, "rolled_back_to": target, "run_id": rid} if isinstance(doc, dict) else doc
        parts.append(("json", json.dumps(doc, indent=2, default=jsonable)))
    except (OSError, ValueError):
        parts.append(("json", None))
    try:
        parts.append(("html", (folder / f"{target}.html").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        parts.append(("html", None))
    for suffix, text in parts:
        if text is None:
            (folder / f"latest.{suffix}").unlink(missing_ok=True)
            continue
        for name in (f"{rid}.{suffix}", f"latest.{suffix}"):
            atomic_write(folder / name, text, mode=0o600, durable=False)
    return parts[0][1] is not None


def report(ctx: StepContext) -> Mapping[str, int | float]:
    """The generic report step. Metrics: rows_in (rows over all layers), rows_out (1 report)."""
    doc = build_report(ctx)
    write_report(ctx, doc)
    return {"rows_in": sum(doc["layers"].values()), "rows_out": 1}


def render_report_html(doc: Mapping[str, Any]) -> str:
    """A self-contained page (no scripts, no external assets); states show an icon and a word."""
    e = html.escape

    def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
        head = "".join(f"<th>{e(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def state_label(value: str) -> str:
        try:
            st = StepState(value)
        except ValueError:
            return value
        return f"{st.icon} {st.value}"

    def pct(rate: float | None) -> str:
        return f"{rate:.2%}" if rate is not None else "n/a"

    q = doc["quality"]
    k = doc.get("kpis") or {}
    steps = [
        (
            s.get("name"),
            state_label(str(s.get("state"))),
            s.get("rows_in"),
            s.get("rows_out"),
            f"{s['duration_s']:.3f}" if isinstance(s.get("duration_s"), int | float) else "",
        )
        for s in doc.get("steps", [])
    ]
    kpis = f"<h2>KPIs</h2>\n{table([str(n) for n in k], [[str(v) for v in k.values()]])}\n" if k else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Run {e(doc["run_id"])} of {e(doc["pipeline"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1.5em}}
td,th{{border:1px solid #999;padding:.25em .6em;text-align:left}}</style></head><body>
<h1>Pipeline {e(doc["pipeline"])}: run {e(doc["run_id"])}</h1>
<p>Mode {e(str(doc["mode"]))}, started {e(str(doc.get("started_at")))}, report generated {e(doc["generated_at"])}.</p>
{kpis}<h2>Quality</h2>
{
        table(
            ["rows checked this run", "valid", "rejected", "pass rate this run", "pass rate overall"],
            [
                [
                    q["run_rows_checked"],
                    q["run_valid"],
                    q["run_rejected"],
                    pct(q["run_pass_rate"]),
                    pct(q["overall_pass_rate"]),
                ]
            ],
        )
    }
<h2>Top rejection reasons</h2>
{table(["reason", "rows"], [[r["reason"], r["rows"]] for r in doc["top_rejection_reasons"]])}
<h2>Rows per layer</h2>
{table(["table", "rows"], list(doc["layers"].items()))}
<h2>Steps</h2>
{table(["step", "state", "rows in", "rows out", "seconds"], steps)}
</body></html>
"""
