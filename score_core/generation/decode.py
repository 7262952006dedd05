"""The HF rollout engine: two-turn decoding with one KV cache row per sample.

`generate` decodes each turn in a separate call, so turn 2 re-reads x ⊕ y1 from scratch
and finished rows keep being computed until the slowest row stops. Here, per bucket of
rows (sorted by turn-1 prompt length, so left padding is small):

1. prefill: one forward over the left-padded prompts x (logits of the last position only);
2. decoding, one token per active row per step; a row whose attempt ended leaves the
   batch at once (its cache rows are dropped), so finished rows cost nothing;
3. turn 2 (prompt-prefix reuse): a row that finished y1 is parked with a copy of its own
   cache of x ⊕ y1; when the bucket's last y1 ends, the parked caches are re-batched
   (right-aligned, left holes masked) and ONE forward reads every row's [y1's unfed tail]
   ⊕ p — x ⊕ y1 is never recomputed — then y2 is decoded as in 2. Further attempts
   (`n_turns` > 2) repeat 3.
The caches append in place (`kv_cache.growing_cache`: a buffer that doubles, not a
`torch.cat` per step — the same keys and values in the same positions).

Invariant (asserted after every forward): the attention mask has exactly one column per
cached position, `mask.shape[1] == cache length`, in every turn, whether or not the batch has
padding — every decoding step appends a column of ones, so a parked row's mask covers its
whole cache of x ⊕ y1 (an earlier version stopped growing the mask once no row was padded,
and re-batching then cropped the oldest cache entries: turn 2 lost part or all of x).
Positions come from each row's own count of real tokens (padding and holes are masked;
rotary positions are baked into the cached keys, so moving cache columns is harmless),
so the distribution is exactly that of decoding the row alone; greedy outputs equal a naive
uncached one-row decoder token for token (tests/test_decode_oracle.py) and per-sample
`generate` (`score bench rollout`), up to float rounding.
Sampling is plain temperature sampling (no top-k / top-p), like the HF path it replaces.
Every attempt records the stop token it sampled and the log-probability of each sampled
token under the sampling distribution (`Generation.logprobs`; a gather, no extra forward).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch

from score_core.generation.kv_cache import growing_cache


@dataclass(frozen=True)
class Generation:
    """One attempt as sampled. `logprobs[t]` = log μ(token_t | context) under the sampling
    distribution (softmax(logits / T); T = 1 for greedy decoding) for every token of `ids`
    and then, when the attempt stopped by itself, for the stop token: len(logprobs) ==
    len(ids) + (stop_id is not None). Empty when the engine did not record them."""

    ids: tuple[int, ...]  # generated token ids, stop token and padding removed
    truncated: bool  # no stop token within max_new_tokens
    stop_id: Optional[int] = None  # the stop token the model sampled (None: truncated)
    logprobs: tuple[float, ...] = ()  # behaviour log-probabilities, see above


@torch.no_grad()
def decode_turns(
    model: Any,
    prompts: Sequence[Sequence[int]],
    suffixes: Optional[Sequence[Sequence[int]]],
    *,
    max_new_tokens: int,
    temperature: float,
    batch_size: int,
    eos_ids: set[int],
    pad_id: int,
    progress: Optional[Callable[[int], None]] = None,
    n_turns: Optional[int] = None,
    new_cache: Callable[[Any], Any] = growing_cache,
) -> list[tuple[Generation, ...]]:
    """One (suffixes None) or `n_turns` (default 2) turns per prompt; turn t+1 continues
    prompt ⊕ y1 ⊕ suffix ⊕ … ⊕ yt ⊕ suffix (the same suffix after every attempt).
    `new_cache(model.config)` builds each KV cache (`kv_cache.growing_cache`; transformers'
    `DynamicCache` is the baseline of `score bench decode-cache`).

    Returns, in prompt order, a tuple of one Generation per turn.
    """
    n_turns = 1 if suffixes is None else (n_turns or 2)
    if suffixes is not None and (len(suffixes) != len(prompts) or any(len(s) == 0 for s in suffixes)):
        raise ValueError("suffixes must give one non-empty token list per prompt")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # length bucketing
    out: list[Optional[tuple[Generation, ...]]] = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        bucket = _decode_bucket(
            model, [prompts[i] for i in idx], None if suffixes is None else [suffixes[i] for i in idx],
            max_new_tokens, temperature, eos_ids, pad_id, progress, n_turns, new_cache)
        for i, gens in zip(idx, bucket):
            out[i] = gens
    return out  # type: ignore[return-value]


def _next_tokens(logits: torch.Tensor, temperature: float) -> tuple[list[int], list[float]]:
    """logits (B, V) of the last position → one token per row (argmax, or a sample) and its
    log-probability under the sampling distribution: log_softmax(logits / T), T = 1 when greedy."""
    scaled = logits.float() / temperature if temperature > 0 else logits.float()  # (B, V)
    if temperature <= 0:
        tokens = logits.argmax(-1)  # (B,)
    else:
        tokens = torch.multinomial(torch.softmax(scaled, dim=-1), 1).squeeze(1)  # (B,)
    logp = torch.log_softmax(scaled, dim=-1).gather(1, tokens.unsqueeze(1)).squeeze(1)  # (B,)
    return tokens.tolist(), logp.tolist()


def _prefill(model: Any, prompts: Sequence[Sequence[int]], pad_id: int, device: Any,
             new_cache: Callable[[Any], Any]) -> tuple[Any, ...]:
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)  # (B, T) left-padded x
    mask = torch.zeros((len(prompts), width), dtype=torch.long)  # (B, T) 1 = real token
    for row, p in enumerate(prompts):
        input_ids[row, width - len(p):] = torch.tensor(list(p), dtype=torch.long)
        mask[row, width - len(p):] = 1
    positions = (mask.cumsum(1) - 1).clamp(min=0)  # (B, T) each row counts from 0
    cache = new_cache(model.config)
    logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                   position_ids=positions.to(device), cache=cache, use_cache=True,
                   logits_to_keep=1).logits[:, -1]  # (B, V)
    next_pos = torch.tensor([len(p) for p in prompts], dtype=torch.long)  # (B,) position of the next token
    return cache, mask.to(device), next_pos.to(device), logits


def _check_aligned(cache: Any, mask: torch.Tensor) -> None:
    """The invariant: one mask column per cached position (see module docstring)."""
    if mask.shape[1] != cache.get_seq_length():
        raise AssertionError(f"attention mask width {mask.shape[1]} != KV cache length {cache.get_seq_length()}")


@dataclass
class _Batch:
    """The rows decoding together: their KV cache and per-row bookkeeping."""

    cache: Any  # kv_cache.growing_cache (a DynamicCache), (B, H, L, D) per layer
    mask: torch.Tensor  # (B, L) 1 = real token in the cache (0 = left padding or a hole); L = cache length
    next_pos: torch.Tensor  # (B,) position id of each row's next token
    logits: torch.Tensor  # (B, V) next-token logits
    rows: list[int]  # bucket row of each batch row


@dataclass
class _Parked:
    """A row whose attempt ended, waiting for the next turn with its own cache."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (1, H, L_r, D)
    mask: torch.Tensor  # (1, L_r), the same L_r as kv
    next_pos: int
    tail: list[int]  # a truncated attempt's last token, sampled but not yet fed


