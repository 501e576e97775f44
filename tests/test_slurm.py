"""The pipeline on a real (one-node) SLURM: both routes of docs/run.md, and a killed job.

The cluster is the session fixture ``slurm_cluster`` (tests/slurm_cluster.py); every test
here skips when it cannot start. The tree (1 plate x 1 exposure, simulated once) is run
once on the local process pool; each SLURM route must give the same dataset
(``assert_same_outputs`` of tests/test_run.py: every file byte for byte, the catalogue apart
from its creation DATE).
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from skymodelling.cli import main
from skymodelling.errors import SkyModellingError
from skymodelling.executors import ProcessExecutor
from skymodelling.pipeline import run_pipeline

pytest.importorskip("distributed")
pytest.importorskip("dask_jobqueue")

from slurm_cluster import watchdog  # noqa: E402
from test_run import assert_same_outputs  # noqa: E402  (the comparison of the engine tests)

TESTS = Path(__file__).resolve().parent

JOB_TIMEOUT = 150.0   # s, for a whole pipeline run in a batch job

#: Time limit of each test (s), enforced by the watchdog so that no test can hang CI.
LIMITS = {"test_slurm_workers_are_batch_jobs_without_malloc_trim": 90,
          "test_slurm_refuses_a_bad_partition_in_one_line": 60,
          "test_option1_slurmcluster_jobs_give_the_pool_dataset": 180,
          "test_option2_one_allocation_gives_the_pool_dataset": 180,
          "test_a_job_cancelled_mid_run_and_run_again_gives_the_pool_dataset": 240}


@pytest.fixture(autouse=True)
def _time_limit(request):
    """Every test here ends within its limit, or fails with TestTimedOut."""
    name = request.node.name
    with watchdog(LIMITS.get(name, 60), what=name):
        yield


@pytest.fixture(scope="module")
def tree(slurm_cluster, request):
    """The smallest simulated tree of the suite (conftest ``noiseless_tree``: 1 plate x 1
    exposure), asked for only once the cluster is up."""
    return request.getfixturevalue("noiseless_tree")


@pytest.fixture(scope="module")
def pool_run(tree, tmp_path_factory):
    """The reference dataset: the same tree on the local process pool."""
    out = tmp_path_factory.mktemp("slurm-pool") / "out"
    with ProcessExecutor(2) as ex:
        summary = run_pipeline(tree, out, executor=ex, show=False)
    assert summary.n_failures == 0 and summary.stages[0].n_done == 1
    yield out
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture
def jobqueue(tmp_path, monkeypatch):
    """dask-jobqueue's configuration for the test cluster: loopback, short wall time.

    The prologue puts tests/ on the workers' path: they unpickle functions of this module
    by reference. (A task a worker cannot unpickle is no error in distributed: the worker
    drops the message and the client waits forever.)
    """
    import dask

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)   # jobs inherit our env
    settings = {"jobqueue.slurm.interface": "lo", "jobqueue.slurm.walltime": "00:15:00",
                "jobqueue.slurm.queue": "debug",
                "jobqueue.slurm.job-script-prologue": [f"export PYTHONPATH={TESTS}:$PYTHONPATH"],
                "jobqueue.slurm.log-directory": str(tmp_path / "logs"),
                "jobqueue.slurm.local-directory": str(tmp_path / "dask")}
    with dask.config.set(settings):
        yield tmp_path


def _job_environment(_):
    return os.environ.get("SLURM_JOB_ID"), os.environ.get("MALLOC_TRIM_THRESHOLD_")


@pytest.mark.slow
def test_slurm_workers_are_batch_jobs_without_malloc_trim(slurm_cluster, jobqueue, caplog):
    from skymodelling.slurm import SlurmExecutor

    with caplog.at_level("WARNING", logger="skymodelling"):
        with SlurmExecutor(jobs=2, wait_timeout=60) as ex:
            script = ex._cluster.job_script()
            seen = set(ex.map_unordered(_job_environment, range(20)))
            jobs = set(slurm_cluster.jobs())
    assert "#SBATCH -p debug" in script and "#SBATCH --mem=2G" in script
    assert f"\nexport PYTHONPATH={TESTS}:$PYTHONPATH\nexport DASK_DISTRIBUTED__NANNY" in script
    assert {trim for _, trim in seen} == {None}
    job_ids = {job for job, _ in seen}
    assert None not in job_ids and job_ids <= jobs
    assert "MALLOC_TRIM_THRESHOLD_" not in caplog.text
    slurm_cluster.wait_idle()          # closing the executor cancels its jobs


@pytest.mark.slow
def test_slurm_refuses_a_bad_partition_in_one_line(slurm_cluster, jobqueue):
    import dask

    from skymodelling.slurm import SlurmExecutor

    with dask.config.set({"jobqueue.slurm.queue": "nosuchpartition"}):
        with pytest.raises(SkyModellingError, match="SLURM refuses the worker job") as err:
            SlurmExecutor(jobs=1, wait_timeout=30)
    assert "\n" not in str(err.value)
    assert slurm_cluster.jobs() == []


@pytest.mark.slow
def test_option1_slurmcluster_jobs_give_the_pool_dataset(slurm_cluster, tree, pool_run,
                                                        jobqueue, capsys):
    out = jobqueue / "out"
    code = main(["run", str(tree), str(out), "--executor", "slurm", "--jobs", "2"])
    assert code == 0
    assert "on slurm (2 jobs) via dask at tcp://127.0.0.1:" in capsys.readouterr().out
    assert_same_outputs(pool_run, out)
    slurm_cluster.wait_idle()


def _allocation_script(raw: Path, out: Path, work: Path) -> str:
    """docs/run.md option 2: scheduler, workers and driver in one allocation."""
    py = sys.executable
    return f"""#!/bin/bash
