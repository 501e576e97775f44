"""Time :func:`enrich_meta` on a DR12-sized META: about 2.56 million sky spectra.

Usage: python benchmarks/bench_enrich.py [--platelist FILE] [--clouds FILE]

With the DR12 plate list (default ``../shared/reference/platelist.fits`` when
present), every plate with exposures gets NEXP_B1 exposures of 900 s spread
evenly over TAI_BEG..TAI_END and 2 x N_SKY fibres (both blue cameras) placed
uniformly within 1.49 deg of (RACEN, DECCEN); without it, 13,500 synthetic
exposures of 190 fibres over 2009-2014 nights. The photometricity table
(``../shared/reference/apo_photometricity.fits`` when present) sets PHOTO.
Times the pure computation (what the stage does after reading) and records
rows/s in benchmarks/RESULTS.md (section "enrich"); the target is under 120 s.
"""
from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

import numpy as np
from _results import update_section
from astropy.table import Table

from skymodelling.conditions.clouds import read_photometricity
from skymodelling.stages.enrich import enrich_meta

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
TARGET_SECONDS = 120.0
EXPOSURE_S = 900.0
PLATE_RADIUS_DEG = 1.49


def _fibres(rng, ra0, dec0, n):
    """``n`` directions uniform within PLATE_RADIUS_DEG of (ra0, dec0)."""
    rho = np.radians(PLATE_RADIUS_DEG) * np.sqrt(rng.uniform(0, 1, n))
    phi = rng.uniform(0, 2 * np.pi, n)
    d0, a0 = np.radians(dec0), np.radians(ra0)
    dec = np.arcsin(np.sin(d0) * np.cos(rho) + np.cos(d0) * np.sin(rho) * np.cos(phi))
    ra = a0 + np.arctan2(np.sin(phi) * np.sin(rho) * np.cos(d0),
                         np.cos(rho) - np.sin(d0) * np.sin(dec))
    return np.degrees(ra) % 360.0, np.degrees(dec)


def _plates_from_platelist(path):
    pl = Table.read(path)
    keep = (pl["NEXP_B1"] > 0) & (pl["TAI_BEG"] > 0) & (pl["N_SKY"] > 0)
    pl = pl[keep]
    return [(int(p["PLATE"]), int(p["MJD"]), float(p["RACEN"]), float(p["DECCEN"]),
             float(p["TAI_BEG"]), float(p["TAI_END"]), int(p["NEXP_B1"]), 2 * int(p["N_SKY"]))
            for p in pl]


def _plates_synthetic(rng):
    nights = rng.choice(np.arange(55100, 56830), 2700, replace=False)
    plates = []
    for i, night in enumerate(nights):
        beg = (night + 1.0 + rng.uniform(3 / 24, 9 / 24)) * 86400.0
        plates.append((3500 + i, int(night), rng.uniform(0, 360), rng.uniform(-10, 70), beg,
                       beg + 5 * 1000.0, 5, 190))
    return plates


def build_meta(plates, seed=0) -> Table:
    """A META table with one row per (exposure, sky fibre) of ``plates``."""
    rng = np.random.default_rng(seed)
    cols = {k: [] for k in ("PLATE", "MJD", "IMG", "FIB", "FIBER_RA", "FIBER_DEC", "TAI-BEG")}
    img = 100000
    for plate, mjd, ra0, dec0, t0, t1, nexp, nfib in plates:
        ra, dec = _fibres(rng, ra0, dec0, nfib)
        starts = np.linspace(t0, max(t0, t1 - EXPOSURE_S), nexp)
        for start in starts:
            cols["PLATE"].append(np.full(nfib, plate))
            cols["MJD"].append(np.full(nfib, mjd))
            cols["IMG"].append(np.full(nfib, img))
            cols["FIB"].append(np.arange(1, nfib + 1))
            cols["FIBER_RA"].append(ra)
            cols["FIBER_DEC"].append(dec)
            cols["TAI-BEG"].append(np.full(nfib, start))
            img += 1
    meta = Table({k: np.concatenate(v) for k, v in cols.items()})
    meta["CAMERA"] = np.where(meta["FIB"] <= meta["FIB"].max() // 2, "b1", "b2")
    meta["ROW"] = np.arange(len(meta), dtype=np.int32)
    meta["TAI-END"] = meta["TAI-BEG"] + EXPOSURE_S
    return meta


def main() -> None:
    parser = argparse.ArgumentParser()
    default_pl = REFERENCE / "platelist.fits"
    default_cl = REFERENCE / "apo_photometricity.fits"
    parser.add_argument("--platelist", default=default_pl if default_pl.is_file() else None)
    parser.add_argument("--clouds", default=default_cl if default_cl.is_file() else None)
    args = parser.parse_args()
    if args.platelist:
        plates, source = _plates_from_platelist(args.platelist), "DR12 platelist.fits"
    else:
        plates, source = _plates_synthetic(np.random.default_rng(1)), "synthetic plates"
    meta = build_meta(plates)
    phot = read_photometricity(args.clouds) if args.clouds else None
    n_exp = len(np.unique(meta["IMG"]))
    print(f"{len(meta)} rows in {n_exp} exposures of {len(plates)} plate-MJDs ({source})")
    enrich_meta(meta[:2000], photometricity=phot)   # warm up imports and caches
    t0 = time.perf_counter()
    cond = enrich_meta(meta, photometricity=phot)
    seconds = time.perf_counter() - t0
    rate = len(meta) / seconds
    photo = {v: int(np.sum(cond["PHOTO"] == v)) for v in (0.0, 0.5, 1.0)}
    print(f"enrich_meta: {seconds:.1f} s, {rate:,.0f} rows/s (target < {TARGET_SECONDS:.0f} s); "
          f"PHOTO 1/0/0.5: {photo[1.0]}/{photo[0.0]}/{photo[0.5]}")
    busy = ["pgrep", "-f", r"python[0-9.]* .*bench_extract\.py"]
    while subprocess.run(busy, capture_output=True).returncode == 0:
        time.sleep(10)   # do not write RESULTS.md while the extract benchmark does
    update_section("enrich", f"""
`python benchmarks/bench_enrich.py`: `enrich_meta` (the stage's computation after reading)
on {len(meta):,} rows laid out like DR12 ({source}: {n_exp:,} exposures of
{len(plates):,} plate-MJDs, NEXP_B1 exposures of 900 s spread over TAI_BEG..TAI_END,
2 x N_SKY fibres within {PLATE_RADIUS_DEG} deg of the plate centre), photometricity
table {'apo_photometricity.fits' if phot else 'none'}, one process.

| rows | seconds | rows/s | target |
|---|---|---|---|
| {len(meta):,} | {seconds:.1f} | {rate:,.0f} | < {TARGET_SECONDS:.0f} s |

PHOTO 1 / 0 / 0.5: {photo[1.0]:,} / {photo[0.0]:,} / {photo[0.5]:,} rows.
""")


if __name__ == "__main__":
    main()
