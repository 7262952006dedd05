"""The rollout engine (`decode.py`) against a deliberately naive oracle written here.

Oracle: one row at a time, a full forward over the whole sequence at every step — no KV
cache, no padding, no attention mask — and argmax; the attempts are built exactly as
x ⊕ y1 ⊕ p ⊕ y2 ⊕ p ⊕ … (the stop token that ended an attempt is not part of the next
context; a truncated attempt's last token is). The engine batches, buckets by length, keeps
one KV cache row per sample, drops finished rows and continues each row's own cache for
the next attempt; it must reproduce the oracle token for token, with the same stop ids and
the same log-probabilities, at batch sizes 1, 3, 8 and 64 — through `decode.decode_turns`,
`rollout.rollout_two_attempts` and `inference_scaling` (parallel vs self-correct, N = 3
sequential attempts). Sampled attempts (T = 1, T = 0.7) are checked by recomputing the
log-probability of every sampled token given the same context with the oracle.

Two models: (a) a tiny debug Llama trained for a few seconds (sharp enough logits that an
argmax is never a float-rounding tie) with `=` as an extra stop token, so attempts end at
different steps, some stopping and some truncated; (b) SmolLM2-135M-Instruct with its chat
template on GSM8K problems (slow).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import pytest
import torch

from score_core.config import DebugBaseConfig
from score_core.generation.debug_model import build_model, build_tokenizer, encode_corpus
from score_core.generation.decode import decode_turns
from score_core.tools.inference_scaling import scaling_samples, sequential_generations
from score_core.generation.rollout import eos_ids, pad_id, rollout_two_attempts, two_turn_prompts
from score_core.problems.synthetic import make_problems

BATCH_SIZES = (1, 3, 8, 64)
LOGPROB_TOL = 1e-4  # fp32
SMOL = Path(__file__).resolve().parents[1] / "models" / "smollm2-135m-instruct"


def stop_of(g) -> Optional[int]:
    return g.stop_id


def logprobs_of(g) -> Optional[Sequence[float]]:
    return g.logprobs


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Thousands of tiny forwards: one intra-op thread is faster on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class Attempt:
    ids: tuple[int, ...]
    stop_id: Optional[int]  # None: truncated at max_new_tokens
    logprobs: tuple[float, ...]  # log_softmax(logits) of each chosen token, then of the stop token
    margin: float  # smallest top-1 − top-2 logit gap over the attempt (near-tie diagnostics)


@torch.no_grad()
def oracle(model, prompt: Sequence[int], suffix: Sequence[int], *, n_turns: int, max_new_tokens: int,
           eos: set[int]) -> tuple[Attempt, ...]:
    seq, out = list(prompt), []
    for turn in range(n_turns):
        if turn:
            seq += list(suffix)
        ids, logps, stop, margin = [], [], None, math.inf
        while len(ids) < max_new_tokens:
            logits = model(input_ids=torch.tensor([seq])).logits[0, -1]
            top2 = logits.float().topk(2).values
            margin = min(margin, float(top2[0] - top2[1]))
            tok = int(logits.argmax())
            logps.append(float(torch.log_softmax(logits.float(), -1)[tok]))
            if tok in eos:
                stop = tok
                break
            ids.append(tok)
            seq.append(tok)
        out.append(Attempt(tuple(ids), stop, tuple(logps), margin))
    return tuple(out)


@torch.no_grad()
def oracle_logprobs(model, prompt: Sequence[int], suffix: Sequence[int], gens, temperature: float
                    ) -> list[list[float]]:
    """log_softmax(logits / T) of every token the engine sampled (ids, then the stop token),
    given the context the oracle builds from those samples; one uncached, unpadded, unmasked
    forward per attempt (causal: position i sees exactly seq[:i + 1])."""
    seq, out = list(prompt), []
    for turn, g in enumerate(gens):
        if turn:
            seq += list(suffix)
        targets = list(g.ids) + ([] if stop_of(g) is None else [stop_of(g)])
        logits = model(input_ids=torch.tensor([seq + targets])).logits[0]  # (T, V)
        logp = torch.log_softmax(logits.float() / (temperature if temperature > 0 else 1.0), -1)
        out.append([float(logp[len(seq) - 1 + i, tok]) for i, tok in enumerate(targets)])
        seq += list(g.ids)
    return out


class Oracle:
    """Memoised oracle runs (duplicate prompts cost nothing)."""

    def __init__(self, model, eos: set[int], max_new_tokens: int):
        self.model, self.eos, self.max_new, self.memo = model, eos, max_new_tokens, {}

    def __call__(self, prompt, suffix, n_turns: int) -> tuple[Attempt, ...]:
        key = (tuple(prompt), tuple(suffix or ()), n_turns)
        if key not in self.memo:
            self.memo[key] = oracle(self.model, prompt, suffix or (), n_turns=n_turns,
                                    max_new_tokens=self.max_new, eos=self.eos)
        return self.memo[key]


def assert_matches(label: str, got: Sequence[Sequence], want: Sequence[Sequence[Attempt]], max_new: int) -> None:
    """Token-for-token, stop ids, truncation, then the recorded greedy log-probs."""
    assert len(got) == len(want)
    bad = []
    for r, (gens, atts) in enumerate(zip(got, want)):
        assert len(gens) == len(atts), f"{label}: row {r} has {len(gens)} attempts, want {len(atts)}"
        for t, (g, w) in enumerate(zip(gens, atts)):
            if tuple(g.ids) != w.ids or stop_of(g) != w.stop_id or g.truncated != (w.stop_id is None):
                bad.append(f"row {r} attempt {t + 1}: engine {tuple(g.ids)} stop {stop_of(g)} truncated "
                           f"{g.truncated}; oracle {w.ids} stop {w.stop_id} (oracle's smallest top-2 logit "
                           f"gap {w.margin:.2e})")
    assert not bad, f"{label}: {len(bad)} attempts differ from the oracle:\n" + "\n".join(bad[:8])
    worst = 0.0
    for gens, atts in zip(got, want):
        for g, w in zip(gens, atts):
            lp = logprobs_of(g)
            assert lp is not None and len(lp) == len(g.ids) + (stop_of(g) is not None) == len(w.logprobs)
            assert all(isinstance(v, float) for v in lp)
            worst = max([worst] + [abs(a - b) for a, b in zip(lp, w.logprobs)])
            assert len(g.ids) <= max_new
    assert worst < LOGPROB_TOL, f"{label}: recorded greedy log-probs off the oracle's by {worst:.2e}"


def assert_sampled_logprobs(label: str, model, prompts, suffixes, got, temperature: float, eos: set[int],
                            max_new: int) -> None:
    worst = 0.0
    for prompt, suffix, gens in zip(prompts, suffixes, got):
        want = oracle_logprobs(model, prompt, suffix, gens, temperature)
        for g, w in zip(gens, want):
            lp = logprobs_of(g)
            assert lp is not None and len(lp) == len(w), f"{label}: {len(lp or ())} log-probs, want {len(w)}"
            assert (stop_of(g) is None) == g.truncated and (stop_of(g) in eos or g.truncated)
            assert g.truncated == (stop_of(g) is None and len(g.ids) == max_new)
            worst = max([worst] + [abs(a - b) for a, b in zip(lp, w)])
    assert worst < LOGPROB_TOL, f"{label}: sampled-token log-probs off the oracle's by {worst:.2e}"


def ending_steps(rows: Sequence[Sequence[Attempt]], turn: int = 0) -> Counter:
    """How many decoding steps attempt `turn` took per row (the stop token counts as a step)."""
    return Counter((len(a[turn].ids) + (a[turn].stop_id is not None), a[turn].stop_id is None) for a in rows)


def assert_varied_endings(rows: Sequence[Sequence[Attempt]]) -> None:
    ends = ending_steps(rows)
    steps = {s for s, _ in ends}
    assert len(steps) >= 3, f"attempt 1 should end at varied steps, got {ends}"
    assert any(trunc for _, trunc in ends) and any(not trunc for _, trunc in ends), ends


# --- (a) the debug model ------------------------------------------------------------------

DEBUG_MAX_NEW = 6


@pytest.fixture(scope="module")
def debug():
    """A 2-layer debug Llama trained for 80 steps (≈ 4 s); `=` is a second stop token."""
    torch.manual_seed(0)
    tok = build_tokenizer()
    model = build_model(DebugBaseConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128), tok)
    ids, labels = encode_corpus(2000, 0, tok)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(80):
        idx = torch.randint(0, len(ids), (32,), generator=gen)
        logits = model(input_ids=ids[idx]).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels[idx].flatten(), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    eos = {tok.eos_token_id, tok.convert_tokens_to_ids("=")}
    model.generation_config.eos_token_id = sorted(eos)  # read by rollout.eos_ids
    assert eos_ids(tok, model) == eos
    problems = make_problems("synth_linear", 70, 3, "eval")
    _, x, suffixes = two_turn_prompts(tok, problems, 1)
    for i in range(0, len(x), 4):  # more varied prompt lengths: prepend part of another prompt
        x[i] = x[(i + 1) % len(x)][: 2 + i % 9] + x[i]
    assert len(set(map(len, x))) >= 6
    # Rows as a rollout has them: 64 samples of the shortest prompt (with batch 64, one bucket
    # of equal lengths, i.e. no left padding at all), then every prompt twice (mixed lengths).
    short = min(range(len(x)), key=lambda i: len(x[i]))
    rows = [short] * 64 + [i for i in range(len(x)) for _ in range(2)]
    x, suffixes = [x[i] for i in rows], [suffixes[i] for i in rows]
    return model, tok, eos, problems, x, suffixes, Oracle(model, eos, DEBUG_MAX_NEW)


def test_debug_setup_ends_rows_at_different_steps(debug):
    model, _, _, _, x, suffixes, orc = debug
    rows = [orc(p, s, 2) for p, s in zip(x, suffixes)]
    assert_varied_endings(rows)
    # fp32 rounding moves these logits by ~1e-6: every argmax here is decided by far more
    assert min(a.margin for r in rows for a in r) > 1e-4


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_decode_turns_equals_the_oracle(debug, batch_size):
    model, tok, eos, _, x, suffixes, orc = debug
    got = decode_turns(model, x, suffixes, max_new_tokens=DEBUG_MAX_NEW, temperature=0.0, batch_size=batch_size,
                       eos_ids=eos, pad_id=tok.pad_token_id)
    assert_matches(f"decode_turns batch {batch_size}", got, [orc(p, s, 2) for p, s in zip(x, suffixes)],
                   DEBUG_MAX_NEW)
    one = decode_turns(model, x, None, max_new_tokens=DEBUG_MAX_NEW, temperature=0.0, batch_size=batch_size,
                       eos_ids=eos, pad_id=tok.pad_token_id)
    assert_matches(f"one turn, batch {batch_size}", one, [orc(p, None, 1) for p in x], DEBUG_MAX_NEW)


@pytest.mark.parametrize("batch_size", (1, 3, 8, 64))
def test_three_attempts_equal_the_oracle(debug, batch_size):
    model, tok, eos, _, x, suffixes, orc = debug
    got = decode_turns(model, x, suffixes, max_new_tokens=DEBUG_MAX_NEW, temperature=0.0, batch_size=batch_size,
                       eos_ids=eos, pad_id=tok.pad_token_id, n_turns=3)
    assert_matches(f"n_turns 3, batch {batch_size}", got, [orc(p, s, 3) for p, s in zip(x, suffixes)],
                   DEBUG_MAX_NEW)


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_rollout_two_attempts_equals_the_oracle(debug, batch_size):
    model, tok, eos, problems, _, _, orc = debug
    episodes = rollout_two_attempts(model, tok, problems, k=2, temperature=0.0, max_new_tokens=DEBUG_MAX_NEW,
                                    batch_size=batch_size, run_id="r", stage="eval", iteration=0)
    rows, x, suffixes = two_turn_prompts(tok, problems, 2)
    want = [orc(p, s, 2) for p, s in zip(x, suffixes)]
    assert_varied_endings(want)
    for e, (j, s), w in zip(episodes, rows, want):
        assert (e.problem_id, e.sample_index) == (problems[j].problem_id, s)
        assert (e.y1_ids, e.truncated1, e.y2_ids, e.truncated2) == (
            w[0].ids, w[0].stop_id is None, w[1].ids, w[1].stop_id is None), f"batch {batch_size}, row {j}/{s}"
        if hasattr(e, "stop1_id"):  # traces that record what was sampled
            assert (e.stop1_id, e.stop2_id) == (w[0].stop_id, w[1].stop_id)


@pytest.mark.parametrize("batch_size", (3, 64))
def test_sampled_logprobs_match_the_oracle_given_the_same_context(debug, batch_size):
    model, tok, eos, _, x, suffixes, _ = debug
    for temperature in (1.0, 0.7):
        torch.manual_seed(5)
        got = decode_turns(model, x, suffixes, max_new_tokens=DEBUG_MAX_NEW, temperature=temperature,
                           batch_size=batch_size, eos_ids=eos, pad_id=tok.pad_token_id, n_turns=3)
        assert len({g[0].ids for g in got}) > 10  # really sampled
        assert_sampled_logprobs(f"T {temperature}, batch {batch_size}", model, x, suffixes, got, temperature,
                                eos, DEBUG_MAX_NEW)


@pytest.mark.parametrize("batch_size", (3, 64))
def test_inference_scaling_paths_equal_the_oracle(debug, batch_size):
    model, tok, eos, problems, _, _, orc = debug
    few = problems[:3]
    s = scaling_samples(model, tok, few, budget=64, temperature=0.0, max_new_tokens=DEBUG_MAX_NEW,
                        batch_size=batch_size, seed=0)  # the CLI's budgets: 64 (or 32) rows per problem
    assert_matches("parallel", s.parallel, [orc(p, None, 1) for p in s.parallel_prompts], DEBUG_MAX_NEW)
    assert_matches("self-correct", s.self_correct,
                   [orc(p, q, 2) for p, q in zip(s.self_correct_prompts, s.suffixes)], DEBUG_MAX_NEW)
    x, suffixes, gens = sequential_generations(model, tok, problems, attempts=3, max_new_tokens=DEBUG_MAX_NEW,
                                               batch_size=batch_size)
    assert_matches("sequential attempts N = 3", gens, [orc(p, q, 3) for p, q in zip(x, suffixes)], DEBUG_MAX_NEW)
    # the vote itself runs at T = 0.7: every sampled token's log-prob given its true context
    s = scaling_samples(model, tok, few, budget=16, temperature=0.7, max_new_tokens=DEBUG_MAX_NEW,
                        batch_size=batch_size, seed=1)
    assert_sampled_logprobs("parallel T 0.7", model, s.parallel_prompts, [()] * len(s.parallel), s.parallel, 0.7,
                            eos, DEBUG_MAX_NEW)
    assert_sampled_logprobs("self-correct T 0.7", model, s.self_correct_prompts, s.suffixes, s.self_correct, 0.7,
                            eos, DEBUG_MAX_NEW)


# --- (b) SmolLM2-135M-Instruct, chat template, GSM8K -----------------------------------------

SMOL_MAX_NEW = 8


@pytest.fixture(scope="module")
def smol(shared_data):
    if not (SMOL / "config.json").is_file():
        pytest.skip(f"{SMOL} is absent (scripts/setup.sh fetches it: `score models fetch smollm2-135m-instruct`)")
    from score_core.config import DatasetConfig
    from score_core.generation.models import load_model, load_tokenizer
    from score_core.problems.loaders import load_problems

    model, tok = load_model(str(SMOL)), load_tokenizer(str(SMOL))
    assert tok.chat_template and next(model.parameters()).dtype == torch.float32
    problems = load_problems(DatasetConfig(source="gsm8k", path=str(shared_data / "gsm8k_test.jsonl"),
                                           split="eval", limit=6, seed=0)).problems
    _, x, suffixes = two_turn_prompts(tok, problems, 1)
    eos = eos_ids(tok, model)
    # An extra stop token that ends some first attempts early, at different steps.
    free = decode_turns(model, x, None, max_new_tokens=SMOL_MAX_NEW, temperature=0.0, batch_size=8,
                        eos_ids=eos, pad_id=pad_id(tok))
    firsts = [{t: g[0].ids.index(t) for t in reversed(g[0].ids)} for g in free]  # token → first position
    candidates = {t for f in firsts for t in f}

    def spread(t):
        pos = [f[t] for f in firsts if t in f]
        return (len(pos) < len(firsts), len(set(pos)), -t)
    extra = max(candidates, key=spread)
    eos = eos | {extra}
    model.generation_config.eos_token_id = sorted(eos)
    return model, tok, eos, problems, x, suffixes, Oracle(model, eos, SMOL_MAX_NEW)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_smollm2_chat_rollouts_equal_the_oracle(smol):
    model, tok, eos, problems, x, suffixes, orc = smol
    assert all(p[:3] == x[0][:3] for p in x) and len(set(map(len, x))) >= 3  # chat template, mixed lengths
    want = [orc(p, s, 2) for p, s in zip(x, suffixes)]
    ends = ending_steps(want)
    assert len({s for s, _ in ends}) >= 2 and {trunc for _, trunc in ends} == {True, False}, ends
    rows2 = [i for i in range(len(x)) for _ in range(2)]  # every prompt twice: 12 rows
    x2, s2, want2 = [x[i] for i in rows2], [suffixes[i] for i in rows2], [want[i] for i in rows2]
    for batch_size in BATCH_SIZES:
        got = decode_turns(model, x2, s2, max_new_tokens=SMOL_MAX_NEW, temperature=0.0, batch_size=batch_size,
                           eos_ids=eos, pad_id=pad_id(tok))
        assert_matches(f"SmolLM2 batch {batch_size}", got, want2, SMOL_MAX_NEW)
    episodes = rollout_two_attempts(model, tok, problems, k=2, temperature=0.0, max_new_tokens=SMOL_MAX_NEW,
                                    batch_size=3, run_id="r", stage="eval", iteration=0)
    for e, w in zip(episodes, want2):
        assert (e.y1_ids, e.truncated1, e.y2_ids, e.truncated2) == (
            w[0].ids, w[0].stop_id is None, w[1].ids, w[1].stop_id is None)
    torch.manual_seed(3)
    sampled = decode_turns(model, x, suffixes, max_new_tokens=SMOL_MAX_NEW, temperature=1.0, batch_size=64,
                           eos_ids=eos, pad_id=pad_id(tok))
    assert_sampled_logprobs("SmolLM2 T 1", model, x, suffixes, sampled, 1.0, eos, SMOL_MAX_NEW)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_smollm2_long_attempts_keep_the_whole_context(smol):
    """Two 40-token attempts of one chat prompt (alone, and as k = 3 samples in one bucket):
    attempt 2 must read the whole ≈ 260-token context, system prompt included (the old engine
    cropped the oldest len(y1) cache entries here and attempt 2 diverged from the oracle)."""
    model, tok, _, _, x, suffixes, _ = smol
    max_new, eos = 40, {tok.eos_token_id}  # the chat model's own stop only: long attempts
    want = oracle(model, x[1], suffixes[1], n_turns=2, max_new_tokens=max_new, eos=eos)
    assert len(want[0].ids) >= 30  # enough generated tokens before attempt 2
    for batch_size, k in ((1, 1), (3, 3)):
        got = decode_turns(model, [x[1]] * k, [suffixes[1]] * k, max_new_tokens=max_new, temperature=0.0,
                           batch_size=batch_size, eos_ids=eos, pad_id=pad_id(tok))
        assert_matches(f"SmolLM2 2 × {max_new} tokens, {k} rows, batch {batch_size}", got, [want] * k, max_new)
