"""The debug base model: tokenizer round trips, corpus convention, a tiny loadable pre-train."""
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from score_core.config import DebugBaseConfig
from score_core.generation.debug_model import RETRY, build_model, build_tokenizer, encode_corpus, make_corpus, pretrain_debug_base
from score_core.generation.prompts import SYNTH_TURN2, render_turn1, render_turn2
from score_core.problems.synthetic import make_problems

TINY = DebugBaseConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                       steps=3, batch_size=8, corpus_size=64, seed=0)


def test_tokenizer_round_trips_prompts_and_retry_is_one_token():
    tok = build_tokenizer()
    p = make_problems("synth_linear", 1, 0, "eval")[0]
    for text in (render_turn1(p, tok), render_turn2(p, "x=13", tok), "def f(a):\n\treturn a  # ~!"):
        ids = tok(text)["input_ids"]
        assert tok.decode(ids) == text
        assert tok.unk_token_id not in ids
    ids = tok(SYNTH_TURN2, add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["\n", RETRY, "\n", "A", ":"]
    assert tok.chat_template is None and tok.padding_side == "left"
    assert tok.eos_token_id is not None and tok.pad_token_id is not None
    assert tok.eos_token_id != tok.pad_token_id


def test_corpus_traces_render_like_the_prompts():
    tok = build_tokenizer()
    for trace in make_corpus(20, seed=0):
        assert trace.startswith("Q:") and trace.endswith(tok.eos_token)
        head, y2 = trace[: -len(tok.eos_token)].split(SYNTH_TURN2)
        x, y1 = head.split("\nA:")
        assert "/" in y1 and "\nx=" in y1 and "\nx=" in y2
        assert tok.decode(tok(trace)["input_ids"]) == trace


def test_encode_corpus_targets_eos_after_y1_and_masks_prompts():
    tok = build_tokenizer()
    ids, labels = encode_corpus(4, seed=0, tokenizer=tok)
    trace = make_corpus(4, seed=0)[0]
    row, lab = ids[0].tolist(), labels[0].tolist()
    n_x = trace.index("\nA:") + 3
    n_y1 = trace.index(SYNTH_TURN2) - n_x
    assert all(t == -100 for t in lab[: n_x - 1])
    assert lab[n_x - 1 : n_x + n_y1 - 1] == row[n_x : n_x + n_y1]  # y1 is learned
    assert lab[n_x + n_y1 - 1] == tok.eos_token_id  # then the model stops
    assert all(t == -100 for t in lab[n_x + n_y1 : n_x + n_y1 + 4])  # p is given
    assert tok.eos_token_id in lab[n_x + n_y1 + 4 :]  # y2 ends with eos


def test_build_model_ties_embeddings_and_eos():
    tok = build_tokenizer()
    model = build_model(TINY, tok)
    assert model.get_input_embeddings().weight is model.get_output_embeddings().weight
    assert model.config.eos_token_id == tok.eos_token_id
    assert model.generation_config.pad_token_id == tok.pad_token_id


def test_tiny_pretrain_writes_a_loadable_hf_dir(tmp_path):
    out = tmp_path / "base"
    metrics = pretrain_debug_base(TINY, out, progress=False)
    assert metrics["pretrain/final_loss"] > 0 and metrics["pretrain/tokens_per_s"] > 0
    again = pretrain_debug_base(TINY, out, progress=False)  # overwrites in place
    assert again["pretrain/final_loss"] == metrics["pretrain/final_loss"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    p = make_problems("synth_linear", 2, 0, "eval")
    enc = tok([render_turn1(q, tok) for q in p], return_tensors="pt", padding=True)
    assert tok.padding_side == "left" and enc["input_ids"][0, -1] == tok("A:")["input_ids"][-1]
    with torch.no_grad():
        out_ids = model.generate(**enc, max_new_tokens=4, do_sample=False)
    assert out_ids.shape == (2, enc["input_ids"].shape[1] + 4) or out_ids.shape[1] <= enc["input_ids"].shape[1] + 4
    assert tok.decode(tok(SYNTH_TURN2)["input_ids"]) == SYNTH_TURN2
