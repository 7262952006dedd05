"""Two-attempt rollouts (the engine itself is `decode.py`, or vLLM via `vllm_engine.py`).

For each problem x: sample y1 ~ π(·|x), then y2 ~ π(·|x2) with x2 = x ⊕ y1 ⊕ p built from
the *sampled token ids* of y1 (see `prompts.turn2_suffix`). Training uses k samples per
prompt at temperature 1.0; evaluation uses greedy decoding (temperature 0, k = 1).

Engine details (`decode.decode_turns`): length bucketing, left padding + attention mask +
KV cache, both turns decoded in one pass with turn 2 continuing each row's own cache of
x ⊕ y1 (no re-prefill), finished rows dropped from the batch; each attempt records whether
it hit `max_new_tokens` (truncated).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import torch

from score_core.generation.decode import Generation, decode_turns
from score_core.generation.prompts import render_turn1, turn2_suffix
from score_core.schema import Episode, Problem


def eos_ids(tokenizer: Any, model: Any) -> set[int]:
    ids = {tokenizer.eos_token_id}
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(gen_eos) if isinstance(gen_eos, (list, tuple)) else {gen_eos}
    return {i for i in ids if i is not None}


def pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def two_turn_prompts(
    tokenizer: Any, problems: Sequence[Problem], k: int, style: str = "score"
) -> tuple[list[tuple[int, int]], list[list[int]], list[list[int]]]:
    """rows (problem index, sample index), turn-1 prompt ids x and turn-2 suffix ids p per row
    (`style`: the paper's instruction, or "self_refine")."""
    x_ids = [tokenizer(render_turn1(p, tokenizer), add_special_tokens=False)["input_ids"] for p in problems]
    suffix_ids = [tokenizer(turn2_suffix(p, tokenizer, style), add_special_tokens=False)["input_ids"] for p in problems]
    bos = [tokenizer.bos_token_id] if _wants_bos(tokenizer) else []
    rows = [(j, s) for j in range(len(problems)) for s in range(k)]
    return rows, [bos + x_ids[j] for j, _ in rows], [suffix_ids[j] for j, _ in rows]


def rollout_two_attempts(
    model: Any,
    tokenizer: Any,
    problems: Sequence[Problem],
    *,
    k: int,
    temperature: float,
    max_new_tokens: int,
    batch_size: int,
    run_id: str,
    stage: str,
    iteration: int,
    seed: int = 0,
    progress: Optional[Callable[[int], None]] = None,
    engine: Optional[Any] = None,
    turn2_style: str = "score",
) -> list[Episode]:
    """k two-attempt episodes per problem; rewards are left ungraded.

    `engine` is an object with `two_turns(prompts, suffixes, max_new_tokens, temperature)`
    (e.g. `vllm_engine.VLLMEngine`); None decodes with `model` here (`decode.decode_turns`).
    """
    torch.manual_seed(seed)
    rows, turn1_prompts, suffixes = two_turn_prompts(tokenizer, problems, k, turn2_style)
    if engine is not None:
        gens = engine.two_turns(turn1_prompts, suffixes, max_new_tokens=max_new_tokens,
                                temperature=temperature, seed=seed)
    else:
        gens = decode_turns(model, turn1_prompts, suffixes, max_new_tokens=max_new_tokens,
                            temperature=temperature, batch_size=batch_size,
                            eos_ids=eos_ids(tokenizer, model), pad_id=pad_id(tokenizer), progress=progress)
    y1 = [g[0] for g in gens]
    y2 = [g[1] for g in gens]
    turn2_prompts = [turn1_prompts[r] + list(y1[r].ids) + suffixes[r] for r in range(len(rows))]
    decode = lambda ids: tokenizer.decode(list(ids), skip_special_tokens=True)  # noqa: E731
    return [
        Episode(
            run_id=run_id, stage=stage, iteration=iteration, problem_id=problems[j].problem_id,
            sample_index=s, attempt1=decode(y1[r].ids), attempt2=decode(y2[r].ids),
            prompt_tokens1=len(turn1_prompts[r]), prompt_tokens2=len(turn2_prompts[r]),
            tokens1=len(y1[r].ids), tokens2=len(y2[r].ids),
            truncated1=y1[r].truncated, truncated2=y2[r].truncated,
            y1_ids=y1[r].ids, y2_ids=y2[r].ids, stop1_id=y1[r].stop_id, stop2_id=y2[r].stop_id,
            logp1=y1[r].logprobs, logp2=y2[r].logprobs, temperature=temperature,
        )
        for r, (j, s) in enumerate(rows)
    ]


def _wants_bos(tokenizer: Any) -> bool:
    """Prepend BOS when the tokenizer defines one and templates do not already add it."""
    if tokenizer.bos_token_id is None:
        return False
    if getattr(tokenizer, "chat_template", None):
        return False  # chat templates render their own BOS where the model wants one
    return bool(getattr(tokenizer, "add_bos_token", True))


def prompt_ids(tokenizer: Any, problem: Problem) -> tuple[list[int], list[int]]:
    """Token ids of x (with BOS where wanted) and of the turn-2 suffix p for one problem."""
    bos = [tokenizer.bos_token_id] if _wants_bos(tokenizer) else []
    x = bos + tokenizer(render_turn1(problem, tokenizer), add_special_tokens=False)["input_ids"]
    return x, tokenizer(turn2_suffix(problem, tokenizer), add_special_tokens=False)["input_ids"]


class Layout(NamedTuple):
    """One episode as the trainer scores it: ids = [x | y1 | B | y2 (| stop2)].

    y1 occupies ids[x_len:y1_end], y2 ids[y2_start:]. The stop token that ended y1 is
    not in ids (turn 2 reads B right after y1, as at sampling time) but it is a target:
    the logits after y1's last token predict `stop1` (None: y1 was truncated), so the
    first attempt's stop decision gets policy gradient and KL like every other token.
    """

    ids: list[int]
    x_len: int
    y1_end: int
    y2_start: int
    stop1: Optional[int]


def stop_target(tokenizer: Any, truncated: bool, stop_id: Optional[int]) -> Optional[int]:
    """The stop token an attempt ended with: the one the model sampled (chat models have
    several end ids); traces that did not record it fall back to the tokenizer's EOS."""
    if truncated:
        return None
    return stop_id if stop_id is not None else tokenizer.eos_token_id


def episode_token_layout(
    tokenizer: Any, problem: Problem, episode: Episode,
    prompt: Optional[tuple[list[int], list[int]]] = None,
) -> Layout:
    """The `Layout` of one episode. The stop token after y2 is appended when y2 stopped
    by itself, and y1's stop is recorded as a target, so both stop decisions are trained.
    `prompt`: precomputed `prompt_ids(tokenizer, problem)`.
    """
    x, suffix = prompt if prompt is not None else prompt_ids(tokenizer, problem)
    stop2 = stop_target(tokenizer, episode.truncated2, episode.stop2_id)
    ids = x + list(episode.y1_ids) + suffix + list(episode.y2_ids) + ([] if stop2 is None else [stop2])
    y1_end = len(x) + len(episode.y1_ids)
    return Layout(ids, len(x), y1_end, y1_end + len(suffix),
                  stop_target(tokenizer, episode.truncated1, episode.stop1_id))