def _decode_bucket(
    model: Any, prompts: list[Sequence[int]], suffixes: Optional[list[Sequence[int]]],
    max_new_tokens: int, temperature: float, eos_ids: set[int], pad_id: int,
    progress: Optional[Callable[[int], None]], n_turns: int, new_cache: Callable[[Any], Any],
) -> list[tuple[Generation, ...]]:
    device = next(model.parameters()).device
    batch: Optional[_Batch] = _Batch(*_prefill(model, prompts, pad_id, device, new_cache),
                                     rows=list(range(len(prompts))))
    out: list[list[Generation]] = [[] for _ in prompts]
    for turn in range(n_turns):
        if turn > 0:
            batch = _resume(model, parked, suffixes, pad_id, device, new_cache)  # type: ignore[arg-type]
        parked = _decode_turn(model, batch, out, max_new_tokens, temperature, eos_ids, progress,
                              park=turn + 1 < n_turns)
    return [tuple(g) for g in out]


def _decode_turn(
    model: Any, b: _Batch, out: list[list[Generation]], max_new_tokens: int, temperature: float,
    eos_ids: set[int], progress: Optional[Callable[[int], None]], park: bool,
) -> dict[int, _Parked]:
    """Decode one attempt for every row of `b`; finished rows leave the batch (parked with
    a copy of their cache when another turn follows)."""
    ids: dict[int, list[int]] = {r: [] for r in b.rows}
    logps: dict[int, list[float]] = {r: [] for r in b.rows}
    parked: dict[int, _Parked] = {}
    padded = bool((b.mask == 0).any())  # no zero column: the model needs no mask at all
    while True:
        _check_aligned(b.cache, b.mask)
        sampled, sampled_logp = _next_tokens(b.logits, temperature)
        keep = []
        for a, r in enumerate(b.rows):
            tok = sampled[a]
            stop = tok in eos_ids
            logps[r].append(sampled_logp[a])
            if not stop:
                ids[r].append(tok)
            truncated = not stop and len(ids[r]) >= max_new_tokens
            if not (stop or truncated):
                keep.append(a)
                continue
            out[r].append(Generation(tuple(ids[r]), truncated, tok if stop else None, tuple(logps[r])))
            if park:
                kv = [(layer.keys[a:a + 1].clone(), layer.values[a:a + 1].clone()) for layer in b.cache.layers]
                parked[r] = _Parked(kv, b.mask[a:a + 1].clone(), int(b.next_pos[a]), [tok] if truncated else [])
        if progress and len(keep) < len(b.rows):
            progress(len(b.rows) - len(keep))
        if not keep:
            return parked
        feed = torch.tensor([sampled[a] for a in keep], device=b.logits.device).unsqueeze(1)  # (B, 1)
        if len(keep) < len(b.rows):  # drop finished rows from the batch and the cache
            sel = torch.tensor(keep, dtype=torch.long, device=b.mask.device)
            b.cache.batch_select_indices(sel)
            b.mask, b.next_pos, b.rows = b.mask[sel], b.next_pos[sel], [b.rows[a] for a in keep]
            padded = padded and bool((b.mask == 0).any())
        b.mask = torch.cat([b.mask, b.mask.new_ones((len(b.rows), 1))], dim=1)  # (B, L+1): always, see invariant
        b.logits = model(input_ids=feed, attention_mask=b.mask if padded else None,
                         position_ids=b.next_pos.unsqueeze(1), cache=b.cache,
                         use_cache=True).logits[:, -1]  # (B, V)
        b.next_pos = b.next_pos + 1


