"""Throughput of the lines stage's measurements against one speclite call per spectrum.

Usage: python benchmarks/bench_lines.py [--out OUT]

Uses an existing extract output (``--out``) or simulates one plate x 2 exposures and
extracts it. Times, in one process (one core):

* ours: ``skymodelling.stages.lines.measure_block`` on every camera block of every
  plate file (all features, raw and proper, and all ten magnitudes, vectorised);
* the original's way: per spectrum, the raw line sums and continuum means with
  a nearest-pixel search, and ``speclite.filters.get_ab_magnitudes`` once per
  spectrum for the bands (padding the spectrum as the original did).

Records the figures in benchmarks/RESULTS.md (section "lines").
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import astropy.units as u
import numpy as np
import speclite.filters
from _results import update_section
from astropy.io import fits

from skymodelling.spectral.features import load_features
from skymodelling.stages.lines import measure_block


def _blocks(out: Path):
    for path in sorted((out / "extract").glob("*/sky-*.fits")):
        with fits.open(path) as hdul:
            for cam in ("B1", "B2", "R1", "R2"):
                if f"{cam}_WAVE" in hdul:
                    yield cam[0].lower(), *(np.asarray(hdul[f"{cam}_{k}"].data, dtype=float)
                                            for k in ("WAVE", "FLUX", "IVAR"))


def _ours(blocks, features):
    n = 0
    t0 = time.perf_counter()
    for arm, wave, flux, ivar in blocks:
        measure_block(wave, flux, ivar, arm, features, area_arcsec2=np.pi, min_coverage=0.99)
        n += wave.shape[0]
    return n, time.perf_counter() - t0


def _original(blocks, features, limit):
    sdss = speclite.filters.load_filters("sdss2010-*")
    bessell = speclite.filters.load_filters("bessell-*")
    n = 0
    t0 = time.perf_counter()
    for arm, wave, flux, _ivar in blocks:
        feats = [(float(r["WAVE"]), str(r["KIND"])) for r in features if r["CAMERA"] == arm]
        for i in range(wave.shape[0]):
            if n >= limit:
                return n, time.perf_counter() - t0
            w, f = wave[i], flux[i]
            for w0, kind in feats:
                k = int(np.argmin(np.abs(w - w0)))
                if kind == "line":
                    f[max(k - 5, 0):k + 6].sum()
                else:
                    f[max(k - 1, 0):k + 2].mean()
            fl = f * 1e-17 / np.pi * u.erg / u.s / u.cm**2 / u.Angstrom
            for filters in (sdss, bessell):
                padded, pw = filters.pad_spectrum(fl, w * u.Angstrom, method="zero")
                filters.get_ab_magnitudes(padded, pw)
            n += 1
    return n, time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", help="an OUT folder with extract outputs")
    parser.add_argument("--original-limit", type=int, default=200,
                        help="spectra timed for the original's way (it is slow)")
    args = parser.parse_args()
    tmp = None
    if args.out:
        out = Path(args.out)
    else:
        from skymodelling.simulate.tree import simulate_tree
        from skymodelling.stages.extract import run_extract

        tmp = Path(tempfile.mkdtemp(prefix="bench-lines-"))
        simulate_tree(tmp / "raw", n_plates=1, n_exposures=2, seed=3)
        out = tmp / "out"
        run_extract(tmp / "raw", out, workers=2)
    try:
        features = load_features()
        blocks = list(_blocks(out))
        _ours(blocks[:1], features)  # warm-up: speclite loads its filter files once
        runs = [_ours(blocks, features) for _ in range(3)]
        n_ours = runs[0][0]
        t_ours = statistics.median(t for _, t in runs)
        n_orig, t_orig = _original(blocks, features, args.original_limit)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    ours = n_ours / t_ours
    orig = n_orig / t_orig
    print(f"ours: {n_ours} spectra in {t_ours:.3f} s (median of 3) = {ours:.0f} spectra/s "
          f"on one core (target >= 2000)")
    print(f"original way (per-spectrum sums + one speclite call per spectrum and filter set): "
          f"{n_orig} spectra in {t_orig:.2f} s = {orig:.0f} spectra/s")
    print(f"ratio: {ours / orig:.0f}x")
    update_section("lines", f"""
`python benchmarks/bench_lines.py`: all {len(features)} features (raw and proper measures) and
ten broadband magnitudes of {n_ours} extracted simulated sky spectra, one process.

| method | spectra | seconds | spectra per second |
|---|---|---|---|
| ours (`measure_block`, vectorised per camera block) | {n_ours} | {t_ours:.3f} | {ours:.0f} |
| per spectrum, one speclite call per filter set | {n_orig} | {t_orig:.2f} | {orig:.0f} |

Ours is {ours / orig:.0f}x the per-spectrum way in the same run; target >= 2000 spectra/s per
core: {"met" if ours >= 2000 else "NOT met"}.
""")


if __name__ == "__main__":
    main()
