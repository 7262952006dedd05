"""`score bench rollout`, `decode-cache`, `train` and `floor`: ratios against a baseline run alongside.

Hooked into `score bench` by `score.cli._optional_hooks`. Timings on a shared CPU are
noisy: read the ratios, not the absolute numbers.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from typing import Any

ROLLOUT_HELP = """examples:
  score bench rollout                                   # random debug model, 32 prompts, batch 32
  score bench rollout --pretrain-steps 300              # a quickly pre-trained debug model (varied lengths)
  score bench rollout --model models/smollm2-135m-instruct --max-new-tokens 48 --json
  score bench rollout --engine vllm --model models/smollm2-135m-instruct   # + vLLM (scripts/ensure_vllm.sh)
"""
CACHE_HELP = """examples:
  score bench decode-cache --model runs/code/bases/debug-seed0 --family synth_code --threads 1
  score bench decode-cache --pretrain-steps 300          # a quickly pre-trained debug model
"""
TRAIN_HELP = """examples:
  score bench train                                     # debug model, one Stage II step
  score bench train --model models/smollm2-135m-instruct --episodes 16 --json
"""
FLOOR_HELP = """examples:
  score bench floor --cell runs/code/cells/debug-seed0/score-seed0 --iteration 16 --threads 1
  score bench floor --cell runs/ablate/cells/debug-seed1/multi_turn_rl-seed0 --iteration 3 --json
