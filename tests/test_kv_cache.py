"""The in-place KV cache (`kv_cache.GrowingLayer`) against transformers' own `DynamicLayer`.

Oracle: `DynamicLayer` (a `torch.cat` per append, a fresh index per row selection). Both
get the same random appends — a prompt-sized prefill, then single tokens past the buffer's
first capacity so it has to grow, and multi-token blocks like the decoder's turn-2 resume
— and row selections like finished rows leaving the batch; after every operation the two
must hold exactly the same keys and values (bit for bit) and report the same length.
Then the whole decoder: sampled two-attempt rollouts of a random debug Llama (attempts stop
at random steps, so rows leave the batch throughout) through `decode_turns` with each
cache and the same seed must sample the same tokens with the same log-probabilities.
"""
from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer

from score_core.config import DebugBaseConfig
from score_core.generation.debug_model import build_model, build_tokenizer
from score_core.generation.decode import decode_turns
from score_core.generation.kv_cache import MIN_CAPACITY, GrowingLayer, growing_cache
from score_core.generation.rollout import eos_ids, pad_id, two_turn_prompts
from score_core.problems.synthetic import make_problems

H, D = 2, 4


def _assert_same(grow: GrowingLayer, ref: DynamicLayer) -> None:
    assert grow.get_seq_length() == ref.get_seq_length()
    assert torch.equal(grow.keys, ref.keys) and torch.equal(grow.values, ref.values)


def test_growing_layer_holds_what_dynamic_layer_holds() -> None:
    gen = torch.Generator().manual_seed(0)
    grow, ref = GrowingLayer(), DynamicLayer()
    rows = 9
    steps = [("append", 11)] + [("append", 1)] * (MIN_CAPACITY + 10) + [("append", 5)] + [("append", 1)] * 70
    for i, (_, n) in enumerate(steps):
        k, v = torch.randn(rows, H, n, D, generator=gen), torch.randn(rows, H, n, D, generator=gen)
        out_grow, out_ref = grow.update(k, v), ref.update(k.clone(), v.clone())
        assert torch.equal(out_grow[0], out_ref[0]) and torch.equal(out_grow[1], out_ref[1])
        _assert_same(grow, ref)
        if i % 13 == 7 and rows > 2:  # some rows finished: keep the others, in a new order
            keep = torch.randperm(rows, generator=gen)[: rows - 1 - (i % 2)]
            grow.batch_select_indices(keep)
            ref.batch_select_indices(keep)
            rows = len(keep)
            _assert_same(grow, ref)
    assert grow.get_seq_length() == sum(n for _, n in steps) > 2 * MIN_CAPACITY  # it grew more than once


def test_a_view_handed_out_earlier_is_not_changed_by_later_appends() -> None:
    """Attention reads the returned views at once, but a parked row's copy must stay what it was."""
    grow = GrowingLayer()
    k = torch.randn(2, H, 3, D)
    keys, _ = grow.update(k, k)
    parked = keys[1:2].clone()
    grow.update(torch.randn(2, H, 1, D), torch.randn(2, H, 1, D))
    assert torch.equal(parked, k[1:2]) and torch.equal(grow.keys[:, :, :3], k)


def test_growing_cache_gives_every_llama_layer_an_in_place_buffer() -> None:
    tok = build_tokenizer()
    model = build_model(DebugBaseConfig(), tok)
    cache = growing_cache(model.config)
    assert len(cache.layers) == model.config.num_hidden_layers
    assert all(type(layer) is GrowingLayer for layer in cache.layers)


def test_decoder_samples_the_same_tokens_with_either_cache() -> None:
    from transformers import DynamicCache

    torch.manual_seed(0)
    tok = build_tokenizer()
    model = build_model(DebugBaseConfig(), tok).eval()  # random weights: attempts end at random steps
    _, prompts, suffixes = two_turn_prompts(tok, make_problems("synth_linear", 12, 0, "eval"), 3)
    eos = eos_ids(tok, model) | {tok.convert_tokens_to_ids("=")}  # a common token as an extra stop

    def run(new_cache) -> list:
        torch.manual_seed(1)
        return decode_turns(model, prompts, suffixes, max_new_tokens=40, temperature=1.0, batch_size=16,
                            eos_ids=eos, pad_id=pad_id(tok), new_cache=new_cache)

    dynamic, growing = run(lambda config: DynamicCache(config=config)), run(growing_cache)
    assert growing == dynamic  # ids, truncation, stop ids and log-probabilities, attempt by attempt
    stops = [g.stop_id is not None for gens in growing for g in gens]
    assert any(stops) and not all(stops)  # rows left the batch at different steps, some ran to the limit
    longest = max(len(p) + len(y1.ids) + 1 + len(s) + len(y2.ids) for p, s, (y1, y2) in zip(prompts, suffixes, growing))
    assert longest > MIN_CAPACITY  # some turn-2 cache outgrew the first buffer


def test_bench_decode_cache_command_reports_a_ratio_and_the_same_samples(capsys) -> None:
    import json

    from score.cli import main

    rc = main(["bench", "decode-cache", "--prompts", "6", "--k", "2", "--batch-size", "4", "--max-new-tokens", "8",
               "--repeats", "1", "--threads", "1", "--json"])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and res["identical"] and res["episodes"] == 12
    assert res["dynamic"]["tokens"] == res["growing"]["tokens"] > 0 and res["ratio_growing_vs_dynamic"] > 0