def _resume(model: Any, parked: dict[int, _Parked], suffixes: list[Sequence[int]], pad_id: int,
            device: Any, new_cache: Callable[[Any], Any]) -> _Batch:
    """Re-batch parked rows: their caches right-aligned (left holes masked), then one forward
    over [tail ⊕ p] per row, right-aligned in a block (holes masked). No x ⊕ y is recomputed."""
    rows = sorted(parked)
    for r in rows:
        if parked[r].mask.shape[1] != parked[r].kv[0][0].shape[2]:
            raise AssertionError(f"parked row {r}: mask width {parked[r].mask.shape[1]} != its cache length "
                                 f"{parked[r].kv[0][0].shape[2]}")
    width = max(parked[r].mask.shape[1] for r in rows)
    blocks = [parked[r].tail + list(suffixes[r]) for r in rows]
    c = max(map(len, blocks))
    cache = new_cache(model.config)
    for layer in range(len(parked[rows[0]].kv)):
        keys = torch.cat([_left_pad(parked[r].kv[layer][0], width) for r in rows])  # (B, H, L, D)
        values = torch.cat([_left_pad(parked[r].kv[layer][1], width) for r in rows])  # (B, H, L, D)
        cache.update(keys, values, layer)
    mask = torch.zeros((len(rows), width + c), dtype=torch.long, device=device)  # (B, L + C)
    input_ids = torch.full((len(rows), c), pad_id, dtype=torch.long, device=device)  # (B, C) left-holed block
    positions = torch.zeros((len(rows), c), dtype=torch.long, device=device)  # (B, C)
    for i, r in enumerate(rows):
        m, blk, start = parked[r].mask, blocks[i], parked[r].next_pos
        mask[i, width - m.shape[1]:width] = m[0]
        mask[i, width + c - len(blk):] = 1
        input_ids[i, c - len(blk):] = torch.tensor(blk, device=device)
        positions[i, c - len(blk):] = torch.arange(start, start + len(blk), device=device)
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, cache=cache,
                   use_cache=True, logits_to_keep=1).logits[:, -1]  # (B, V)
    next_pos = torch.tensor([parked[r].next_pos + len(b) for r, b in zip(rows, blocks)], device=device)
    return _Batch(cache, mask, next_pos, logits, rows)


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """(1, H, L, D) → (1, H, width, D) with zeros on the left (masked, never attended); never crops."""
    if t.shape[2] > width:
        raise AssertionError(f"cache of length {t.shape[2]} does not fit in width {width}")
    return torch.nn.functional.pad(t, (0, 0, width - t.shape[2], 0))
