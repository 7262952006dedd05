"""The run's report: metrics.json, report.md with PNG plots, and Prefect UI artifacts
(one markdown report, two tables) attached to the flow run."""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Optional, Sequence

from prefect import task

from score_core.schema import atomic_write_text

from . import plots

# "unchanged answer": y2 commits to y1's final answer (`unchanged_answer_rate`, the collapse
# detector). The text-equality `unchanged_rate` is never 1 for formats whose y2 restates or checks
# y1 before answering, so it is left to `score metrics` and metrics.json.
COLUMNS = [
    ("accuracy_t1", "Accuracy@t1"), ("accuracy_t2", "Accuracy@t2"), ("delta_t1_t2", "Δ(t1,t2)"),
    ("delta_i_to_c", "Δi→c"), ("delta_c_to_i", "Δc→i"), ("unchanged_answer_rate", "unchanged answer"),
]
TRAIN_KEYS = ("loss", "reward1", "reward2", "kl_t1", "kl_t2", "grad_norm",
              "mismatch_mean_abs_logp", "mismatch_max_abs_logp", "ratio_mean", "clip_frac", "seq_ratio_out_frac")


def _pct(x: Any) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _num(x: Any, fmt: str = ".3f") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def metrics_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """A markdown table of the self-correction metrics, in percent."""
    head = "| model | n | " + " | ".join(label for _, label in COLUMNS) + " |"
    sep = "|---|---:|" + "---:|" * len(COLUMNS)
    body = [f"| {name} | {int(m.get('n', 0))} | " + " | ".join(_pct(m.get(k)) for k, _ in COLUMNS) + " |"
            for name, m in rows]
    return "\n".join([head, sep, *body])


