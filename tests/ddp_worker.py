"""Run by tests/test_ddp.py under `accelerate launch` (or plainly for one process): a fixed
tiny model trains on fixed episodes; the main process saves the final weights and history."""
import sys

import torch

from score_core.config import DebugBaseConfig
from score_core.generation.debug_model import build_model, build_tokenizer
from score_core.schema import Episode
from score_core.problems.synthetic import make_problems
from score_core.method.plan import Iteration
from score_core.method.trainer import Hyper, train_on_episodes

TINY = DebugBaseConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, seed=3)


def fixed_episodes(problems, k):
    """Deterministic episodes of varied lengths (no sampling, so every process agrees)."""
    g = torch.Generator().manual_seed(0)
    eps = []
    for j, p in enumerate(problems):
        for s in range(k):
            n1, n2 = 2 + (j + s) % 5, 1 + (2 * j + s) % 6
            y1 = tuple(torch.randint(4, 90, (n1,), generator=g).tolist())
            y2 = tuple(torch.randint(4, 90, (n2,), generator=g).tolist())
            eps.append(Episode(run_id="ddp", stage="stage2", iteration=1, problem_id=p.problem_id, sample_index=s,
                               attempt1="", attempt2="", prompt_tokens1=0, prompt_tokens2=0, tokens1=n1, tokens2=n2,
                               truncated1=False, truncated2=s % 2 == 0, y1_ids=y1, y2_ids=y2,
                               reward1=float((j + s) % 2), reward2=float((j * s) % 3 == 0)))
    return eps


def train_once(acc, stage: str) -> dict:
    tok = build_tokenizer()
    policy, ref = build_model(TINY, tok), build_model(TINY, tok).requires_grad_(False)
    problems = make_problems("synth_linear", 5, 0, "train")
    eps = fixed_episodes(problems, k=3)
    init = {k: v.clone() for k, v in policy.state_dict().items()}
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    policy, opt = acc.prepare(policy, opt)
    hp = Hyper(lr=1e-3, minibatch_prompts=3, micro_batch_episodes=2,
               epochs=2, max_grad_norm=1.0, micro_batch_tokens=64, seed=1)
    it = (Iteration("stage1", "stage1", beta1=0.05, beta2=0.2) if stage == "stage1"
          else Iteration("stage2", "stage2", alpha=10.0, beta1=0.05))
    hist = train_on_episodes(policy, ref, tok, opt, acc, eps, {p.problem_id: p for p in problems}, it, hp)
    return {"state": acc.unwrap_model(policy).state_dict(), "init": init, "history": hist}


def main(out_path: str) -> None:
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    out = {stage: train_once(acc, stage) for stage in ("stage1", "stage2")}
    if acc.is_main_process:
        torch.save({**out, "world": acc.num_processes}, out_path)
    acc.wait_for_everyone()


if __name__ == "__main__":
    main(sys.argv[1])
