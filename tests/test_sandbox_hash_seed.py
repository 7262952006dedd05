"""A verdict must not depend on which container graded the program.

A string's hash — and so the order of a set of strings — depends on the interpreter's
hash seed. `python3 -I` ignores PYTHONHASHSEED (it implies -E), so before this test every
container (warm start) or program (fresh interpreter) drew a random seed: a solution
returning `list(set(words))` passed in one slot and failed in the next, and the same run
gave two tables. The oracle is a plain `python3` in the same image, started by `docker run`
outside the sandbox's driver with PYTHONHASHSEED=0: every slot of several pools, on both
paths, must print what it prints. Real Docker engine, real image (tests/sandbox_fixtures.py).
"""
from __future__ import annotations

import json

from sandbox_fixtures import docker_ready

WORDS = ["apple", "banana", "cherry", "date", "elderberry", "fig", "grape", "kiwi", "lemon"]
PROBE = f"print(__import__('json').dumps([hash('score'), list(set({WORDS!r}))]))\n"


def _plain_python_in_the_image() -> list:
    import docker
    from sandbox import DEFAULT_IMAGE

    out = docker.from_env(timeout=120).containers.run(
        DEFAULT_IMAGE, ["env", "PYTHONHASHSEED=0", "python3", "-c", PROBE], network_mode="none",
        remove=True, stdout=True, stderr=True)
    return json.loads(out.decode())


def _probe_every_slot(fresh_interpreter: bool, pools: int = 2, slots: int = 2) -> list[list]:
    from sandbox import SandboxPool
    from sandbox.pool import SandboxJob
    from sandbox.container import SlotLimits

    seen = []
    for _ in range(pools):  # new containers each time
        with SandboxPool(slots=slots, progress=False,
                         limits=SlotLimits(fresh_interpreter=fresh_interpreter)) as pool:
            results = pool.run_many([SandboxJob(PROBE, "", 10.0, 256)] * (3 * slots))
            assert all(r.status == "passed" for r in results), results
            seen += [json.loads(r.stdout) for r in results]
    return seen


def test_every_container_and_program_sees_the_hash_seed_0_order():
    docker_ready()
    want = _plain_python_in_the_image()
    assert want[1] != WORDS  # the probe's set does reorder the words
    for fresh in (False, True):
        seen = _probe_every_slot(fresh)
        assert all(s == want for s in seen), (fresh, want, seen)


def test_a_set_order_dependent_solution_gets_one_verdict_everywhere():
    """The reward: a solution whose answer is a set's order gets the same status in every
    slot of every pool (here: passed, since the hidden test was written under seed 0)."""
    docker_ready()
    from sandbox import SandboxPool
    from sandbox.pool import SandboxJob

    order = _plain_python_in_the_image()[1]
    code = "def uniq(words):\n    return list(set(words))\n"
    tests = f"assert uniq({WORDS!r}) == {order!r}\n"
    statuses = set()
    for _ in range(2):
        with SandboxPool(slots=2, progress=False) as pool:
            statuses |= {r.status for r in pool.run_many([SandboxJob(code, tests, 10.0, 256)] * 6)}
    assert statuses == {"passed"}, statuses


def test_the_driver_refuses_to_start_outside_the_programs_environment(monkeypatch):
    """The driver's own environment and its programs' come from one place (container.py's
    PROGRAM_ENV); a start command that drifts from it — here one extra variable, as a second
    hand-written copy would — must fail the slot's start, not grade under another seed."""
    docker_ready()
    import docker
    import pytest
    from sandbox import DEFAULT_IMAGE
    import sandbox.container as container

    argv = container.DRIVER_ARGV
    drifted = (*argv[:2], "PYTHONHASHSEED_SHADOW=1", *argv[2:])
    slot = container.Slot(docker.from_env(timeout=120), DEFAULT_IMAGE, 64000, container.SlotLimits(), "drift-test")
    monkeypatch.setattr(container, "DRIVER_ARGV", drifted)
    try:
        with pytest.raises(container.SlotBroken, match="driver exited.*is not the programs'"):
            slot.start()
    finally:
        slot.close()
    monkeypatch.setattr(container, "DRIVER_ARGV", argv)
    slot = container.Slot(docker.from_env(timeout=120), DEFAULT_IMAGE, 64001, container.SlotLimits(), "drift-test")
    try:
        slot.start()  # the real start command: the driver comes up
    finally:
        slot.close()
