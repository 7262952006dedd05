"""synth_code: deterministic generation, the shared split, programs run in the real sandbox
(the flawed solver fails its hidden tests, the correct program passes), rendering, the mixed
pre-training corpus, and grade_episodes giving 1/0 rewards with a real pool."""
import pytest

from sandbox_fixtures import pool  # noqa: F401  (fixture)
from score_core.problems.code_problems import build_program
from score_core.config import DatasetConfig, DebugBaseConfig
from score_core.generation.debug_model import build_tokenizer, corpus_traces, encode_corpus, make_corpus
from score_core.problems.loaders import load_problems
from score_core.generation.prompts import SYNTH_TURN2, render_turn1, render_turn2
from score_core.problems.rewards import CodeJob, grade_episodes
from score_core.schema import Episode
from score_core.problems.synthetic import flawed_solve, is_flawed_class, split_of
from score_core.problems.synthetic_code import (
    make_problems, parse_question, render_program1, render_program2, sample_corpus_traces)


def test_make_problems_is_deterministic_and_well_formed():
    a = make_problems(40, seed=3, split="train")
    assert a == make_problems(40, seed=3, split="train")
    assert a != make_problems(40, seed=4, split="train")
    for p in a:
        assert p.kind == "code" and p.source == "synth_code" and p.problem_id.startswith("synth_code/train/")
        qa, qb, qc = parse_question(p.question)
        assert p.tests == f"assert isinstance(x, int)\nassert {qa}*x+{qb}=={qc}\n"
        x = int(p.answer.removeprefix("x="))
        assert qa * x + qb == qc and split_of(qa, x, qb) == "train"


def test_splits_are_disjoint_and_shared_with_synth_linear():
    qs = {s: {p.question for p in make_problems(300, seed=0, split=s)} for s in ("train", "dev", "eval")}
    assert not qs["train"] & qs["eval"] and not qs["train"] & qs["dev"] and not qs["dev"] & qs["eval"]
    corpus = {p.question for p, _, _ in sample_corpus_traces(500, seed=0)}
    assert not corpus & qs["eval"] and not corpus & qs["dev"]
    with pytest.raises(ValueError):
        make_problems(5, 0, "test")
    with pytest.raises(ValueError):
        make_problems(10**6, 0, "eval")


def test_load_problems_delegates_synth_code():
    result = load_problems(DatasetConfig(source="synth_code", n=7, seed=3, split="eval"))
    assert len(result.problems) == 7 and all(p.kind == "code" for p in result.problems)


def test_renders_like_synth_and_builds_the_program():
    p = make_problems(1, seed=0, split="eval")[0]
    x = render_turn1(p, None)
    assert x == f"Q:{p.question}\nA:"
    assert render_turn2(p, "x=1", None) == x + "x=1" + SYNTH_TURN2
    program = build_program(p, "# 1-0=1,1/1=1\nx=1")
    assert program.code == "# 1-0=1,1/1=1\nx=1\n" and program.tests == p.tests
    assert build_program(p, "") is None and build_program(p, "x=(") is None  # no code → no run


def test_formats_are_short_programs():
    for p, y1, y2 in sample_corpus_traces(200, seed=1):
        assert len(y1) <= 40 and len(y2) <= 40
        assert y1.startswith("# ") and y2.startswith("# ") and "\nx=" in y1 and "\nx=" in y2
        compile(y1, "y1", "exec"), compile(y2, "y2", "exec")


def _flawed_and_correct(n: int):
    """(problem, flawed program, correct program) for problems of the flawed class."""
    out = []
    for p in make_problems(200, seed=0, split="train"):
        a, b, c = parse_question(p.question)
        x = (c - b) // a
        if is_flawed_class(a):
            out.append((p, render_program1(a, b, c, flawed_solve(a, x, b)), render_program1(a, b, c, x)))
        if len(out) == n:
            return out


def test_flawed_programs_fail_and_correct_ones_pass_in_the_sandbox(pool):  # noqa: F811
    cases = _flawed_and_correct(4)
    programs = [build_program(p, prog) for p, bad, good in cases for prog in (bad, good)]
    jobs = [CodeJob(prog.code, prog.tests, 10.0, 256) for prog in programs]
    statuses = [r.status for r in pool.run_many(jobs)]
    assert statuses == ["failed", "passed"] * len(cases)
    p, _, _ = cases[0]
    a, b, c = parse_question(p.question)
    float_answer = f"x={(c - b) / a}"  # right value, wrong type: the isinstance test fails it
    program = build_program(p, float_answer)
    assert pool.run(program.code, program.tests).status == "failed"
    exit_early = build_program(p, f"x={(c - b) // a + 1}\nimport sys\nsys.exit(0)")  # wrong x, exits 0
    assert pool.run(exit_early.code, exit_early.tests).status == "failed"


