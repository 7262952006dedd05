"""The verdict cache keys a solution by the program it is (score_core/problems/program_identity.py).

Oracles: the real Docker sandbox — texts that share a key must get one verdict there, texts
the key tells apart include pairs the sandbox grades differently (a '#' inside a string is
not a comment), and a program built to read its own comment cannot (the whole argument rests
on that); CPython's compiler for the texts the key falls back on; and a recording runner
for how many jobs a batch really runs.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from score_core.problems.program_identity import MAX_CHARS, blank_comments, comment_free
from score_core.problems.rewards import CodeJob
from score_core.problems.verdict_cache import CachedRunner, job_key
from sandbox_fixtures import pool  # noqa: F401  (fixture)

TESTS = "assert isinstance(x, int)\nassert 7*x+12==103\n"
SAME = [  # each group: texts that differ only in comment text — one program
    ("# 103-12=91,91/7=13\nx=13", "# 103-12=91,91/7=12\nx=13", "#\nx=13"),
    ("x=13  # a", "x=13  # a much longer comment"),
    ("def f():\n    # c\n    return 13  # d\nx = f()", "def f():\n    # zzz\n    return 13  # e\nx = f()"),
    ("x = (13 # inside brackets\n)", "x = (13 #\n)"),
]
APART = [  # texts the key must tell apart: other code, or a '#' that is not a comment
    ("# 7*13=91\nx=13", "# 7*13=91\nx=12"),
    ('s = "#13"\nx = int(s[1:])', 's = "#12"\nx = int(s[1:])'),
    ('x = int(f"{1}#3".replace("#", ""))', 'x = int(f"{1}#2".replace("#", ""))'),
    ('"""# 13"""\nx = int(__doc__[2:])', '"""# 12"""\nx = int(__doc__[2:])'),
]


def key(code: str) -> str:
    return job_key("sandbox-A", CodeJob(code, TESTS, 5.0, 128))


def test_texts_differing_only_in_comments_share_a_key_and_other_programs_do_not():
    for group in SAME:
        assert len({key(c) for c in group}) == 1, group
        assert len({compile(c, "<solution>", "exec") for c in group}) == 1  # the compiler agrees
    for a, b in APART:
        assert key(a) != key(b), (a, b)



def test_texts_the_check_cannot_vouch_for_keep_their_own_key():
    broken = ["x = (13 # a", "x = (13 # b", "  x=13 # a\nx=1", "  x=13 # b\nx=1", "x=13 # a\0", "x=13 # b\0"]
    for code in broken:
        assert comment_free(code) == code  # a syntax error, an indentation error, a NUL byte
    assert len({key(c) for c in broken}) == len(broken)
    long = "x=13 # " + "a" * MAX_CHARS
    assert comment_free(long) == long
    assert blank_comments(long) == "x=13 #"
    assert comment_free("x = 13\n") == "x = 13\n"


@dataclass(frozen=True)
class Verdict:
    status: str


class LastLine:
    """Verdict = the job's last line ("passed", "timeout", …); records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def run_many(self, jobs):
        self.asked += [j.code for j in jobs]
        return [Verdict(j.code.split("\n")[-1]) for j in jobs]


def test_one_program_written_with_several_comments_runs_once_per_kept_verdict(tmp_path):
    job = CodeJob("", TESTS, 5.0, 128)
    texts = ["# a\npassed", "# b\npassed", "# c\nfailed", "# d\npassed", "# e\ntimeout", "# f\ntimeout"]
    runner = LastLine()
    cache = CachedRunner(runner, tmp_path / "v.sqlite", salt="s")
    results = cache.run_many([dataclasses.replace(job, code=t) for t in texts])
    assert [r.status for r in results] == ["passed", "passed", "failed", "passed", "timeout", "timeout"]
    # "passed" ran once; a limit hit is not a verdict about the program, so both timeouts ran
    assert runner.asked == ["# a\npassed", "# c\nfailed", "# e\ntimeout", "# f\ntimeout"]
    assert (cache.hits, cache.runs) == (2, 4)
    runner.asked.clear()
    again = CachedRunner(runner, tmp_path / "v.sqlite", salt="s")
    again.run_many([dataclasses.replace(job, code="# other working\nfailed")])
    assert runner.asked == [] and again.hits == 1


READERS = {  # ways a solution could try to read its own text (then the comment would matter)
    "linecache": "import linecache\nsrc = ''.join(linecache.getlines('<solution>'))",
    "inspect": "import inspect, sys\ntry:\n    src = inspect.getsource(sys.modules[__name__])\n"
               "except Exception as e:\n    src = repr(e)",
    "fd 3": "try:\n    src = open('/proc/self/fd/3').read()\nexcept Exception as e:\n    src = repr(e)",
    "every open fd": "import os\nsrc = ''\nfor f in os.listdir('/proc/self/fd'):\n    try:\n"
                     "        src += os.pread(int(f), 1 << 16, 0).decode('utf-8', 'replace')\n"
                     "    except Exception:\n        pass",
    "the parent's fds": "import os\nsrc = ''\nd = '/proc/%d/fd' % os.getppid()\ntry:\n"
                        "    for f in os.listdir(d):\n        src += open(d + '/' + f, errors='replace').read(1 << 16)\n"
                        "except Exception as e:\n    src = repr(e)",
    "a traceback's frame": "try:\n    1/0\nexcept Exception as e:\n    src = repr(e.__traceback__.tb_frame.f_locals)",
}
DECIDE = "\nx = 13 if ('MAG' + 'IC') in src else 12  # {}\n"  # passes iff the text was read


def test_a_solution_cannot_read_its_comment_in_the_sandbox(pool):
    control = "src = '# MAGIC'" + DECIDE.format("MAGIC")
    names = list(READERS)
    jobs = [CodeJob(control, TESTS, 5.0, 128)] + [
        CodeJob(READERS[n] + DECIDE.format(word), TESTS, 5.0, 128) for n in names for word in ("MAGIC", "plain")]
    status = [r.status for r in pool.run_many(jobs)]
    assert status[0] == "passed"  # the decision itself works when the text is in hand
    for i, name in enumerate(names):
        with_word, without = status[1 + 2 * i], status[2 + 2 * i]
        assert with_word == without == "failed", (name, with_word, without)
        assert key(jobs[1 + 2 * i].code) == key(jobs[2 + 2 * i].code)


@pytest.mark.parametrize("group", SAME + APART)
def test_the_sandbox_agrees_with_the_key(pool, group):
    """Same key ⇒ same verdict; the APART pairs are graded differently (13 passes, 12 fails)."""
    status = [r.status for r in pool.run_many([CodeJob(c, TESTS, 5.0, 128) for c in group])]
    if group in SAME:
        assert status == ["passed"] * len(group)
    else:
        assert status[0] != status[1]


def test_bench_grading_runs_fewer_programs_and_changes_no_reward(tmp_path, pool):
    """`score bench grading` end to end on a barely trained base: the program key never runs
    more programs than the text key, and every attempt gets the same reward both ways."""
    from flows.bench_grading import run_bench_grading

    r = run_bench_grading("configs/ablate_debug_code.yaml", {"model.debug_base.steps": 30,
                          "model.debug_base.corpus_size": 2000}, tmp_path, cells=2, prompts=8)
    assert r["same_rewards"]
    assert r["attempts"] == 2 * 2 * 8 * 4
    assert r["program"]["programs_run"] <= r["text"]["programs_run"]
    for mode in ("text", "program"):
        assert r[mode]["programs_run"] + r[mode]["from_cache"] >= 1
