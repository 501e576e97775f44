"""Time :func:`night_conditions` on a BOSS-sized input and show where the time goes.

2.56 million rows in 13,500 exposures (about 190 rows each) spread over ~2,000
nights of 2009-2015, random pointings. Run: ``python benchmarks/bench_ephemeris.py``.
"""

from __future__ import annotations

import cProfile
import pstats
import time

import numpy as np

from skymodelling.conditions.ephemeris import night_conditions

N_ROWS = 2_560_000
N_EXPOSURES = 13_500
N_NIGHTS = 2_000


def make_input(seed: int = 0):
    """Random pointings and mid-exposure TAI seconds (exposures at night at APO)."""
    rng = np.random.default_rng(seed)
    nights = rng.choice(np.arange(54832, 57388), N_NIGHTS, replace=False)
    # local 20:00 to 05:00 MST is 03:00 to 12:00 UTC of the next MJD
    mjd = rng.choice(nights, N_EXPOSURES) + 1.0 + rng.uniform(3 / 24, 12 / 24, N_EXPOSURES)
    exposure = rng.integers(0, N_EXPOSURES, N_ROWS)
    ra = rng.uniform(0.0, 360.0, N_EXPOSURES)[exposure] + rng.uniform(-1.5, 1.5, N_ROWS)
    dec = rng.uniform(-10.0, 70.0, N_EXPOSURES)[exposure] + rng.uniform(-1.5, 1.5, N_ROWS)
    return ra % 360.0, dec, mjd[exposure] * 86400.0


def main() -> None:
    ra, dec, tai = make_input()
    night_conditions(ra[:1000], dec[:1000], tai[:1000])  # warm up imports and caches
    start = time.perf_counter()
    table = night_conditions(ra, dec, tai)
    elapsed = time.perf_counter() - start
    print(
        f"night_conditions: {len(table):,} rows, {np.unique(tai).size:,} unique times, "
        f"{elapsed:.1f} s wall"
    )
    profile = cProfile.Profile()
    profile.enable()
    night_conditions(ra, dec, tai)
    profile.disable()
    pstats.Stats(profile).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
