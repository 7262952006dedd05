"""`score eval`: inference-time scaling of a model's self-correction (hooked into `score`).

--parallel K --self-correct: majority vote over K parallel samples versus K/2 samples each
self-corrected once (temperature 0.7, the paper's protocol), at budgets 2, 4, …, K.
--attempts N: Accuracy@t for N sequential greedy attempts (x ⊕ y1 ⊕ p ⊕ y2 ⊕ p ⊕ …).
Writes scaling.json and scaling.png to --out.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

EPILOG = """examples:
  score eval --model runs/demo/checkpoints/stage2_it006 --parallel 8 --self-correct --attempts 4
  score eval --model runs/demo/base --attempts 5 --problems 200 --out runs/demo/scaling
  score eval --model DIR --data ../shared/data/math500_test.jsonl --source math --parallel 4 --self-correct
"""


def _problems(args: argparse.Namespace) -> list[Any]:
    if args.data is None:
        from score_core.problems.synthetic import make_problems

        return make_problems("synth_linear", args.problems, args.seed, "eval")
    from score_core.config import DatasetConfig
    from score_core.problems.loaders import load_problems

    ds = DatasetConfig(source=args.source, path=str(Path(args.data).resolve()), split="eval", limit=args.problems,
                       seed=args.seed, on_bad_row="skip")
    return load_problems(ds).problems


def cmd_eval(args: argparse.Namespace) -> int:
    from score_core.tools.inference_scaling import parallel_vs_self_correct, plot_scaling, sequential_attempts
    from score_core.generation.models import load_model, load_tokenizer

    if not (args.self_correct or args.attempts):
        raise ValueError("choose --parallel K --self-correct and/or --attempts N")
    if args.self_correct and not args.parallel:
        raise ValueError("--self-correct needs --parallel K (the sample budget per problem)")
    model, tok = load_model(args.model, dtype=args.dtype).eval(), load_tokenizer(args.model)
    problems = _problems(args)
    out: dict[str, Any] = {"model": args.model}
    kw = dict(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    if args.self_correct:
        out["parallel"] = parallel_vs_self_correct(model, tok, problems, budget=args.parallel,
                                                   temperature=args.temperature, seed=args.seed, **kw)
    if args.attempts:
        out["sequential"] = sequential_attempts(model, tok, problems, attempts=args.attempts, **kw)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "scaling.json").write_text(json.dumps(out, indent=2))
    out["plot"] = plot_scaling(out.get("parallel"), out.get("sequential"), str(out_dir / "scaling.png"),
                               title=f"inference-time scaling: {Path(args.model).name}")
    if args.json:
        print(json.dumps(out))
        return 0
    if "parallel" in out:
        p = out["parallel"]
        print(f"{p['problems']} problems, T = {p['temperature']}, single sample {p['single_sample_accuracy']:.3f}")
        print(f"{'samples':>8} {'parallel maj.':>14} {'self-correct maj.':>18}")
        for r in p["curve"]:
            print(f"{r['samples']:>8} {r['parallel_majority']:>14.3f} {r['self_correct_majority']:>18.3f}")
    if "sequential" in out:
        s = out["sequential"]
        print("sequential greedy attempts: " + "  ".join(f"Acc@{t + 1} {a:.3f}" for t, a in enumerate(s["accuracy_at"])))
    print(f"wrote {out_dir / 'scaling.json'} and {out['plot']}")
    return 0


def add_commands(sub: Any) -> None:
    ev = sub.add_parser("eval", help="inference-time scaling: parallel vs self-corrected samples, N attempts",
                        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("--model", required=True, help="local HF model dir or checkpoint")
    ev.add_argument("--parallel", type=int, default=0, metavar="K", help="sample budget per problem (even)")
    ev.add_argument("--self-correct", action="store_true",
                    help="compare majority@K parallel with K/2 samples each self-corrected once")
    ev.add_argument("--attempts", type=int, default=0, metavar="N", help="N sequential greedy attempts")
    ev.add_argument("--temperature", type=float, default=0.7)
    ev.add_argument("--data", help="JSONL/Parquet problems (default: synth_linear eval problems)")
    ev.add_argument("--source", default="math", help="problem family of --data (math, gsm8k)")
    ev.add_argument("--problems", type=int, default=200, help="how many problems")
    ev.add_argument("--max-new-tokens", type=int, default=32)
    ev.add_argument("--batch-size", type=int, default=256)
    ev.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--out", default="runs/eval_scaling", help="folder for scaling.json and scaling.png")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_eval)