The cell must be one of a finished (or partly finished) `score ablate` run: the bench replays
that iteration from its files and checks it did the same work (exit 1 if not).
"""


def _debug_model(pretrain_steps: int, seed: int) -> tuple[Any, Any]:
    import torch

    from score_core.config import DebugBaseConfig
    from score_core.generation.debug_model import build_model, build_tokenizer, pretrain_debug_base
    from score_core.generation.models import load_model, load_tokenizer

    cfg = DebugBaseConfig(seed=seed)
    if pretrain_steps <= 0:
        torch.manual_seed(seed)
        tok = build_tokenizer()
        return build_model(cfg, tok), tok
    out = tempfile.mkdtemp(prefix="score-bench-base-")
    pretrain_debug_base(cfg.model_copy(update={"steps": pretrain_steps, "corpus_size": 4000}), out)
    return load_model(out), load_tokenizer(out)


def _model(args: argparse.Namespace) -> tuple[Any, Any, str]:
    import torch

    from score_core.generation.models import load_model, load_tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model:
        return load_model(args.model, dtype=args.dtype), load_tokenizer(args.model), args.model
    model, tok = _debug_model(args.pretrain_steps, args.seed)
    if args.dtype == "bfloat16":
        import torch

        model = model.to(torch.bfloat16)
    name = f"debug ({'random' if args.pretrain_steps <= 0 else f'pre-trained {args.pretrain_steps} steps'})"
    return model, tok, name


def _problems(n: int, seed: int, family: str = "synth_linear") -> list[Any]:
    from score_core.problems import synthetic, synthetic_code

    if family == "synth_code":
        return synthetic_code.make_problems(n, seed, "eval")
    return synthetic.make_problems(family, n, seed, "eval")


def cmd_bench_rollout(args: argparse.Namespace) -> int:
    from score_core.tools.bench_rollout import bench_rollout

    model, tok, name = _model(args)
    vllm_dir = None
    if args.engine == "vllm":
        vllm_dir = args.model
        if not vllm_dir:  # the in-memory debug model: vLLM loads checkpoints from disk
            vllm_dir = tempfile.mkdtemp(prefix="score-bench-vllm-model-")
            model.save_pretrained(vllm_dir)
            tok.save_pretrained(vllm_dir)
    res = bench_rollout(model, tok, _problems(args.prompts, args.seed), batch_size=args.batch_size,
                        max_new_tokens=args.max_new_tokens, repeats=args.repeats, vllm_model_dir=vllm_dir)
    res = {"model": name, "dtype": args.dtype, "threads": __import__("torch").get_num_threads(), **res}
    if args.json:
        print(json.dumps(res))
    else:
        print(f"model {name}, {res['prompts']} prompts × 2 turns, greedy, batch {res['batch_size']}, "
              f"≤{res['max_new_tokens']} new tokens/turn, median of {res['repeats']}")
        for m in ("naive", "hf_batched", "engine", "vllm"):
            if m in res:
                r = res[m]
                ratio = res.get(f"ratio_{m}_vs_naive", 1.0)
                print(f"  {m:<11} {r['tokens']:>6} tokens {r['seconds']:8.2f} s {r['tokens_per_s']:9.1f} tok/s"
                      f"  ×{ratio:.2f} vs naive")
        print(f"  greedy outputs identical to naive: {res['identical']} "
              f"({res['mismatched_rows_engine']} of {res['prompts']} rows differ"
              + (f"; vLLM: {res['mismatched_rows_vllm']}" if "vllm" in res else "") + ")")
        if "vllm_timing" in res:
            t = res["vllm_timing"]
            print(f"  vLLM engine start {t['engine_start_s']:.1f} s; in-place weight sync {t['weight_sync_s']:.2f} s "
                  f"vs a rebuilt engine {t['rebuild_s']:.1f} s: {t['saving_per_iteration_s']:.1f} s saved per iteration")
    return 0 if res["identical"] else 1


def cmd_bench_decode_cache(args: argparse.Namespace) -> int:
    from score_core.tools.bench_kv_cache import bench_kv_cache

    model, tok, name = _model(args)
    res = bench_kv_cache(model, tok, _problems(args.prompts, args.seed, args.family), k=args.k,
                         batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                         temperature=args.temperature, repeats=args.repeats, seed=args.seed)
    res = {"model": name, "family": args.family, "threads": __import__("torch").get_num_threads(), **res}
    if args.json:
        print(json.dumps(res))
        return 0 if res["identical"] else 1
    print(f"model {name}, {args.prompts} {args.family} prompts × k {args.k} = {res['episodes']} two-attempt "
          f"episodes, T {res['temperature']}, batch {res['batch_size']}, ≤{res['max_new_tokens']} new tokens/turn, "
          f"{res['threads']} thread(s), median of {res['repeats']}")
    for m in ("dynamic", "growing"):
        r = res[m]
        print(f"  {m:<8} {r['tokens']:>7} tokens {r['seconds']:8.2f} s {r['tokens_per_s']:9.1f} tok/s")
    print(f"  growing vs dynamic (transformers' DynamicCache): ×{res['ratio_growing_vs_dynamic']:.2f} tokens/s")
    print(f"  same sampled tokens: {res['identical']} ({res['mismatched_rows']} of {res['episodes']} episodes "
          f"differ); max |Δ log p| {res['max_logp_diff']:.1e}")
    return 0 if res["identical"] else 1


def cmd_bench_train(args: argparse.Namespace) -> int:
    from score_core.tools.bench_train import bench_train

    model, tok, name = _model(args)
    res = bench_train(model, tok, _problems(args.prompts, args.seed), k=args.k, max_new_tokens=args.max_new_tokens,
                      token_budget=args.token_budget, bf16=args.bf16, repeats=args.repeats)
    res = {"model": name, "threads": __import__("torch").get_num_threads(), **res}
    if args.json:
        print(json.dumps(res))
    else:
        print(f"model {name}, one Stage II step on {res['episodes']} episodes ({res['tokens']} tokens), "
              f"median of {res['repeats']}, autocast {res['autocast']}")
        for m in ("plain", "trainer"):
            r = res[m]
            print(f"  {m:<8} {r['seconds']:8.3f} s/step {r['tokens_per_s']:9.1f} tok/s")
        print(f"  trainer / plain tokens/s: ×{res['ratio_trainer_vs_plain']:.3f}; "
              f"max |Δ param| between the two updates: {res['max_param_diff']:.2e}")
    return 0


def cmd_bench_floor(args: argparse.Namespace) -> int:
    import torch

    from score_core.tools.bench_floor import bench_floor, format_floor

    if args.threads:
        torch.set_num_threads(args.threads)
    res = bench_floor(args.cell, args.iteration, repeats=args.repeats)
    print(json.dumps(res) if args.json else format_floor(res))
    same = res["same_as_the_cell"]  # (other thread counts than the cell's may round differently, not more)
    ok = same["rollout_rows_differing"] == 0 and same["max_abs_loss_diff"] <= 1e-4
    return 0 if ok and same["training_steps"][0] == same["training_steps"][1] else 1


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="local HF model dir (default: the debug model)")
    p.add_argument("--pretrain-steps", type=int, default=0,
                   help="debug model only: pre-train this many steps first (0 = random weights)")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--prompts", type=int, default=32, help="synth_linear problems (default 32)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2, help="alternating repeats; the median is reported")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0,
                   help="torch intra-op threads (0: torch's default); 1 is steadier on a shared machine")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def add_bench_commands(bench_sub: Any) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    ro = bench_sub.add_parser("rollout", help="two-attempt rollout engine vs naive per-sample generate",
                              description="Greedy two-attempt rollouts on the same prompts with naive "
                              "per-sample generate, batched generate and the pipeline's engine; prints "
                              "tokens/s, ratios and whether the greedy outputs are identical (exit 1 if not).",
                              epilog=ROLLOUT_HELP, formatter_class=fmt)
    _common(ro)
    ro.add_argument("--batch-size", type=int, default=32)
    ro.add_argument("--engine", choices=["hf", "vllm"], default="hf",
                    help="vllm: also the vLLM rollout engine on the same prompts (its engine start, "
                    "weight sync and a rebuild timed once)")
    ro.set_defaults(func=cmd_bench_rollout)
    dc = bench_sub.add_parser("decode-cache", help="the engine's in-place KV cache vs transformers' DynamicCache",
                              description="Sampled two-attempt rollouts (k per prompt) through the pipeline's "
                              "engine with its in-place KV cache and with transformers' DynamicCache "
                              "(torch.cat per step), same RNG seed; prints tokens/s, the ratio and whether both "
                              "sampled the same tokens (exit 1 if not).", epilog=CACHE_HELP, formatter_class=fmt)
    _common(dc)
    dc.set_defaults(prompts=256, max_new_tokens=36)
    dc.add_argument("--family", choices=["synth_linear", "synth_code"], default="synth_linear")
    dc.add_argument("--k", type=int, default=4, help="samples per prompt (default 4)")
    dc.add_argument("--batch-size", type=int, default=512, help="rows decoded together (default 512)")
    dc.add_argument("--temperature", type=float, default=1.0)
    dc.set_defaults(func=cmd_bench_decode_cache)
    tr = bench_sub.add_parser("train", help="a Stage II step through the trainer vs a plain PyTorch loop",
                              description="The same Stage II batch, one optimizer step through "
                              "trainer.train_on_episodes and through a plain PyTorch loop; prints tokens/s "
                              "and the ratio.", epilog=TRAIN_HELP, formatter_class=fmt)
    _common(tr)
    tr.add_argument("--k", type=int, default=4, help="samples per prompt")
    tr.add_argument("--token-budget", type=int, default=4096, help="trainer micro-batch token budget")
    tr.add_argument("--bf16", action="store_true", help="bf16 autocast in both loops")
    tr.set_defaults(func=cmd_bench_train)
    fl = bench_sub.add_parser("floor", help="a table cell's iteration: wall time vs its matmul + attention kernels",
                              description="Replays one iteration of a `score ablate` cell (its rollout and its "
                              "training step, from the cell's own files), times it plainly, then splits the "
                              "kernels' time under torch.profiler into matmul, attention and the rest; prints "
                              "wall / (matmul + attention): the most that removing everything else could buy.",
                              epilog=FLOOR_HELP, formatter_class=fmt)
    fl.add_argument("--cell", required=True, help="a cell's run directory: <ablate out>/cells/<base>/<method>-seed<s>")
    fl.add_argument("--iteration", type=int, required=True, help="which training iteration (1-based)")
    fl.add_argument("--repeats", type=int, default=3, help="plain timed runs; the median is reported")
    fl.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the table's cells ran)")
    fl.add_argument("--json", action="store_true", help="print one JSON object")
    fl.set_defaults(func=cmd_bench_floor)
