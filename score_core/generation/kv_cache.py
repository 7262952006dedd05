"""A KV cache that grows by doubling instead of by concatenation.

transformers' `DynamicLayer.update` appends a decoding step's keys/values with
`torch.cat([cache, new])`: every step copies the whole cache, so decoding L tokens copies
O(L²) — for the debug model (3 layers, 512 rows, ≤ 100 positions) `torch.cat` was 3.0 s of
an 8.9 s rollout of 1024 episodes (cProfile; `score bench decode-cache`, docs/BENCHMARKS.md).
`GrowingLayer` keeps a buffer with spare capacity along the sequence axis and writes each
step in place (amortised O(1) per token; the buffer doubles when full); `keys`/`values`
are views of its filled part, so every reader (attention, `get_seq_length`, the decoder's
cache parking) sees exactly what `DynamicLayer` would hold — the same numbers in the same
positions. Dropping finished rows (`batch_select_indices`) keeps the capacity.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

MIN_CAPACITY = 64  # positions allocated at least, so short prompts do not double at once


class GrowingLayer(DynamicLayer):
    """`DynamicLayer` with an in-place, capacity-doubling append (see module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        self._key_buf: Optional[torch.Tensor] = None  # (B, H, capacity, D)
        self._value_buf: Optional[torch.Tensor] = None  # (B, H, capacity, D)
        self._length = 0  # filled positions
        super().__init__(**kwargs)

    @property
    def keys(self) -> Optional[torch.Tensor]:  # (B, H, length, D) view of the buffer
        return None if self._key_buf is None else self._key_buf[:, :, :self._length]

    @keys.setter
    def keys(self, t: Optional[torch.Tensor]) -> None:  # what the base class assigns: a full cache
        self._key_buf = t
        self._length = 0 if t is None or t.dim() < 3 else t.shape[-2]

    @property
    def values(self) -> Optional[torch.Tensor]:
        return None if self._value_buf is None else self._value_buf[:, :, :self._length]

    @values.setter
    def values(self, t: Optional[torch.Tensor]) -> None:
        self._value_buf = t
        self._length = 0 if t is None or t.dim() < 3 else t.shape[-2]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append (B, H, n, D) keys/values in place; returns the filled views (B, H, length + n, D)."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self._length + key_states.shape[-2]
        if self._key_buf is None or self._key_buf.dim() < 3 or end > self._key_buf.shape[-2]:
            self._grow(key_states, value_states, max(MIN_CAPACITY, 2 * end))
        self._key_buf[:, :, self._length:end] = key_states
        self._value_buf[:, :, self._length:end] = value_states
        self._length = end
        return self.keys, self.values

    def _grow(self, key_states: torch.Tensor, value_states: torch.Tensor, capacity: int) -> None:
        b, h, _, d = key_states.shape
        keys = key_states.new_empty((b, h, capacity, d))
        values = value_states.new_empty((b, h, capacity, value_states.shape[-1]))
        if self._length:
            keys[:, :, :self._length] = self.keys
            values[:, :, :self._length] = self.values
        self._key_buf, self._value_buf = keys, values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep rows `indices` (capacity and length unchanged)."""
        if self._length == 0:
            return
        indices = indices.to(self._key_buf.device)
        self._key_buf = self._key_buf.index_select(0, indices)
        self._value_buf = self._value_buf.index_select(0, indices)


def growing_cache(config: Any) -> DynamicCache:
    """`DynamicCache(config=config)` whose plain dynamic layers append in place (sliding-window
    or other special layers are left as transformers built them)."""
    cache = DynamicCache(config=config)
    cache.layers = [GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
