"""The whole pipeline (``skymodelling run``) on 1 and 2 workers and on Dask.

Usage: python benchmarks/bench_run.py [--plates 4] [--exposures 3] [--repeat 2] [--raw RAW]
                                      [--keep DIR]

Simulates a tree of ``--plates`` plates x ``--exposures`` exposures (or uses ``--raw``), then,
in this one run and on the same tree, times :func:`skymodelling.pipeline.run_pipeline`
(extract, enrich, lines, mean, decompose, merge; every output made afresh) on

* a local process pool of 1 worker,
* a local process pool of 2 workers (the same engine: the speedup is the ratio of the two),
* a Dask ``LocalCluster`` of 2 single-threaded worker processes,

each ``--repeat`` times in the order ABC CBA (the fastest run of each counts), and reports
the speedup (target >= 1.7), the Dask time relative to the 2-worker pool (target
within 15 %) and the peak resident memory of each worker process. The executors are started
before the clock starts (a pool or a cluster is started once per run of many plates) and
have imported the stages and loaded the bundled tables (``skymodelling.executors.warm_up``:
inherited from the parent by the forked pool, run on the Dask workers when they join).
Results go to the section "run" of benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from _results import update_section

from skymodelling.executors import DaskExecutor, ProcessExecutor, warm_up
from skymodelling.pipeline import run_pipeline


def _timed(raw: Path, out: Path, executor) -> dict:
    with executor:
        t0 = time.perf_counter()
        summary = run_pipeline(raw, out, executor=executor, show=False)
        seconds = time.perf_counter() - t0
        peaks = dict(executor.peak_rss_mb)
    if summary.n_failures:
        raise SystemExit(f"{summary.n_failures} problems in the run into {out}: see its run.log")
    return {"seconds": seconds, "summary": summary, "peak_mb": peaks,
            "stages": {s.stage: s.seconds for s in summary.stages} | {"merge":
                                                                       summary.merge_seconds}}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--plates", type=int, default=4)
    parser.add_argument("--exposures", type=int, default=3)
    parser.add_argument("--raw", help="an existing BOSS tree (default: simulate one)")
    parser.add_argument("--keep", help="keep the tree and outputs in this folder")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs of each engine, in the order ABC CBA ... (default 2)")
    args = parser.parse_args()
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-run-"))
    try:
        raw = Path(args.raw) if args.raw else tmp / "raw"
        if not args.raw and not (raw / "platelist.fits").is_file():
            from skymodelling.simulate.tree import simulate_tree

            t0 = time.perf_counter()
            simulate_tree(raw, n_plates=args.plates, n_exposures=args.exposures, seed=11,
                          workers=2)
            print(f"simulated {args.plates} plates x {args.exposures} exposures in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
        warm_up()   # the parent's imports and tables, which a forked pool inherits
        engines = [("process, 1 worker", "process1", lambda: ProcessExecutor(1)),
                   ("process, 2 workers", "process2", lambda: ProcessExecutor(2)),
                   ("dask LocalCluster, 2 workers", "dask2", lambda: DaskExecutor(n_workers=2))]
        # ABC CBA ...: drifts of the machine hit every engine alike; the fastest run counts
        order = [e for k in range(args.repeat) for e in (engines if k % 2 == 0
                                                         else engines[::-1])]
        results = {}
        for name, folder, make in order:
            out = tmp / folder
            shutil.rmtree(out, ignore_errors=True)
            r = _timed(raw, out, make())
            print(f"{name:<30s} {r['seconds']:7.1f} s, peak memory per worker "
                  f"{max(r['peak_mb'].values()):.0f} MB", flush=True)
            r["runs"] = results.get(name, {}).get("runs", []) + [r["seconds"]]
            if name not in results or r["seconds"] < results[name]["seconds"]:
                results[name] = r
            else:
                results[name]["runs"] = r["runs"]
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    one, two, dask = (results[name] for name, _, _ in engines)
    speedup = one["seconds"] / two["seconds"]
    # the per-plate stages alone (merge runs in the main process whatever the engine)
    parallel = ((one["seconds"] - one["stages"]["merge"])
                / (two["seconds"] - two["stages"]["merge"]))
    dask_ratio = dask["seconds"] / two["seconds"]
    summary = one["summary"]
    n_spectra = summary.stages[0].n_spectra
    n_plates = summary.stages[0].n_tasks
    print(f"speedup 2 workers vs 1: {speedup:.2f} (target >= 1.7); dask / process pool: "
          f"{dask_ratio:.2f} (target within 15 %)")

    stages = list(one["stages"])
    rows = "\n".join(
        f"| {name} | {r['seconds']:.1f} | "
        + " | ".join(f"{r['stages'][s]:.1f}" for s in stages)
        + f" | {len(r['peak_mb'])} | {max(r['peak_mb'].values()):.0f} | "
        + ", ".join(f"{t:.1f}" for t in r["runs"]) + " |"
        for name, r in results.items())
    update_section("run", f"""
`python benchmarks/bench_run.py{f' --plates {args.plates}' if args.plates != 4 else ''}`:
`skymodelling run` (extract, enrich, lines, mean, decompose, merge, all outputs made afresh)
on a simulated tree of {n_plates} plates x {args.exposures} exposures ({n_spectra} sky spectra),
the three engines one after the other in one run on the same tree. Executors started and
warmed up (imports, bundled tables) before the clock. Each engine ran {args.repeat} times
(order ABC CBA ...); the table shows its fastest run. Tasks are per plate-MJD; merge runs in
the main process.

| engine | total s | {' | '.join(f'{s} s' for s in stages)} | workers | peak MB | runs, s |
|---|---|{'---|' * len(stages)}---|---|---|
{rows}

Speedup, 2 workers against 1 (process pool): **{speedup:.2f}x** (target >= 1.7); the per-plate
stages alone (all but merge, which runs in the main process): {parallel:.2f}x.
Dask LocalCluster against the process pool, both 2 workers: **{dask_ratio:.2f}** of its time
(target within 15 %, i.e. 0.85-1.15). Peak memory per worker is the largest peak resident
memory of a process that ran tasks; a Dask worker carries ~150 MB of its own on top.
""")


if __name__ == "__main__":
    main()
