"""The rollout server: one long-lived `vllm.LLM` per pipeline run, in the vLLM environment.

    python -m score_vllm.server --address /tmp/….sock --owner-pid PID   (authkey: $SCORE_VLLM_AUTHKEY, hex)

Started and owned by `score_core.generation.vllm_engine.RolloutServer` (the flow process, a test, a
benchmark); every rollout step connects to it over a Unix socket
(`multiprocessing.connection`, authenticated), any number of clients, one request at a time. Requests are dicts of
plain Python values — token ids, `vllm.LLM` / `vllm.SamplingParams` keyword arguments, paths:

- `engine`  {args}: build the engine from these `vllm.LLM` arguments unless the live one fits:
  the same arguments (up to the seed) and a model of the same shape (config.json up to names
  and versions), so
  a later checkpoint of the run reuses the engine — this is what makes it one engine per run;
- `weights` {path}: load a full checkpoint into the live engine in place (`ScoreWorkerExtension.
  score_load_weights`; a no-op when `path` is already loaded) and drop the prefix cache;
- `adapter` {path | None}: serve this LoRA adapter from now on (a new `LoRARequest` id per new
  path, so vLLM never serves a stale cached adapter); None = the base weights;
- `generate` {prompts, sampling}: token ids in, per prompt the sampled ids, finish
  reason, stop reason and each sampled token's log-probability out;
- `ping`, `shutdown`.

A reply is {"ok": True, ...} or {"ok": False, "error": str, "dead": bool}; `dead` means the
engine died (vLLM's `EngineDeadError` or its core process gone): the server exits right after
replying, and the owner starts a new one. The server exits as well when its owner's process
is gone (checked every second), taking its process group (vLLM's engine-core and worker
processes) with it, so no engine outlives a killed pipeline. Each connection is served in
its own thread; requests run one at a time under a lock.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Listener
from typing import Any, Optional

EXTENSION = "score_vllm.worker.ScoreWorkerExtension"


class Server:
    def __init__(self) -> None:
        self.llm: Optional[Any] = None
        self.args: Optional[dict[str, Any]] = None
        self.weights: Optional[str] = None  # full checkpoint loaded into the live engine
        self.adapter: Optional[Any] = None  # the LoRARequest served, or None
        self.adapter_path: Optional[str] = None
        self.adapter_ids = 0
        self.platform = ""
        self.lock = threading.Lock()

    # --- requests -------------------------------------------------------------------
    def engine(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.llm is not None and _same_engine(self.args, args):
            return {"built": False, "start_s": 0.0, "platform": self.platform}
        self._close()
        import vllm
        from vllm.platforms import current_platform

        t0 = time.perf_counter()
        self.llm = vllm.LLM(**{**args, "worker_extension_cls": EXTENSION})
        self.args, self.weights, self.adapter, self.adapter_path = dict(args), args["model"], None, None
        self.platform = current_platform.device_type
        return {"built": True, "start_s": time.perf_counter() - t0, "platform": self.platform,
                "vllm": vllm.__version__}

    def weights_(self, path: str) -> dict[str, Any]:
        llm = self._live()
        if path == self.weights:
            return {"loaded": False, "seconds": 0.0}
        t0 = time.perf_counter()
        out = llm.collective_rpc("score_load_weights", args=(path,))[0]
        llm.reset_prefix_cache()  # cached KV of the old weights must not be reused
        self.weights = path
        return {"loaded": True, "seconds": time.perf_counter() - t0, "worker": out}

    def adapter_(self, path: Optional[str]) -> dict[str, Any]:
        self._live()
        if path is None:
            self.adapter, self.adapter_path = None, None
            return {"adapter_id": 0}
        if path != self.adapter_path:
            from vllm.lora.request import LoRARequest

            self.adapter_ids += 1
            self.adapter = LoRARequest(f"policy-{self.adapter_ids}", self.adapter_ids, path)
            self.adapter_path = path
        return {"adapter_id": self.adapter.lora_int_id}

    def generate(self, prompts: list[list[int]], sampling: list[dict[str, Any]]) -> dict[str, Any]:
        import vllm
        from vllm.inputs import TokensPrompt

        llm = self._live()
        params = [vllm.SamplingParams(**s) for s in sampling]
        t0 = time.perf_counter()
        outs = llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params,
                            lora_request=self.adapter, use_tqdm=False)
        rows = []
        for o in outs:
            c = o.outputs[0]
            ids = list(c.token_ids)
            lps = [d[t].logprob for d, t in zip(c.logprobs, ids)] if c.logprobs is not None else []
            rows.append({"token_ids": ids, "finish_reason": c.finish_reason, "stop_reason": c.stop_reason,
                         "logprobs": lps})
        return {"outputs": rows, "seconds": time.perf_counter() - t0}

    # --- plumbing -------------------------------------------------------------------
    def _live(self) -> Any:
        if self.llm is None:
            raise RuntimeError("no engine: send an `engine` request first")
        return self.llm

    def _close(self) -> None:
        if self.llm is not None:
            try:
                self.llm.llm_engine.engine_core.shutdown()
            except Exception:
                pass
            self.llm = None

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "ping":
            return {"pid": os.getpid(), "engine": self.args is not None, "weights": self.weights,
                    "adapter": self.adapter_path, "platform": self.platform}
        if op == "engine":
            return self.engine(req["args"])
        if op == "weights":
            return self.weights_(req["path"])
        if op == "adapter":
            return self.adapter_(req.get("path"))
        if op == "generate":
            return self.generate(req["prompts"], req["sampling"])
        raise ValueError(f"unknown request {op!r}")


VOLATILE = {"_name_or_path", "transformers_version", "torch_dtype", "dtype", "architectures_version"}


def _shape(model: str) -> Any:
    """A model's config.json without names and versions (hub ids: the id itself)."""
    path = os.path.join(model, "config.json")
    if not os.path.isfile(path):
        return model
    with open(path) as f:
        cfg = json.load(f)
    return {k: v for k, v in cfg.items() if k not in VOLATILE}


