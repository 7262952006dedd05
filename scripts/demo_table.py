"""Regenerate README.md's demo table from a finished run — the same tables `score run` prints.

    .venv/bin/python scripts/demo_table.py RUN_DIR                 # print them
    .venv/bin/python scripts/demo_table.py RUN_DIR --readme README.md --note "2026-12-02, fresh clone of …"

With --readme, the text between the `demo-table` marks in that file is replaced by the
note (where and when the run was made, by which command) and the tables."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

START, END = "<!-- demo-table:start (scripts/demo_table.py writes this part) -->", "<!-- demo-table:end -->"


def tables(run_dir: Path) -> str:
    from tasks.report import interval_table, metrics_table, summary_rows

    evals = [{**e, "path": _locate(run_dir, e["path"])} for e in json.loads((run_dir / "metrics.json").read_text())["evals"]]
    intervals = interval_table(evals)
    return metrics_table(summary_rows(evals)) + ("\n\n" + intervals if intervals else "")


def _locate(run_dir: Path, recorded: str) -> str:
    """A trace path as `score run` recorded it (relative to where it was started) → the file
    under `run_dir`: the longest tail of the recorded path that exists there."""
    if Path(recorded).is_file():
        return recorded
    parts = Path(recorded).parts
    for i in range(len(parts)):
        candidate = run_dir.joinpath(*parts[i:])
        if candidate.is_file():
            return str(candidate)
    raise SystemExit(f"{recorded}: not found under {run_dir}")


def replace_section(text: str, body: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"the file has no {START!r} … {END!r} section")
    head, rest = text.split(START, 1)
    return head + START + "\n" + body.strip() + "\n" + END + rest.split(END, 1)[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="a finished `score run` directory (has metrics.json)")
    ap.add_argument("--readme", type=Path, help="rewrite this file's demo-table section")
    ap.add_argument("--note", default="", help="one paragraph placed above the tables")
    args = ap.parse_args()
    body = (args.note.strip() + "\n\n" if args.note else "") + tables(args.run_dir)
    if args.readme:
        args.readme.write_text(replace_section(args.readme.read_text(), body))
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
