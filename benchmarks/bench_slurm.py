"""The slurm executor on a real one-node SLURM: job start latency, task rate, same dataset.

Usage: python benchmarks/bench_slurm.py [--jobs 2] [--tasks 2000] [--raw RAW]

Needs root and Debian's ``slurm-wlm`` and ``munge`` (``.ci/install-slurm``); starts the
private one-node cluster of the tests (``tests/slurm_cluster.py``: munged, slurmctld and
slurmd on this host) and measures

* the cluster's start (daemons started until ``sinfo`` shows the node idle);
* the job start latency of :class:`skymodelling.slurm.SlurmExecutor`: from the
  ``SLURMCluster`` submitting ``--jobs`` batch jobs until every worker has connected and
  imported the stages (``warm_up``), i.e. what ``run --executor slurm`` waits before its
  first task on an idle cluster;
* tasks per second: ``--tasks`` trivial tasks through the executor's ``map_unordered``
  (the per-task overhead of scheduler, network and result handling);
* the whole pipeline on a simulated 1 plate x 1 exposure tree (or ``--raw``) on the SLURM
  workers and on a local process pool of as many workers, and whether the datasets are the
  same (``assert_same_outputs`` of tests/test_run.py).

Results go to the section "slurm" of benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _results import update_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from slurm_cluster import SlurmCluster  # noqa: E402
from test_run import assert_same_outputs  # noqa: E402

from skymodelling.executors import ProcessExecutor  # noqa: E402
from skymodelling.pipeline import run_pipeline  # noqa: E402


def _noop(x):
    return x


def main():
    import dask

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--raw", type=Path, default=None)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
    cluster = SlurmCluster()
    try:
        t0 = time.perf_counter()
        cluster.start()
        t_cluster = time.perf_counter() - t0
        print(f"cluster idle after {t_cluster:.1f} s ({cluster.cpus} CPUs)")
        raw = args.raw
        if raw is None:
            from skymodelling.simulate.tree import simulate_tree

            raw = work / "raw"
            simulate_tree(raw, n_plates=1, n_exposures=1, seed=1)
        settings = {"jobqueue.slurm.interface": "lo", "jobqueue.slurm.walltime": "00:30:00",
                    "jobqueue.slurm.queue": "debug",
                    "jobqueue.slurm.log-directory": str(work / "logs"),
                    "jobqueue.slurm.local-directory": str(work / "dask"),
                    "jobqueue.slurm.job-script-prologue": [
                        f"export PYTHONPATH={Path(__file__).resolve().parent}:$PYTHONPATH"]}
        from skymodelling.slurm import SlurmExecutor

        with dask.config.set(settings):
            t0 = time.perf_counter()
            ex = SlurmExecutor(jobs=args.jobs, wait_timeout=120)
            ex.client.wait_for_workers(args.jobs, timeout=120)
            ex.client.run(__import__("skymodelling.executors").executors.warm_up)
            t_start = time.perf_counter() - t0
            script = ex._cluster.job_script()
            print(f"{args.jobs} jobs submitted -> {args.jobs} warm workers in {t_start:.1f} s")
            with ex:
                list(ex.map_unordered(_noop, range(50)))      # the function is cached
                t0 = time.perf_counter()
                n = len(list(ex.map_unordered(_noop, range(args.tasks))))
                rate = n / (time.perf_counter() - t0)
                print(f"{rate:.0f} tasks/s ({n} trivial tasks)")
                t0 = time.perf_counter()
                run_pipeline(raw, work / "slurm", executor=ex, show=False)
                t_slurm = time.perf_counter() - t0
            cluster.wait_idle()
        with ProcessExecutor(args.jobs) as pool:
            t0 = time.perf_counter()
            run_pipeline(raw, work / "pool", executor=pool, show=False)
            t_pool = time.perf_counter() - t0
        assert_same_outputs(work / "pool", work / "slurm")
        print(f"pipeline: {t_slurm:.1f} s on slurm, {t_pool:.1f} s on the pool; same dataset")
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)

    update_section("slurm", f"""
`python benchmarks/bench_slurm.py --jobs {args.jobs} --tasks {args.tasks}`: the one-node
SLURM of the tests (slurm-wlm, `proctrack/linuxproc`, `task/none`, `select/cons_tres`) on this
machine, `SlurmExecutor(jobs={args.jobs})` (one single-threaded worker per job, 2 GB).

| what | measured |
|---|---|
| cluster start (daemons until the node is idle in `sinfo`) | {t_cluster:.1f} s |
| job start latency: {args.jobs} jobs submitted until all workers are warm | {t_start:.1f} s |
| trivial tasks through the executor | {rate:.0f} tasks/s |
| pipeline, 1 plate x 1 exposure, on the SLURM workers | {t_slurm:.1f} s |
| the same on a process pool of {args.jobs} | {t_pool:.1f} s |
| datasets | identical (every file; the catalogue apart from its DATE) |

The job script:

```bash
{script.strip()}
```
""")


if __name__ == "__main__":
    main()