def _same_engine(old: Optional[dict[str, Any]], new: dict[str, Any]) -> bool:
    if old is None:
        return False
    # the weights path and the engine seed do not shape the engine (requests carry their own seeds)
    rest = lambda a: {k: v for k, v in a.items() if k not in ("model", "seed")}  # noqa: E731
    return rest(old) == rest(new) and (old["model"] == new["model"] or _shape(old["model"]) == _shape(new["model"]))


def _engine_dead(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    return bool(names & {"EngineDeadError", "EngineGenerateError"})


def _chain(exc: Optional[BaseException]) -> list[BaseException]:
    out = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def _exit_when_orphaned(owner_pid: int) -> None:
    while True:
        time.sleep(1.0)
        try:
            os.kill(owner_pid, 0)
        except (ProcessLookupError, PermissionError):
            _kill_group(3)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--address", required=True, help="Unix socket path to listen on")
    ap.add_argument("--owner-pid", type=int, default=0, help="exit when this process is gone")
    a = ap.parse_args(argv)
    if a.owner_pid:
        threading.Thread(target=_exit_when_orphaned, args=(a.owner_pid,), daemon=True).start()
    authkey = bytes.fromhex(os.environ.pop("SCORE_VLLM_AUTHKEY"))
    server = Server()
    try:  # before listening: an unusable build fails here, with its own error as the last line
        import vllm
        from vllm.platforms import current_platform

        server.platform = current_platform.device_type
    except Exception as exc:
        print(f"score_vllm.server: cannot use vLLM here: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"score_vllm.server: vLLM {vllm.__version__}, platform {server.platform!r}", file=sys.stderr, flush=True)
    with Listener(a.address, family="AF_UNIX", authkey=authkey) as listener:
        print(f"score_vllm.server: listening on {a.address} (pid {os.getpid()})", file=sys.stderr, flush=True)
        while True:
            try:
                conn = listener.accept()
            except Exception:  # a client that failed authentication
                continue
            threading.Thread(target=_serve, args=(server, conn), daemon=True).start()


def _serve(server: Server, conn: Any) -> None:
    """One client: requests in order, each under the server's lock (one engine call at a time;
    clients may hold connections side by side — the owner's and a step's)."""
    with conn:
        while True:
            try:
                req = conn.recv()
            except (EOFError, OSError):
                return
            with server.lock:
                if req.get("op") == "shutdown":
                    server._close()
                    conn.send({"ok": True})
                    os._exit(0)
                try:
                    reply = {"ok": True, **server.handle(req)}
                except BaseException as exc:  # reported to the client, never half-applied
                    dead = _engine_dead(exc)
                    conn.send({"ok": False, "dead": dead,
                               "error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"})
                    if dead:
                        print("score_vllm.server: the engine died; exiting", file=sys.stderr, flush=True)
                        _kill_group(4)
                    continue
            conn.send(reply)


def _kill_group(code: int) -> None:
    """Exit with vLLM's engine-core and worker processes (this process leads their group)."""
    sys.stderr.flush()
    try:
        if os.getpgid(0) == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
    finally:
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
