"""Progress bars for long work (rollout, grading, training), on stderr via tqdm.

Set SCORE_PROGRESS=0 to silence them (CI logs, benchmarks).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Optional

from tqdm.auto import tqdm


@contextmanager
def bar(total: Optional[int], desc: str) -> Iterator[tqdm]:
    disable = os.environ.get("SCORE_PROGRESS", "1") == "0"
    with tqdm(total=total, desc=desc, disable=disable, leave=False, dynamic_ncols=True) as pb:
        yield pb
