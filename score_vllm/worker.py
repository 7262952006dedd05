"""Worker extension (`vllm.LLM(worker_extension_cls=...)`): methods the rollout server calls
in vLLM's worker process through `LLM.collective_rpc(name, ...)` — no pickled closures, so
`VLLM_ALLOW_INSECURE_SERIALIZATION` stays off."""
from __future__ import annotations

import time
from typing import Any


class ScoreWorkerExtension:
    """Mixed into vLLM's worker class; `self` is the worker."""

    def score_load_weights(self, weights_dir: str) -> dict[str, Any]:
        """Load the full checkpoint at `weights_dir` into the live model, in place.

        vLLM's own in-place reload (`Worker.reload_weights`, layer-wise, re-running each
        layer's post-load processing). On CPU it leaves one thing stale (vLLM 0.32.0, found
        here): layers that keep their weight *and* a pre-packed GEMM copy of it — the
        embedding and, with tied embeddings, the LM head whose weight IS the embedding —
        get new weights but their packed copy (`cpu_linear`) is never rebuilt, so logits
        come from the old LM head. They are re-dispatched here."""
        t0 = time.perf_counter()
        self.reload_weights(weights_path=weights_dir)  # type: ignore[attr-defined]
        redispatched = []
        from vllm.platforms import current_platform

        if current_platform.is_cpu():
            from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

            model = self.model_runner.get_model()  # type: ignore[attr-defined]
            for name, module in model.named_modules():
                weight = getattr(module, "weight", None)
                if hasattr(module, "cpu_linear") and weight is not None and weight.numel() > 0:
                    dispatch_cpu_unquantized_gemm(module, remove_weight=False)
                    redispatched.append(name)
        return {"seconds": time.perf_counter() - t0, "redispatched": redispatched}
