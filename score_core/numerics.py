"""CPU numerics pinned to one code path, so a config and seed give the same table on every
machine of one CPU vendor with AVX2 and the same thread count — not only on the machine
that ran it.

torch's CPU kernels and MKL's BLAS pick their vector code by the CPU they find (AVX-512
here, AVX2 or AMX elsewhere), and the float sums of different code paths round differently.
Measured (20 pre-training steps of the debug base, sha256 of the weights;
`tests/test_numerics.py` repeats the first two): on an Intel Xeon with AVX-512, ATen's
AVX-512 vs AVX2 kernels → different weights; with ATen at AVX2, MKL's AVX-512 vs AVX2 branch
→ different weights; 1 vs 2 threads → different weights. Greedy evaluation then flips a few
answers and the RL that follows diverges.

Three modes, chosen by `SCORE_CPU_NUMERICS` (a variable you export yourself always wins):
- unset / "pinned" (default): `ATEN_CPU_CAPABILITY=avx2` (torch's own kernels, read at their
  first dispatch), `MKL_CBWR=AVX2,STRICT` (MKL's conditional numerical reproducibility, read
  at the first BLAS call) and `ONEDNN_MAX_CPU_ISA=AVX2` (oneDNN: bf16 and some fused paths).
  Bit for bit across Intel CPUs with AVX2. On other vendors' CPUs MKL ignores a named branch
  and runs its AUTO path (Intel's documentation says so; measured on an AMD EPYC: the AVX2,
  AUTO and SSE4_2 branches gave one weight hash, COMPATIBLE another), so an AMD machine
  prints its own table — bit for bit across runs on it, not equal to an Intel machine's.
- "portable": as pinned, but `MKL_CBWR=COMPATIBLE,STRICT` — the SSE2 branch that Intel
  documents for the same results on Intel and non-Intel CPUs (not verified here: only one
  vendor was at hand at a time). Slower: 150 pre-training steps on the AMD EPYC took 61–64 s
  vs 28–30 s pinned.
- "native": sets nothing (each library's fastest path for this CPU; tables then hold for
  this CPU kind only).
Thread count still matters: runs agree bit for bit only at the same `torch.get_num_threads()`
(the default is the number of cores). GPUs are untouched (CUDA's determinism is a separate
matter). `score_core/__init__.py` calls this first, before any module here imports torch.
"""
from __future__ import annotations

import os
import sys
import warnings
from typing import MutableMapping

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"}
PORTABLE = {**PINNED, "MKL_CBWR": "COMPATIBLE,STRICT"}
MODES = {"": PINNED, "pinned": PINNED, "portable": PORTABLE, "native": {}}


def pin_cpu_numerics(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Set the variables of the `SCORE_CPU_NUMERICS` mode that are not set yet; return what
    the environment now holds for them."""
    mode = environ.get("SCORE_CPU_NUMERICS", "").lower()
    if mode not in MODES:
        raise ValueError(f"SCORE_CPU_NUMERICS={mode!r}: expected pinned, portable or native")
    for name, value in MODES[mode].items():
        environ.setdefault(name, value)
    if "torch" in sys.modules and environ is os.environ:
        _warn_if_too_late(environ.get("ATEN_CPU_CAPABILITY"))
    return {name: environ[name] for name in PINNED if name in environ}


def _warn_if_too_late(wanted: str | None) -> None:
    """torch imported before score_core and already dispatched a kernel: its capability is
    fixed for this process. Say so (the run is still correct, only not reproducible
    elsewhere)."""
    import torch

    got = torch.backends.cpu.get_cpu_capability()
    if wanted and got.lower() != wanted.lower():
        warnings.warn(f"torch already runs its {got} CPU kernels (it ran an operation before score_core "
                      f"was imported), not {wanted}: this process's results may differ from another "
                      "machine's; import score_core first or export ATEN_CPU_CAPABILITY", stacklevel=3)