#SBATCH --ntasks=2 --cpus-per-task=1 --mem-per-cpu=2G --time=00:15:00
#SBATCH --output={work}/allocation-%j.out
export OMP_NUM_THREADS=1
export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON="{{'MALLOC_TRIM_THRESHOLD_': None}}"
SCHED={work}/scheduler-$SLURM_JOB_ID.json
{py} -m distributed.cli.dask_scheduler --scheduler-file $SCHED --host 127.0.0.1 --port 0 \\
    --no-dashboard &
while [ ! -s $SCHED ]; do sleep 0.2; done
srun {py} -m distributed.cli.dask_worker --scheduler-file $SCHED --nthreads 1 \\
    --memory-limit 2GB --host 127.0.0.1 --local-directory {work}/dask &
{py} -c "from distributed import Client; Client(scheduler_file='$SCHED').wait_for_workers(2)"
{py} -m skymodelling run {raw} {out} --executor dask --scheduler $SCHED
echo $? > {work}/driver-$SLURM_JOB_ID.rc
"""


def _finished(cluster, job: str, work: Path) -> str:
    state = cluster.wait_job(job, JOB_TIMEOUT)
    log = work / f"allocation-{job}.out"
    text = log.read_text() if log.exists() else "(no output)"
    assert state == "COMPLETED", f"job {job} {state}:\n{text}"
    assert (work / f"driver-{job}.rc").read_text().strip() == "0", text
    return text


@pytest.mark.slow
def test_option2_one_allocation_gives_the_pool_dataset(slurm_cluster, tree, pool_run, tmp_path):
    out = tmp_path / "out"
    job = slurm_cluster.sbatch(_allocation_script(tree, out, tmp_path), cwd=tmp_path)
    text = _finished(slurm_cluster, job, tmp_path)
    assert "on dask at tcp://127.0.0.1:" in text and "(2 worker threads)" in text
    assert "MALLOC_TRIM_THRESHOLD_" not in text        # no warning of slow workers
    assert_same_outputs(pool_run, out)
    slurm_cluster.wait_idle()


@pytest.mark.slow
def test_a_job_cancelled_mid_run_and_run_again_gives_the_pool_dataset(slurm_cluster, tree,
                                                                      pool_run, tmp_path):
    out = tmp_path / "out"
    script = _allocation_script(tree, out, tmp_path)
    job = slurm_cluster.sbatch(script, cwd=tmp_path)
    # cancel as soon as the first plate's extract output is complete
    deadline = time.monotonic() + JOB_TIMEOUT
    while not list((out / "extract").rglob("*.done")):
        assert time.monotonic() < deadline, "no extract output appeared"
        assert slurm_cluster.job_state(job) in ("PENDING", "CONFIGURING", "RUNNING")
        time.sleep(0.05)
    slurm_cluster.scancel(job)
    assert slurm_cluster.wait_job(job, 60) == "CANCELLED"
    assert not (out / "merge").exists(), "the run had finished before it was cancelled"
    assert not (tmp_path / f"driver-{job}.rc").exists()
    slurm_cluster.wait_idle()

    again = slurm_cluster.sbatch(script, cwd=tmp_path)
    _finished(slurm_cluster, again, tmp_path)
    assert_same_outputs(pool_run, out)
    slurm_cluster.wait_idle()


def test_run_slurm_says_in_one_line_when_it_cannot_run(monkeypatch, tmp_path, capsys):
    """No cluster needed: no dask-jobqueue, no sinfo on PATH, --jobs without slurm."""
    argv = ["run", str(tmp_path / "raw"), str(tmp_path / "out"), "--executor", "slurm"]
    (tmp_path / "raw").mkdir()   # RAW exists: the executor's error is the one reported
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)     # as if not installed
    assert main(argv) == 2
    assert capsys.readouterr().err == ("skymodelling: error: the slurm executor needs "
                                       "dask-jobqueue: python -m pip install "
                                       "'skymodelling[slurm]'\n")
    monkeypatch.undo()
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("skymodelling: error: ") and "`sinfo` is not on PATH" in err
    assert err.count("\n") == 1
    monkeypatch.undo()
    assert main([*argv[:3], "--jobs", "2"]) == 2
    assert "--jobs needs --executor slurm" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_check_slurm_says_when_no_controller_answers(monkeypatch, tmp_path):
    from skymodelling.slurm import check_slurm

    if shutil.which("sinfo") is None:
        pytest.skip("sinfo is not installed")
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=none\nSlurmctldHost=localhost(127.0.0.1)\n"
                    "SlurmctldPort=9\nNodeName=localhost\nPartitionName=p Nodes=localhost\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    with pytest.raises(SkyModellingError, match="no SLURM cluster reachable") as err:
        check_slurm(timeout=60)
    assert "\n" not in str(err.value)


def test_watchdog_ends_a_wait_that_would_hang():
    from slurm_cluster import TestTimedOut

    start = time.monotonic()
    with pytest.raises(TestTimedOut, match="stuck loop did not finish within 1 s"):
        with watchdog(1, what="stuck loop"):
            while True:
                time.sleep(0.05)
    assert time.monotonic() - start < 5