def summary_rows(evals: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Base (if evaluated), then the last evaluation of each training stage in order of
    appearance: after Stage I, after Stage II, or after a baseline's iterations (star, ...)."""
    rows = [("base", e) for e in evals[:1] if e.get("stage") == "base"]
    labels = {"stage1": "after Stage I", "stage2": "after Stage II"}
    for stage in dict.fromkeys(e.get("stage") for e in evals if e.get("stage") != "base"):
        last = [e for e in evals if e.get("stage") == stage][-1]
        rows.append((f"{labels.get(stage, f'after {stage}')} (it {last['iteration']})", last))
    return rows


def _iv(iv: Any) -> str:
    return f"{100 * iv.estimate:+.1f} [{100 * iv.lo:+.1f}, {100 * iv.hi:+.1f}]"


def interval_table(evals: list[dict[str, Any]], n_boot: int = 4000) -> str:
    """Base and the final model side by side: Acc@t1, Acc@t2 and Δ(t1,t2) with 95% intervals
    (paired bootstrap over the held-out problems, score_core/evaluation/intervals.py), then the final
    model minus the base on the same problems. Empty without a base evaluation."""
    from score_core.evaluation.intervals import align, bootstrap_interval, delta_grid, nanmean
    from score_core.evaluation.tracefile import per_problem_rewards

    if len(evals) < 2 or evals[0].get("stage") != "base":
        return ""
    base, final = evals[0], evals[-1]
    ids, r1, r2 = align([per_problem_rewards(base["path"]), per_problem_rewards(final["path"])])
    d = delta_grid(r1, r2)
    name = summary_rows(evals)[-1][0]
    lines = ["| model | Acc@t1 | Acc@t2 | Δ(t1,t2) [95% interval] |", "|---|---:|---:|---|"]
    for row, label in ((0, "base"), (1, name)):
        lines.append(f"| {label} | {100 * nanmean(r1[row]):.1f} | {100 * nanmean(r2[row]):.1f} "
                     f"| {_iv(bootstrap_interval([d[row]], [1.0], n_boot))} |")
    gain_t2 = bootstrap_interval([r2[1], r2[0]], [1.0, -1.0], n_boot)
    gain_d = bootstrap_interval([d[1], d[0]], [1.0, -1.0], n_boot)
    lines += ["", f"{name} − base, paired over the same {len(ids)} problems: Acc@t2 {_iv(gain_t2)}, "
              f"Δ(t1,t2) {_iv(gain_d)} points (95% paired bootstrap intervals; an interval that "
              "excludes 0 is a difference these problems can show)."]
    return "\n".join(lines)


def reward_stats(traces_path: str) -> dict[str, float]:
    """Mean / std of r1 and r2 over scored rows, and how many rows could not be scored."""
    from score_core.evaluation.tracefile import read_trace_columns

    cols = read_trace_columns(traces_path)
    out: dict[str, float] = {"rows": len(cols["reward1"])}
    for name in ("reward1", "reward2"):
        known = [v for v in cols[name] if v is not None]
        out[f"{name}_mean"] = statistics.fmean(known) if known else math.nan
        out[f"{name}_std"] = statistics.pstdev(known) if known else math.nan
        out[f"{name}_unscored"] = len(cols[name]) - len(known)
    return out


def _reward_lines(rollouts: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["| stage | iteration | episodes | mean r1 | std r1 | mean r2 | std r2 | unscored r1 | unscored r2 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rollouts:
        s = r["reward_stats"]
        lines.append(f"| {r['stage']} | {r['iteration']} | {int(s['rows'])} | {_num(s['reward1_mean'])} | "
                     f"{_num(s['reward1_std'])} | {_num(s['reward2_mean'])} | {_num(s['reward2_std'])} | "
                     f"{int(s['reward1_unscored'])} | {int(s['reward2_unscored'])} |")
    return lines


def _train_lines(trains: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["| stage | iteration | steps | " + " | ".join(TRAIN_KEYS) + " | NaN-skipped | checkpoint |",
             "|---|---:|---:|" + "---:|" * len(TRAIN_KEYS) + "---:|---|"]
    for t in trains:
        vals = " | ".join(_num(t.get(f"train/{k}"), ".4f") for k in TRAIN_KEYS)
        lines.append(f"| {t['stage']} | {t['iteration']} | {t.get('steps', 0)} | {vals} | "
                     f"{t.get('nan_skipped', 0)} | `{t['checkpoint']}` |")
    return lines


def _make_plots(run: Path, evals: list[dict[str, Any]], trains: list[dict[str, Any]]) -> dict[str, str]:
    from score_core.evaluation.metrics import edit_ratios
    from score_core.evaluation.tracefile import read_trace_columns

    out = run / "plots"
    ratios = {}
    for e in ([evals[0], evals[-1]] if len(evals) > 1 else evals):
        cols = read_trace_columns(e["path"])
        ratios[plots.eval_label(e).replace("\n", " ")] = edit_ratios(cols["attempt1"], cols["attempt2"])
    return {
        "Accuracy@t1 / Accuracy@t2 per iteration": plots.accuracy_plot(evals, out / "accuracy.png"),
        "Flips i→c / c→i": plots.flips_plot(evals, out / "flips.png"),
        "Training reward and KL": plots.training_plot(trains, out / "training.png"),
        "Edit-distance ratio between attempts": plots.edit_ratio_plot(ratios, out / "edit_ratio.png"),
    }


def render(run: Path, run_name: str, config_path: str, evals: list[dict[str, Any]],
           trains: list[dict[str, Any]], data: dict[str, Any], rollouts: Sequence[dict[str, Any]],
           pngs: dict[str, str], inline_images: bool = False) -> str:
    """The report as markdown. `inline_images`: embed the PNGs as data URIs (the Prefect UI
    cannot read files from the run directory); report.md links them relatively instead."""
    per_iter = [(f"{e['stage']} it {e['iteration']}", e) for e in evals]
    extra = ["| model | n unscored | edit-distance ratio |", "|---|---:|---:|",
             *[f"| {name} | {int(e.get('n_unscored', 0))} | {_num(e.get('edit_distance_ratio'))} |"
               for name, e in per_iter]]
    parquet = [data.get("train_path"), data.get("eval_path"),
               *[r["path"] for r in rollouts], *[e["path"] for e in evals]]
    return "\n".join([
        f"# SCoRe run `{run_name}`", "", f"- config: `{config_path}`", f"- run directory: `{run.resolve()}`",
        f"- problems: train {data.get('train_n')} (`{data.get('train_path')}`), "
        f"eval {data.get('eval_n')} (`{data.get('eval_path')}`)", "",
        "## Held-out evaluation (greedy, %)", "", metrics_table(summary_rows(evals)), "",
        *([interval_table(evals), ""] if len(evals) > 1 else []),
        "## Every evaluation (per stage iteration, %)", "", metrics_table(per_iter), "", *extra, "",
        "## Training rollouts: reward statistics", "", *_reward_lines(rollouts), "",
        "## Training", "", *_train_lines(trains), "",
        "## Plots", "", *[f"![{title}]({_image_src(p, run, inline_images)})  \n`{p}`" for title, p in pngs.items()], "",
        "## Parquet files", "", *[f"- `{p}`" for p in parquet if p], "",
    ])


def _image_src(png: str, run: Path, inline: bool) -> str:
    if not inline:
        return str(Path(png).relative_to(run))
    import base64

    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode("ascii")


@task(name="report")
def write_report(run_dir: str, run_name: str, config_path: str, evals: list[dict[str, Any]],
                 trains: list[dict[str, Any]], data: dict[str, Any],
                 rollouts: Optional[list[dict[str, Any]]] = None) -> dict[str, Any]:
    """metrics.json, plots/*.png and report.md in the run directory; the same as UI artifacts."""
    run = Path(run_dir)
    rollouts = [{**r, "reward_stats": reward_stats(r["path"])} for r in (rollouts or [])]
    pngs = _make_plots(run, evals, trains) if evals else {}
    metrics = {"evals": evals, "train": trains, "rollouts": rollouts, "data": data, "plots": pngs}
    atomic_write_text(json.dumps(metrics, indent=2, default=str), run / "metrics.json")
    text = render(run, run_name, config_path, evals, trains, data, rollouts, pngs)
    atomic_write_text(text, run / "report.md")
    ui_text = render(run, run_name, config_path, evals, trains, data, rollouts, pngs, inline_images=True)
    _artifacts(ui_text, run_name, evals, trains)
    return {"report": str(run / "report.md"), "metrics": str(run / "metrics.json"),
            "plots": list(pngs.values())}


def _artifacts(markdown: str, run_name: str, evals: list[dict[str, Any]], trains: list[dict[str, Any]]) -> None:
    try:
        from prefect.artifacts import create_markdown_artifact, create_table_artifact
        from prefect.context import get_run_context

        get_run_context()
    except Exception as exc:  # outside a flow run there is nowhere to attach them
        print(f"(no Prefect artifacts: {exc})")
        return
    try:
        _create(markdown, run_name, evals, trains, create_markdown_artifact, create_table_artifact)
    except Exception as exc:  # the files in the run directory are written; the UI copy is a bonus
        print(f"warning: could not create the Prefect artifacts: {exc!r}")


def _create(markdown: str, run_name: str, evals: list[dict[str, Any]], trains: list[dict[str, Any]],
            create_markdown_artifact: Any, create_table_artifact: Any) -> None:
    key = "".join(c if c.isalnum() else "-" for c in f"score-report-{run_name}".lower())
    create_markdown_artifact(markdown=markdown, key=key, description="SCoRe run report")
    eval_rows = [{"model": f"{e['stage']} it {e['iteration']}", "n": e.get("n"),
                  **{label: _pct(e.get(k)) for k, label in COLUMNS}} for e in evals]
    create_table_artifact(table=eval_rows, key=f"{key}-evals", description="Held-out metrics per iteration (%)")
    train_rows = [{"stage": t["stage"], "iteration": t["iteration"], "steps": t.get("steps"),
                   **{k: _num(t.get(f"train/{k}"), ".4f") for k in TRAIN_KEYS}} for t in trains]
    create_table_artifact(table=train_rows, key=f"{key}-train", description="Training per stage iteration")
