"""The debug-scale base model: a character-level tokenizer, a tiny from-scratch Llama, and
its pre-training on the synthetic families — `synth_linear`, optionally mixed with its code
twin `synth_code` (see `synthetic.py` for why its errors are systematic) — saved as an
ordinary HF model directory.

Convention shared with the rollout (no chat template, no BOS):
- x  = "Q:" + question + "\\nA:"                     (prompts.render_turn1)
- the model writes y1, then `<eos>`; y1 excludes the `<eos>`
- x2 = x + y1 + "\\n<retry>\\nA:"                     (prompts.render_turn2; no `<eos>` in it)
- the model writes y2, then `<eos>`.
A corpus trace is the string x + y1 + "\\n<retry>\\nA:" + y2 + "<eos>". Pre-training puts
the loss on y1, y2 and both `<eos>`: the target after y1's last character is `<eos>`
(not the "\\n" that follows it in the trace), and the instruction p is masked — so one
sequence teaches both turns exactly as the rollout will see them.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Sequence

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from score_core.problems import synthetic, synthetic_code
from score_core.config import DebugBaseConfig
from score_core.generation.models import save_checkpoint
from score_core.generation.prompts import SYNTH_TURN2, render_turn1
from score_core.schema import Problem

PAD, EOS, UNK, RETRY = "<pad>", "<eos>", "<unk>", "<retry>"
CHARS = ["\n", "\t"] + [chr(i) for i in range(32, 127)]  # printable ASCII, one token each


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Character-level WordLevel tokenizer; `<retry>` is one (non-special) added token."""
    vocab = {tok: i for i, tok in enumerate([PAD, EOS, UNK, RETRY] + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (PAD, EOS, UNK)])
    tok.add_tokens([AddedToken(RETRY, special=False, normalized=False)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK,
        padding_side="left", clean_up_tokenization_spaces=False, model_max_length=256)


def build_model(cfg: DebugBaseConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """A small LlamaForCausalLM with tied embeddings; EOS and PAD ids come from the tokenizer."""
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        max_position_embeddings=256, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None)
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    return model


def corpus_traces(n: int, seed: int, families: Sequence[str] = ("synth_linear",),
                  p_perturb: float = 0.25, moves: Sequence[int] = synthetic.PERTURBATIONS,
                  follow_check: float = 0.0) -> list[tuple[Problem, str, str]]:
    """n (problem, y1, y2) corpus traces, split equally between `families` (in that order);
    y2 moves away from y1 with probability `p_perturb` (`synthetic.sample_answer_pairs`)."""
    traces = []
    for i, family in enumerate(families):
        n_family = n // len(families) + (i < n % len(families))
        if family == "synth_linear":
            traces += synthetic.sample_corpus_traces(n_family, seed, p_perturb, tuple(moves), follow_check)
        elif family == "synth_code":
            traces += synthetic_code.sample_corpus_traces(n_family, seed, p_perturb, tuple(moves), follow_check)
        else:
            raise ValueError(f"unknown corpus family {family!r}")
    return traces


def make_corpus(n: int, seed: int, families: Sequence[str] = ("synth_linear",)) -> list[str]:
    """n full two-turn traces: x + y1 + "\\n<retry>\\nA:" + y2 + "<eos>" (see module docstring)."""
    return [render_turn1(p, None) + y1 + SYNTH_TURN2 + y2 + EOS
            for p, y1, y2 in corpus_traces(n, seed, families)]


def encode_corpus(n: int, seed: int, tokenizer: PreTrainedTokenizerFast,
                  families: Sequence[str] = ("synth_linear",), p_perturb: float = 0.25,
                  moves: Sequence[int] = synthetic.PERTURBATIONS, follow_check: float = 0.0
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels), both (N, T), right-padded; labels are next-token targets with
    the prompt masked (-100) and `<eos>` as the target after y1 (module docstring)."""
    traces = corpus_traces(n, seed, families, p_perturb, moves, follow_check)

    def enc(texts: list[str]) -> list[list[int]]:
        return tokenizer(texts, add_special_tokens=False)["input_ids"]

    xs = enc([render_turn1(p, None) for p, _, _ in traces])
    y1s = enc([y1 for _, y1, _ in traces])
    y2s = enc([y2 for _, _, y2 in traces])
    p_ids = enc([SYNTH_TURN2])[0]
    eos = tokenizer.eos_token_id
    rows = [x + y1 + p_ids + y2 + [eos] for x, y1, y2 in zip(xs, y1s, y2s)]
    T = max(map(len, rows))
    input_ids = torch.full((n, T), tokenizer.pad_token_id, dtype=torch.long)  # (N, T)
    labels = torch.full((n, T), -100, dtype=torch.long)  # (N, T) target for position t
    for i, (row, x, y1) in enumerate(zip(rows, xs, y1s)):
        input_ids[i, : len(row)] = torch.tensor(row)
        targets = torch.tensor(row[1:])
        labels[i, : len(row) - 1] = targets
        end1 = len(x) + len(y1)  # index of the first token after y1
        labels[i, : len(x) - 1] = -100  # x itself is given, not learned
        labels[i, end1 - 1] = eos  # after y1 the model stops
        labels[i, end1 : end1 + len(p_ids) - 1] = -100  # the instruction p is given
    return input_ids, labels


def _lr_at(step: int, total: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def pretrain_debug_base(cfg: DebugBaseConfig, out_dir: str | os.PathLike, progress: bool = True) -> dict[str, float]:
    """Pre-train the debug base model on `cfg.corpus_size` traces of `cfg.families` and save it.

    AdamW (β = 0.9, 0.95, weight decay 0.1), linear warm-up then cosine decay to 10% of
    `cfg.lr`, gradient clipping at 1.0, batches drawn by cycling shuffled passes over the
    corpus. Returns flat metrics: final loss, tokens/s, wall time, parameter count.
    """
    from score_core.progress import iterate

    t0 = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = build_tokenizer()
    model = build_model(cfg, tokenizer).to(device)
    input_ids, labels = encode_corpus(cfg.corpus_size, cfg.seed, tokenizer, cfg.families, cfg.turn2_perturb,
                                      cfg.turn2_moves, cfg.turn2_follow_check)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = max(1, min(100, cfg.steps // 10))
    order, cursor, tokens, losses = torch.randperm(len(input_ids), generator=gen), 0, 0, []
    model.train()
    bar = iterate(range(cfg.steps), desc="pretrain debug base", quiet=not progress)
    for step in bar:
        if cursor + cfg.batch_size > len(order):
            order, cursor = torch.randperm(len(input_ids), generator=gen), 0
        idx = order[cursor : cursor + cfg.batch_size]
        cursor += cfg.batch_size
        ids, lab = input_ids[idx], labels[idx]
        width = int((ids != tokenizer.pad_token_id).sum(1).max())  # trim shared right padding
        ids, lab = ids[:, :width].to(device), lab[:, :width].to(device)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg.steps, cfg.lr, warmup)
        logits = model(input_ids=ids).logits  # (B, T, V)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), lab.flatten(), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += ids.numel()
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
    train_s = time.perf_counter() - t0
    model.eval()
    save_checkpoint(model.cpu(), tokenizer, out_dir, state={"debug_base": cfg.model_dump(mode="json")})
    tail = losses[-min(50, len(losses)):]
    return {
        "pretrain/final_loss": float(sum(tail) / len(tail)),
        "pretrain/tokens_per_s": tokens / train_s,
        "pretrain/wall_s": time.perf_counter() - t0,
        "pretrain/params": float(sum(p.numel() for p in model.parameters())),
        "pretrain/steps": float(cfg.steps),
    }
