"""Synthetic conditions and sky values with a known answer, for tests and examples.

:func:`synthetic_conditions` draws plausible enrich columns for ``n``
exposures (independent draws, not a real sky); :func:`synthetic_sky` gives a
460-480 nm-like continuum from them (dark sky rising with airmass and solar
flux, plus KS91 moonlight, plus twilight) with log-normal scatter.
"""
from __future__ import annotations

import numpy as np
from astropy.table import Table

from .features import CONDITION_NAMES

#: Parameters of :func:`synthetic_sky` (order physical.PARAMS).
TRUE_PARAMS = np.array([1.0, 0.25, 0.2, 0.05, -0.15, 0.05, 0.03, 0.0, 0.05, -2.0, -2.5,
                        -6.0, -6.0, np.log(0.2), 0.0, 0.2, 0.5, 0.7])


def synthetic_conditions(n: int, *, seed: int = 0, moon_fraction: float = 0.3) -> Table:
    """Random but plausible conditions for ``n`` exposures (enrich columns).

    Examples
    --------
    >>> t = synthetic_conditions(5, seed=1)
    >>> len(t), "MOON_SEP" in t.colnames
    (5, True)
    """
    rng = np.random.default_rng(seed)
    moon_up = rng.random(n) < moon_fraction
    ill = rng.uniform(0.0, 0.95, n)
    f81 = rng.uniform(75, 155, n)
    t = Table({
        "PLATE": rng.integers(3500, 3500 + max(n // 4, 2), n), "MJD": rng.integers(55200, 56800, n),
        "IMG": np.arange(n),
        "MOON_ILL": ill, "MOON_PHASE": np.arccos(2 * ill - 1),
        "MOON_ALT": np.where(moon_up, rng.uniform(1, 70, n), rng.uniform(-80, -1, n)),
        "MOON_SEP": rng.uniform(20, 170, n),
        "SUN_ALT": np.where(rng.random(n) < 0.05, rng.uniform(-18, -13, n),
                            rng.uniform(-75, -18, n)),
        "OBS_ZENITH": rng.uniform(2, 50, n), "ECL_LAT": rng.uniform(-20, 75, n),
        "ECL_LON_SUN": rng.uniform(-180, 180, n), "GAL_LAT": rng.uniform(-70, 88, n),
        "ZODI": rng.uniform(75, 300, n), "ISL": rng.uniform(25, 120, n),
        "SOLARFLUX": f81 * rng.normal(1.0, 0.1, n), "SOLARFLUX_81": f81,
        "HOUR": rng.uniform(1.2, 12.5, n), "MONTH": rng.integers(1, 13, n),
        "PHOTO": rng.choice([0.0, 1.0], n),
    })
    assert all(c in t.colnames for c in CONDITION_NAMES)
    return t


def synthetic_sky(cond: dict, *, seed: int = 0, scatter: float = 0.03,
                  params=None) -> np.ndarray:
    """Sky values from the structured model with ``params`` and log-normal scatter.

    Examples
    --------
    >>> from skymodelling.model.features import conditions_arrays
    >>> y = synthetic_sky(conditions_arrays(synthetic_conditions(3, seed=1)))
    >>> bool((y > 0).all())
    True
    """
    from .physical import predict_mean

    rng = np.random.default_rng(seed)
    p = TRUE_PARAMS if params is None else np.asarray(params, dtype=float)
    mean = predict_mean(cond, p)
    return mean * np.exp(rng.normal(0.0, scatter, mean.size))
