"""Time of the mean stage per plate.

Usage: python benchmarks/bench_mean.py [--out OUT]

Uses an existing extract output (``--out``; its ``mean`` folder is not touched: the stage
runs into a temporary copy) or simulates one plate x 3 exposures and extracts it. Times
``skymodelling.stages.mean.mean_plate`` (read, resample, clipped mean, measurements, write)
on every plate file in one process, three times, and records the median in
benchmarks/RESULTS.md (section "mean").
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _results import update_section

from skymodelling.config import Config
from skymodelling.stages.mean import run_mean


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", help="an OUT folder with extract outputs")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-mean-"))
    try:
        if args.out:
            shutil.copytree(Path(args.out) / "extract", tmp / "out" / "extract")
            if (Path(args.out) / "enrich").is_dir():
                shutil.copytree(Path(args.out) / "enrich", tmp / "out" / "enrich")
        else:
            from skymodelling.simulate.tree import simulate_tree
            from skymodelling.stages.extract import run_extract

            simulate_tree(tmp / "raw", n_plates=1, n_exposures=3, seed=1, workers=2)
            run_extract(tmp / "raw", tmp / "out", workers=2)
        out = tmp / "out"
        runs = []
        for _ in range(3):
            shutil.rmtree(out / "mean", ignore_errors=True)
            t0 = time.perf_counter()
            summary = run_mean(out, Config(), workers=1)
            runs.append((time.perf_counter() - t0, summary))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = statistics.median(t for t, _ in runs)
    summary = runs[0][1]
    per_plate = seconds / summary.n_tasks
    per_spec = seconds / max(summary.n_spectra, 1)
    print(f"mean: {summary.n_tasks} plate-MJDs, {summary.n_spectra} mean spectra in "
          f"{seconds:.2f} s (median of 3, one process) = {per_plate:.2f} s per plate, "
          f"{per_spec * 1e3:.0f} ms per mean spectrum")
    update_section("mean", f"""
`python benchmarks/bench_mean.py{' --out ...' if args.out else ''}`: the whole mean stage
(read the extract file, resample every good sky fibre onto the 1e-4 dex grid, clipped mean,
line/continuum/magnitude measurements, write) in one process on
{summary.n_tasks} simulated plate-MJD(s) with {summary.n_spectra} exposure-cameras.

| plate-MJDs | mean spectra | seconds (median of 3) | seconds per plate | ms per mean spectrum |
|---|---|---|---|---|
| {summary.n_tasks} | {summary.n_spectra} | {seconds:.2f} | {per_plate:.2f} | {per_spec * 1e3:.0f} |

At this rate the ~2,600 BOSS plates (about 4 exposures each) take about
{per_plate * 2600 * 4 / 3 / 3600:.1f} core-hours.
""")


if __name__ == "__main__":
    main()