def test_grade_episodes_with_a_real_pool_gives_binary_rewards(pool):  # noqa: F811
    (p, bad, good), (q, bad_q, good_q) = _flawed_and_correct(2)
    a, b, c = parse_question(p.question)
    y2 = render_program2(a, b, c, int(bad.rsplit("x=", 1)[1]), int(p.answer.removeprefix("x=")))
    episodes = [Episode("r", "stage2", 1, p.problem_id, 0, bad, y2),  # i→c
                Episode("r", "stage2", 1, q.problem_id, 0, good_q, "not python ("),  # c→no code
                Episode("r", "stage2", 1, q.problem_id, 1, good_q, "import sys\nsys.exit(3)"),
                Episode("r", "stage2", 1, q.problem_id, 2, good_q, "x=0\nimport os\nos._exit(0)")]
    graded = grade_episodes(episodes, {p.problem_id: p, q.problem_id: q}, code_runner=pool)
    assert [(e.reward1, e.reward2) for e in graded] == [(0.0, 1.0), (1.0, 0.0), (1.0, 0.0), (1.0, 0.0)]
    assert [e.reward_status2 for e in graded] == ["ok", "no_code", "failed", "failed"]


def test_mixed_corpus_is_an_equal_mix_and_encodes():
    traces = corpus_traces(11, seed=0, families=["synth_linear", "synth_code"])
    sources = [p.source for p, _, _ in traces]
    assert sources == ["synth_linear"] * 6 + ["synth_code"] * 5
    assert corpus_traces(8, 0) == corpus_traces(8, 0, ["synth_linear"])  # default unchanged
    texts = make_corpus(11, seed=0, families=["synth_linear", "synth_code"])
    assert sum("==" in t.split("\n")[0] for t in texts) == 5
    tok = build_tokenizer()
    ids, labels = encode_corpus(11, 0, tok, ["synth_linear", "synth_code"])
    assert ids.shape[0] == 11 and tok.unk_token_id not in ids.tolist()
    for row, lab in zip(ids.tolist(), labels.tolist()):
        assert lab.count(tok.eos_token_id) == 2  # after y1 and after y2
    with pytest.raises(ValueError):
        corpus_traces(4, 0, ["synth_nope"])


def test_debug_base_config_families():
    assert DebugBaseConfig().families == ["synth_linear"]
    assert DebugBaseConfig(families=["synth_linear", "synth_code"]).families[1] == "synth_code"
    with pytest.raises(ValueError):
        DebugBaseConfig(families=[])
    with pytest.raises(ValueError):
        DebugBaseConfig(families=["math"])


class _CountingRunner:
    """The real pool, recording every batch it is sent."""

    def __init__(self, pool):
        self.pool, self.batches = pool, []

    def run_many(self, jobs):
        self.batches.append(list(jobs))
        return self.pool.run_many(jobs)


def test_duplicate_programs_run_once_and_every_copy_gets_its_own_programs_result(pool):  # noqa: F811
    (p, bad, good), (q, bad_q, good_q) = _flawed_and_correct(2)
    pairs = [(p, bad, good), (p, bad, bad), (p, good, good), (q, bad_q, good_q), (q, good_q, bad_q),
             (p, bad, good), (q, bad_q, "x=(")]
    episodes = [Episode("r", "stage1", 1, pr.problem_id, i, y1, y2) for i, (pr, y1, y2) in enumerate(pairs)]
    problems = {p.problem_id: p, q.problem_id: q}
    runner = _CountingRunner(pool)
    graded = grade_episodes(episodes, problems, code_runner=runner)
    # oracle: each attempt graded alone, one program per sandbox call
    alone = [tuple(grade_episodes([Episode("r", "stage1", 1, pr.problem_id, 0, y, y)], problems,
                                  code_runner=pool)[0].reward1 for y in (y1, y2)) for pr, y1, y2 in pairs]
    assert [(e.reward1, e.reward2) for e in graded] == alone
    assert alone == [(0.0, 1.0), (0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0), (0.0, 1.0), (0.0, 0.0)]
    (sent,) = runner.batches
    assert len(sent) == len(set(sent)) == 4  # 4 distinct programs (2 problems × bad/good); "x=(" has no code
