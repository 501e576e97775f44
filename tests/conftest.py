"""Shared fixtures: simulated BOSS trees, made once per test session."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session", autouse=True)
def _offline_astropy():
    """No test may make astropy download IERS tables or site lists."""
    from skymodelling.conditions.site import offline_astropy

    offline_astropy()


@pytest.fixture(scope="session", autouse=True)
def _dask_scratch_in_pytest_tmp(tmp_path_factory):
    """Dask's workers spill into ``temporary-directory`` (default ``/tmp/dask-scratch-space``,
    which outlives the run); the tests' clusters use a folder pytest removes instead."""
    import os

    scratch = tmp_path_factory.mktemp("dask-scratch")
    os.environ["DASK_TEMPORARY_DIRECTORY"] = str(scratch)
    try:
        import dask
    except ImportError:
        yield
        return
    with dask.config.set({"temporary-directory": str(scratch)}):
        yield


@pytest.fixture(scope="session")
def sim_tree(tmp_path_factory) -> Path:
    """The tree of the foundation issue: ``simulate RAW --plates 2 --exposures 3 --seed 1``."""
    from skymodelling.simulate.tree import simulate_tree

    raw = tmp_path_factory.mktemp("sim") / "raw"
    simulate_tree(raw, n_plates=2, n_exposures=3, seed=1)
    return raw


@pytest.fixture(scope="session")
def noiseless_tree(tmp_path_factory) -> Path:
    """A one-plate, one-exposure noiseless tree (plus its rejected exposure)."""
    from skymodelling.simulate.tree import simulate_tree

    raw = tmp_path_factory.mktemp("noiseless") / "raw"
    simulate_tree(raw, n_plates=1, n_exposures=1, seed=7, noiseless=True)
    return raw


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``../shared/reference`` of the development workspace; tests skip without it."""
    ref = SHARED / "reference"
    if not ref.is_dir():
        pytest.skip("shared/reference is not available on this machine")
    return ref


@pytest.fixture(scope="module")
def slurm_cluster():
    """A one-node SLURM (munged, slurmctld, slurmd) on this host, for the tests of a module
    (stopped, every daemon and job, when the module's tests are done or fail).

    Skips when the Debian packages ``slurm-wlm`` and ``munge`` are not installed, when not
    root, or when the node does not come up idle within 30 s. See ``tests/slurm_cluster.py``.
    """
    from slurm_cluster import SlurmCluster, SlurmUnavailable

    cluster = SlurmCluster(startup_timeout=30.0)
    try:
        cluster.start()
    except SlurmUnavailable as exc:
        pytest.skip(f"no single-node SLURM here: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def realsky_dir() -> Path:
    """``../shared/realsky`` (real BOSS spec files of plate 7338); tests skip without it.
    ``SKYMODELLING_SHARED`` names another shared folder (e.g. for a git worktree)."""
    import os

    folder = Path(os.environ.get("SKYMODELLING_SHARED", SHARED)) / "realsky"
    if not folder.is_dir() or not list(folder.glob("spec-*.fits")):
        pytest.skip("shared/realsky is not available on this machine")
    return folder


def kill_when(args, out: Path, marker_glob: str, timeout: float = 300.0) -> list[Path]:
    """Run ``python -m skymodelling ARGS``, SIGKILL it as soon as ``out.glob(marker_glob)``
    finds a file (or after ``timeout`` s); return what the glob finds then."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "skymodelling", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and not list(out.glob(marker_glob)):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return list(out.glob(marker_glob))
