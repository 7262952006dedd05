"""Run one GPU-bound step in a fresh child process, so its accelerator memory is released
when the step ends (required for vLLM; done on CPU too).

Children are forked from a multiprocessing *forkserver* that imported torch, transformers
and score_core once, so a step starts in well under a second instead of paying the imports
again (≈ 10–30 s on a loaded 2-core machine). The forkserver itself never touches CUDA.

The result comes back as a small JSON-able record over a pipe. A child whose parent died
(`kill -9` of the pipeline) notices within a second and exits: nothing is left running
that could race the resumed run. Outputs are written atomically by the step itself, so a
killed child leaves at most a temporary file, which `ledger.clean_stale_temps` removes.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import threading
import time
import traceback
from typing import Any, Callable, Optional

from score_core import timing

PRELOAD = ["score_core.steps.rollout", "score_core.steps.train", "score_core.generation.debug_model",
           "score_core.generation.rollout", "score_core.method.trainer",
           "transformers", "transformers.models.auto.modeling_auto",
           "transformers.models.auto.tokenization_auto", "transformers.tokenization_utils_fast",
           "transformers.generation.utils", "transformers.models.llama.modeling_llama", "accelerate",
           # imported lazily by a step's first Parquet read / torch.save: pyarrow.dataset pulls in
           # pandas (~300 modules, 0.3–1 s per child on a loaded 2-core machine)
           "pyarrow.dataset", "pyarrow.pandas_compat", "pandas", "torch.utils.serialization"]
_CTX: Optional[Any] = None
_CTX_LOCK = threading.Lock()


class StepProcessDied(RuntimeError):
    """The step's child process exited without a result (killed, out of memory, segfault).
    Infrastructure, not a bug in the step: worth a retry from the last checkpoint."""


class StepFailed(RuntimeError):
    """The step raised an exception that could not be sent back as itself."""


def _context() -> Any:
    global _CTX
    with _CTX_LOCK:
        if _CTX is None:
            method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
            ctx = mp.get_context(method)
            if method == "forkserver":
                ctx.set_forkserver_preload(PRELOAD)
            _CTX = ctx
        return _CTX


def warm_up() -> None:
    """Start the forkserver and wait for its imports now rather than at the first step."""
    run_in_child(noop, {})


def noop() -> dict[str, Any]:
    return {}


def run_in_child(step: Callable[..., Any], kwargs: dict[str, Any], threads: Optional[int] = None) -> Any:
    """Call `step(**kwargs)` in a fresh process and return its record. `step` must be a
    module-level function (it is pickled by reference: module and name); `threads`: torch
    intra-op threads in the child (None: torch's default)."""
    ctx = _context()
    target = f"{step.__module__}.{step.__qualname__}"
    t_start = time.time()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(step, kwargs, send, os.getpid(), threads),
                       name=f"score-step:{target}")
    proc.start()
    send.close()
    try:
        ok, payload, inner_s = recv.recv()
    except EOFError:
        ok, payload, inner_s = None, None, 0.0
    finally:
        recv.close()
    proc.join()
    # what the child process added around the step itself: fork, start, result transfer, exit
    timing.record("child_process", t_start, time.time() - inner_s)
    if ok is None:
        raise StepProcessDied(f"{target}: child process exited with code {proc.exitcode} and no result")
    if ok:
        return payload
    raise _rebuild(payload)


def _rebuild(payload: tuple[bytes, str]) -> BaseException:
    pickled, text = payload
    try:
        exc = pickle.loads(pickled)
    except Exception:
        return StepFailed(text)
    exc.__cause__ = StepFailed(f"in the step's child process:\n{text}")
    return exc


def _child_main(step: Callable[..., Any], kwargs: dict[str, Any], send: Any, parent_pid: int,
                threads: Optional[int] = None) -> None:
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    t0 = time.time()
    try:
        if threads:
            import torch

            torch.set_num_threads(threads)
        result = step(**kwargs)
        send.send((True, result, time.time() - t0))
    except BaseException as exc:  # sent back and re-raised in the parent
        text = traceback.format_exc()
        try:
            pickled = pickle.dumps(exc)
        except Exception:
            pickled = b""
        send.send((False, (pickled, text), time.time() - t0))
    finally:
        send.close()


def _exit_when_orphaned(parent_pid: int, period_s: float = 0.5) -> None:
    while True:
        time.sleep(period_s)
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(137)
        except PermissionError:  # pid reused by another user's process: parent is gone
            os._exit(137)
