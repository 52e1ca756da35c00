"""Shared fixtures: tiny synthetic data sets (made by segfit.data.synthetic) and one trained run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PYTHONWARNINGS", "ignore")


@pytest.fixture(scope="session", autouse=True)
def _pair_cache(tmp_path_factory):
    """Keep the on-disk pair cache of every test run inside pytest's temporary folder."""
    os.environ["SEGFIT_CACHE"] = str(tmp_path_factory.mktemp("pair-cache"))

EMPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "emps"


@pytest.fixture(scope="session")
def particles_dir(tmp_path_factory) -> Path:
    """12 EM-like images of 32x32 in images/ + segmaps/ (16-bit instance maps)."""
    from segfit.data.synthetic import make_particles

    return make_particles(tmp_path_factory.mktemp("particles"), n=12, size=32, seed=1)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, particles_dir) -> Path:
    """A 2-epoch notebook-model run on ``particles_dir`` (grayscale), shared by read-only tests."""
    import segfit

    out = tmp_path_factory.mktemp("runs") / "run"
    segfit.train(particles_dir, out, model="notebook", channels=1, epochs=2, batch_size=4, val=3, test=0.25, seed=0,
                 preload=True, verbose=False)
    return out


@pytest.fixture(scope="session")
def emps_dir() -> Path:
    if not (EMPS / "images").is_dir():
        pytest.skip(f"EMPS data set not found at {EMPS}")
    return EMPS
