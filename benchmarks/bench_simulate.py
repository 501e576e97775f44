"""Time ``simulate`` for 1 plate x 4 exposures (plus its rejected exposure).

Usage: python benchmarks/bench_simulate.py [--plates 1] [--exposures 4]

Prints the wall time with 1 and with 2 worker processes, the size of the
tree, and the time per camera-frame; records them in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from _results import update_section

from skymodelling.simulate.tree import simulate_tree


def _size(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plates", type=int, default=1)
    parser.add_argument("--exposures", type=int, default=4)
    args = parser.parse_args()
    rows = []
    for workers in (1, 2):
        tmp = Path(tempfile.mkdtemp(prefix="bench-sim-"))
        try:
            t0 = time.perf_counter()
            summary = simulate_tree(tmp / "raw", n_plates=args.plates,
                                    n_exposures=args.exposures, seed=1, workers=workers)
            seconds = time.perf_counter() - t0
            size = _size(tmp / "raw")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        frames = summary.n_exposures * 4
        rows.append((workers, seconds, frames, size))
        print(f"workers={workers}: {seconds:.1f} s for {summary.n_exposures} exposures "
              f"({frames} camera-frames, {seconds / frames:.2f} s each), {size:.2f} GB")
    speedup = rows[0][1] / rows[1][1]
    print(f"speed-up with 2 workers: {speedup:.2f}x")
    table = "\n".join(f"| {w} | {s:.1f} | {f} | {s / f:.2f} | {g:.2f} |" for w, s, f, g in rows)
    update_section("simulate", f"""
`python benchmarks/bench_simulate.py --plates {args.plates} --exposures {args.exposures}`:
{args.plates} plate(s) x {args.exposures} coadded exposures plus one rejected exposure per
plate, four cameras each, seed 1, noise on.

| workers | wall time (s) | camera-frames | s per frame | tree size (GB) |
|---|---|---|---|---|
{table}

Speed-up with 2 workers in the same run: {speedup:.2f}x. Target: 1 plate x 4 exposures
"well under a minute".
""")


if __name__ == "__main__":
    main()
