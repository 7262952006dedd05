"""CPU numerics pinned to one code path, so a config and seed give the same table on any
x86-64 machine with AVX2 and the same thread count — not only on the machine that ran it.

torch's CPU kernels and MKL's BLAS pick their vector code by the CPU they find (AVX-512
here, AVX2 or AMX elsewhere), and the float sums of different code paths round differently.
Measured on one machine (20 pre-training steps of the debug base, sha256 of the weights;
`tests/test_numerics.py` repeats the first two): ATen's AVX-512 vs AVX2 kernels → different
weights; with ATen at AVX2, MKL's AVX-512 vs AVX2 branch → different weights; 1 vs 2 threads
→ different weights. Greedy evaluation then flips a few answers and the RL that follows
diverges, so a table printed on one machine could not be reproduced on another.

`pin_cpu_numerics` sets, unless already set (a value you export wins):
- `ATEN_CPU_CAPABILITY=avx2` — torch's own CPU kernels (read at their first dispatch);
- `MKL_CBWR=AVX2,STRICT` — MKL's conditional numerical reproducibility: the AVX2 branch,
  bit for bit, whatever the CPU (read when MKL starts, at the first BLAS call);
- `ONEDNN_MAX_CPU_ISA=AVX2` — oneDNN (bf16 and some fused CPU paths).
Thread count still matters: runs agree bit for bit only at the same `torch.get_num_threads()`
(the default is the number of cores). `SCORE_CPU_NUMERICS=native` leaves all three unset
(each library's fastest path for this CPU; tables then hold for this CPU kind only).
GPUs are untouched (CUDA's determinism is a separate matter). `score_core/__init__.py`
calls this first, before any of the project's modules imports torch.
"""
from __future__ import annotations

import os
import sys
import warnings
from typing import MutableMapping

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def pin_cpu_numerics(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Set PINNED's variables that are not set yet (unless SCORE_CPU_NUMERICS=native);
    return what the environment now holds for them."""
    if environ.get("SCORE_CPU_NUMERICS", "").lower() != "native":
        for name, value in PINNED.items():
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
