"""The vLLM engine's selection, arguments and wiring — everything that runs without vLLM.

Not exercised here (no GPU, vLLM not installed): vllm.LLM itself, SamplingParams,
LoRARequest, `sync_weights` into a live engine."""
import importlib.util
import json

import pytest
import torch

from score_core.config import DebugBaseConfig, RolloutConfig
from score_core.debug_model import build_model, build_tokenizer
from score_core.decode import Generation, decode_turns
from score_core.rollout import rollout_two_attempts
from score_core.synthetic import make_problems
from score_core.vllm_engine import (VLLMUnavailable, build_engine, engine_args, sampling_args,
                                    to_generation)

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_hf_is_the_default_and_builds_no_engine():
    assert RolloutConfig().engine == "hf"
    assert build_engine("hf", "unused", {1}, dtype="float32", gpu_memory_utilization=0.4,
                        tensor_parallel_size=1, max_model_len=None, seed=0) is None


def test_unknown_engine_is_an_error():
    with pytest.raises(ValueError, match="unknown rollout engine"):
        build_engine("tgi", "m", {1}, dtype="float32", gpu_memory_utilization=0.4, tensor_parallel_size=1,
                     max_model_len=None, seed=0)


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed")
def test_missing_vllm_gives_an_install_hint(tmp_path):
    with pytest.raises(VLLMUnavailable, match=r"pip install 'score\[vllm\]'"):
        build_engine("vllm", str(tmp_path), {1}, dtype="bfloat16", gpu_memory_utilization=0.4,
                     tensor_parallel_size=1, max_model_len=None, seed=0)


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
