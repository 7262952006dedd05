"""Session-wide test setup: a private Prefect home and an isolated Prefect test server."""
import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()

if "PREFECT_HOME" not in os.environ:  # a private home, removed when the session ends
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="score-prefect-home-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("SCORE_PROGRESS", "0")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@pytest.fixture(scope="session")
def prefect_harness():
    """An isolated Prefect API (own SQLite DB) for tests that run flows."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}; tests need ../shared/data beside the repo")
    return SHARED_DATA


@pytest.fixture(scope="module")
def tiny():
    """(model, tokenizer): a random 1-layer debug Llama (seconds on a CPU), left padding."""
    import torch

    from score_core.config import DebugBaseConfig
    from score_core.generation.debug_model import build_model, build_tokenizer

    torch.manual_seed(0)
    tok = build_tokenizer()
    tok.padding_side = "left"
    cfg = DebugBaseConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    return build_model(cfg, tok).eval(), tok


@pytest.fixture(scope="module")
def problems():
    """Six synthetic a·x+b=c training problems."""
    from score_core.problems.synthetic import make_problems

    return make_problems("synth_linear", 6, 0, "train")
