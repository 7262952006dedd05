"""The run's report: metrics.json, report.md, and a markdown artifact in the Prefect UI."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from prefect import task

from score_core.schema import atomic_write_text

COLUMNS = [
    ("accuracy_t1", "Accuracy@t1"), ("accuracy_t2", "Accuracy@t2"), ("delta_t1_t2", "Δ(t1,t2)"),
    ("delta_i_to_c", "Δi→c"), ("delta_c_to_i", "Δc→i"), ("unchanged_rate", "unchanged"),
]


def _pct(x: Any) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def metrics_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """A markdown table of the self-correction metrics, in percent."""
    head = "| model | n | " + " | ".join(label for _, label in COLUMNS) + " |"
    sep = "|---|---:|" + "---:|" * len(COLUMNS)
    body = [f"| {name} | {int(m.get('n', 0))} | " + " | ".join(_pct(m.get(k)) for k, _ in COLUMNS) + " |"
            for name, m in rows]
    return "\n".join([head, sep, *body])


def summary_rows(evals: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Base, after the last Stage I iteration, after the last Stage II iteration."""
    rows = [("base", evals[0])] if evals else []
    for stage, label in (("stage1", "after Stage I"), ("stage2", "after Stage II")):
        last = [e for e in evals if e.get("stage") == stage]
        if last:
            rows.append((f"{label} (it {last[-1]['iteration']})", last[-1]))
    return rows


@task(name="report")
def write_report(run_dir: str, run_name: str, config_path: str, evals: list[dict[str, Any]],
                 trains: list[dict[str, Any]], data: dict[str, Any]) -> dict[str, Any]:
    """metrics.json + report.md in the run directory, and the same report as a UI artifact."""
    run = Path(run_dir)
    metrics = {"evals": evals, "train": trains, "data": data}
    atomic_write_text(json.dumps(metrics, indent=2, default=str), run / "metrics.json")
    per_iter = [(f"{e['stage']} it {e['iteration']}", e) for e in evals]
    train_lines = [
        f"| {t['stage']} | {t['iteration']} | {t.get('steps', 0)} | {t.get('train/reward1', float('nan')):.3f} | "
        f"{t.get('train/reward2', float('nan')):.3f} | {t.get('train/kl_t1', float('nan')):.4f} | "
        f"{t.get('train/kl_t2', float('nan')):.4f} | {t.get('nan_skipped', 0)} |" for t in trains]
    text = "\n".join([
        f"# SCoRe run `{run_name}`", "", f"- config: `{config_path}`", f"- run directory: `{run.resolve()}`",
        f"- problems: train {data.get('train_n')} (`{data.get('train_path')}`), "
        f"eval {data.get('eval_n')} (`{data.get('eval_path')}`)", "",
        "## Held-out evaluation (greedy, %)", "", metrics_table(summary_rows(evals)), "",
        "## Every evaluation", "", metrics_table(per_iter), "",
        "## Training", "", "| stage | iteration | steps | reward1 | reward2 | KL t1 | KL t2 | NaN-skipped |",
        "|---|---:|---:|---:|---:|---:|---:|---:|", *train_lines, "",
        "Traces: " + ", ".join(f"`{e['path']}`" for e in evals), "",
    ])
    atomic_write_text(text, run / "report.md")
    _artifact(text, run_name)
    return {"report": str(run / "report.md"), "metrics": str(run / "metrics.json")}


def _artifact(markdown: str, run_name: str) -> None:
    try:
        from prefect.artifacts import create_markdown_artifact

        key = "".join(c if c.isalnum() else "-" for c in f"score-report-{run_name}".lower())
        create_markdown_artifact(markdown=markdown, key=key, description="SCoRe run report")
    except Exception as exc:  # outside a flow run there is nowhere to attach it
        print(f"(no Prefect artifact: {exc})")
