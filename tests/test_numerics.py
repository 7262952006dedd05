"""score_core pins torch's and MKL's CPU code paths (score_core/numerics.py).

The oracle is the libraries' own switches, set by hand in a fresh interpreter: a run that
only imports score_core must train the same weights, bit for bit, as one that exports
ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2,STRICT itself — and, on a CPU whose best path is
not AVX2 (AVX-512 or AMX: the machines this project runs on), different weights from the
libraries' native choice, which shows the pin is what decided. Each run is a new process
(the switches are read once per process), 20 pre-training steps of the debug base.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRETRAIN_AND_HASH = textwrap.dedent("""
    import hashlib, os, sys, tempfile
    import score_core  # first: pins the CPU numerics unless told otherwise
    import torch
    from score_core.config import DebugBaseConfig
    from score_core.generation.debug_model import pretrain_debug_base
    torch.set_num_threads(2)
    out = tempfile.mkdtemp()
    pretrain_debug_base(DebugBaseConfig(steps=20, corpus_size=2048), out, progress=False)
    h = hashlib.sha256()
    for name in sorted(os.listdir(out)):
        if name.endswith(".safetensors"):
            h.update(open(os.path.join(out, name), "rb").read())
    print(torch.backends.cpu.get_cpu_capability(), os.environ.get("MKL_CBWR"), h.hexdigest())
""")
SWITCHES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "SCORE_CPU_NUMERICS")


def _run(**env: str) -> tuple[str, str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    out = subprocess.run([sys.executable, "-c", PRETRAIN_AND_HASH], env={**clean, **env}, cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    capability, mkl, digest = out.stdout.split()[-3:]
    return capability, mkl, digest


def _native_capability() -> str:
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                         env={k: v for k, v in os.environ.items() if k not in SWITCHES},
                         capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.strip()


def test_importing_score_core_runs_the_avx2_path_bit_for_bit():
    pinned = _run()
    by_hand = _run(ATEN_CPU_CAPABILITY="avx2", MKL_CBWR="AVX2,STRICT", ONEDNN_MAX_CPU_ISA="AVX2",
                   SCORE_CPU_NUMERICS="native")
    assert pinned[:2] == ("AVX2", "AVX2,STRICT"), pinned
    assert pinned == by_hand


def test_the_pin_changes_what_runs_where_the_cpu_has_more_than_avx2():
    native_capability = _native_capability()
    if native_capability in ("AVX2", "DEFAULT"):
        pytest.skip(f"this CPU's best torch path is {native_capability}: the pin changes nothing here")
    native = _run(SCORE_CPU_NUMERICS="native")
    assert native[0] == native_capability and native[1] == "None"
    assert native[2] != _run()[2]  # the CPU-dependent path trains other weights


def test_an_exported_value_wins_over_the_pin():
    from score_core.numerics import pin_cpu_numerics

    env = {"MKL_CBWR": "COMPATIBLE"}
    assert pin_cpu_numerics(env) == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE",
                                     "ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert pin_cpu_numerics({"SCORE_CPU_NUMERICS": "native"}) == {}


def test_portable_mode_runs_mkls_compatible_branch_bit_for_bit():
    """SCORE_CPU_NUMERICS=portable = MKL's SSE2 'COMPATIBLE' branch (the one Intel documents
    for equal results on Intel and non-Intel CPUs), exported by hand as the oracle; it is a
    different path from the default pin (other weights), which shows the mode is what decided."""
    portable = _run(SCORE_CPU_NUMERICS="portable")
    by_hand = _run(ATEN_CPU_CAPABILITY="avx2", MKL_CBWR="COMPATIBLE,STRICT", ONEDNN_MAX_CPU_ISA="AVX2",
                   SCORE_CPU_NUMERICS="native")
    assert portable[:2] == ("AVX2", "COMPATIBLE,STRICT"), portable
    assert portable == by_hand
    assert portable[2] != _run()[2]


def test_an_unknown_mode_is_refused():
    from score_core.numerics import pin_cpu_numerics

    with pytest.raises(ValueError, match="pinned, portable or native"):
        pin_cpu_numerics({"SCORE_CPU_NUMERICS": "fast"})
    assert pin_cpu_numerics({"SCORE_CPU_NUMERICS": "Portable"})["MKL_CBWR"] == "COMPATIBLE,STRICT"
