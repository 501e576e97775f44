"""Observing conditions as model inputs.

A *conditions table* is any table with the enrich columns (docs/enrich.md):
``MOON_ILL``, ``MOON_PHASE``, ``MOON_ALT``, ``MOON_SEP``, ``SUN_ALT``,
``OBS_ZENITH``, ``ECL_LAT``, ``ECL_LON_SUN``, ``GAL_LAT``, ``ZODI``, ``ISL``,
``SOLARFLUX``, ``SOLARFLUX_81``, ``HOUR``, ``MONTH`` and ``PHOTO``, and
optionally ``TAI-MID`` (the exposure midpoint, for the epoch and season).
:func:`conditions_arrays` checks and converts them to float arrays (adding
``AIRMASS`` from ``OBS_ZENITH``, ``EPOCH`` and the season from ``TAI-MID``);
:func:`feature_matrix` stacks the inputs of the gradient-boosted model;
:func:`conditions_at` computes the conditions of a time and pointing with
enrich's own code; :func:`aggregate_exposures`
reduces a per-spectrum catalogue to one row per exposure.
"""
from __future__ import annotations

import numpy as np
from astropy.table import Table

from ..errors import SkyModellingError
from ..sky.moon import ks91_optical_path, moon_brightness_nl
from .columns import CONDITION_NAMES

#: Inputs of the gradient-boosted model, in order: name, unit.
FEATURES = (
    ("MOON_ILL", ""), ("MOON_ALT", "deg"), ("MOON_SEP", "deg"), ("SUN_ALT", "deg"),
    ("AIRMASS", ""), ("ECL_LAT", "deg"), ("ECL_LON_SUN", "deg"), ("GAL_LAT", "deg"),
    ("ZODI", "S10"), ("ISL", "S10"), ("SOLARFLUX", "sfu"), ("SOLARFLUX_81", "sfu"),
    ("HOUR", "h"), ("MONTH", ""), ("PHOTO", ""), ("LOG_KS91", "log10 nL"),
    ("EPOCH", "d"), ("SEASON_SIN", ""), ("SEASON_COS", ""),
)
FEATURE_NAMES = tuple(f[0] for f in FEATURES)

#: Optional condition column: the exposure midpoint, TAI seconds since MJD 0.
TIME_COLUMN = "TAI-MID"
#: Tropical year (days) and the MJD of 2000 January 1.5, the season's zero.
TROPICAL_YEAR = 365.2422
SEASON_ZERO_MJD = 51544.5

#: Columns identifying one exposure in a catalogue.
EXPOSURE_KEYS = ("PLATE", "MJD", "IMG")


def airmass(zenith_deg) -> np.ndarray:
    """Airmass of a zenith distance, KS91 eq. 3 (finite up to the horizon).

    Examples
    --------
    >>> round(float(airmass(60.0)), 3)      # 1 / sqrt(1 - 0.96 * 0.75)
    1.89
    """
    return ks91_optical_path(np.clip(np.asarray(zenith_deg, dtype=float), 0.0, 90.0))


def _float_column(table, name: str) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(table[name], dtype=float), np.nan)


def conditions_arrays(table) -> dict[str, np.ndarray]:
    """The model's condition columns of ``table`` as float arrays.

    Parameters
    ----------
    table : astropy.table.Table or mapping of arrays
        Must hold every name of :data:`CONDITION_NAMES`.

    Returns
    -------
    dict of numpy.ndarray
        Those columns (masked values as NaN), plus ``AIRMASS`` from
        ``OBS_ZENITH``; ``LOG_KS91``, log10 of the Krisciunas & Schaefer
        (1991) moonlight in nanoLamberts (-1 with the Moon below the horizon);
        ``EPOCH``, the TAI MJD of ``TAI-MID``, and ``SEASON_SIN`` and
        ``SEASON_COS``, the sine and cosine of ``2 pi (EPOCH - 51544.5) /
        365.2422`` (NaN, which the boosted model treats as missing, when the
        table has no ``TAI-MID``).

    Raises
    ------
    SkyModellingError
        A column is missing.

    Examples
    --------
    >>> t = {n: [0.0] for n in CONDITION_NAMES}
    >>> t.update(MOON_ALT=[-10.0], SUN_ALT=[-30.0], MONTH=[3], OBS_ZENITH=[0.0])
    >>> c = conditions_arrays(t)
    >>> float(c["AIRMASS"][0]), float(c["LOG_KS91"][0]), bool(np.isnan(c["EPOCH"][0]))
    (1.0, -1.0, True)
    >>> t["TAI-MID"] = [(51544.5 + 365.2422 / 4) * 86400]     # a quarter year later
    >>> round(float(conditions_arrays(t)["SEASON_SIN"][0]), 6)
    1.0
    """
    names = table.colnames if hasattr(table, "colnames") else list(table)
    missing = [n for n in CONDITION_NAMES if n not in names]
    if missing:
        raise SkyModellingError(
            f"the conditions table lacks column(s) {', '.join(missing)}; give a table with "
            "the enrich columns (docs/enrich.md) or compute them with --time/--ra/--dec")
    out = {n: _float_column(table, n) for n in CONDITION_NAMES}
    out["AIRMASS"] = airmass(out["OBS_ZENITH"])
    out["LOG_KS91"] = log_ks91(out)
    n = len(out["AIRMASS"])
    epoch = (_float_column(table, TIME_COLUMN) / 86400.0 if TIME_COLUMN in names
             else np.full(n, np.nan))
    angle = 2 * np.pi * (epoch - SEASON_ZERO_MJD) / TROPICAL_YEAR
    out["EPOCH"], out["SEASON_SIN"], out["SEASON_COS"] = epoch, np.sin(angle), np.cos(angle)
    return out


def log_ks91(cond: dict) -> np.ndarray:
    """log10 of the KS91 scattered moonlight (nL); -1 when the Moon is down."""
    phase_deg = np.degrees(cond["MOON_PHASE"])
    with np.errstate(invalid="ignore"):
        b = moon_brightness_nl(phase_deg, cond["MOON_SEP"], cond["MOON_ALT"],
                               90.0 - cond["OBS_ZENITH"])
        return np.where(b > 0.1, np.log10(np.maximum(b, 0.1)), -1.0)


def feature_matrix(cond: dict) -> np.ndarray:
    """The (n, len(FEATURES)) input matrix of the gradient-boosted model.

    Examples
    --------
    >>> t = {n: [0.0, 1.0] for n in CONDITION_NAMES}
    >>> feature_matrix(conditions_arrays(t)).shape
    (2, 19)
    """
    return np.column_stack([np.asarray(cond[n], dtype=float) for n in FEATURE_NAMES])


def conditions_at(tai_mid, ra, dec, *, exptime: float = 900.0, photometricity=None) -> Table:
    """Conditions of pointings at given times, computed by enrich.

    Parameters
    ----------
    tai_mid : array_like
        Exposure midpoints, TAI seconds since MJD 0 (the frame headers' clock).
    ra, dec : array_like
        Pointing, J2000 degrees (broadcast against ``tai_mid``).
    exptime : float
        Exposure length in seconds (only its midpoint matters).
    photometricity : PhotometricityTable, optional
        Windows for PHOTO; without them PHOTO is 0.5 (unknown).

    Returns
    -------
    astropy.table.Table
        The enrich conditions table (docs/enrich.md), one row per time.

    Examples
    --------
    >>> c = conditions_at(4779.5e6 + 450, 150.0, 20.0)
    >>> round(float(c["MOON_ILL"][0]), 2)
    0.84
    """
    from ..config import EnrichConfig
    from ..stages.enrich import enrich_meta

    tai_mid, ra, dec = np.broadcast_arrays(np.atleast_1d(np.asarray(tai_mid, dtype=float)),
                                           np.asarray(ra, dtype=float),
                                           np.asarray(dec, dtype=float))
    n = tai_mid.size
    meta = Table({"PLATE": np.zeros(n, int), "MJD": np.zeros(n, int),
                  "IMG": np.arange(n), "CAMERA": np.full(n, "b1"), "FIB": np.zeros(n, int),
                  "ROW": np.arange(n), "TAI-BEG": tai_mid - exptime / 2,
                  "TAI-END": tai_mid + exptime / 2, "FIBER_RA": ra, "FIBER_DEC": dec})
    problems: list[str] = []
    cond = enrich_meta(meta, config=EnrichConfig(pointing="fiber"),
                       photometricity=photometricity, problems=problems)
    if problems:
        raise SkyModellingError("cannot compute conditions: " + "; ".join(problems))
    return cond


def _group_nanmedian(values: np.ndarray, inverse: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of the finite ``values`` of each group (NaN for a group with none)."""
    finite = np.isfinite(values)
    order = np.lexsort((np.where(finite, values, np.inf), ~finite, inverse))
    v, g, f = values[order], inverse[order], finite[order]
    start = np.searchsorted(g, np.arange(n_groups))
    count = np.bincount(g, weights=f, minlength=n_groups).astype(int)
    lo = start + np.maximum(count - 1, 0) // 2
    hi = start + count // 2
    lo, hi = np.minimum(lo, len(v) - 1), np.minimum(hi, len(v) - 1)
    with np.errstate(invalid="ignore"):
        med = 0.5 * (v[lo] + v[hi])
    return np.where(count > 0, med, np.nan)


def aggregate_exposures(table: Table, columns) -> Table:
    """One row per exposure: the median over its rows (fibres, cameras) of ``columns``.

    Parameters
    ----------
    table : astropy.table.Table
        Per-spectrum rows with PLATE, MJD and IMG.
    columns : sequence of str
        Numeric columns to reduce (NaN ignored); the condition columns and
        the targets, typically.

    Returns
    -------
    astropy.table.Table
        PLATE, MJD, IMG, ``N_ROWS`` (rows merged) and each column, sorted by
        the keys, units kept.

    Examples
    --------
    >>> t = Table({"PLATE": [1, 1, 1, 2], "MJD": [5, 5, 5, 6], "IMG": [7, 7, 7, 8],
    ...            "Y": [1.0, 3.0, np.nan, 4.0]})
    >>> aggregate_exposures(t, ["Y"])["Y"].tolist()
    [2.0, 4.0]
    """
    missing = [c for c in (*EXPOSURE_KEYS, *columns) if c not in table.colnames]
    if missing:
        raise SkyModellingError(f"the catalogue lacks column(s) {', '.join(missing)}")
    keys = np.rec.fromarrays([np.asarray(table[k]).astype(np.int64) for k in EXPOSURE_KEYS],
                             names=list(EXPOSURE_KEYS))
    uniq, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.ravel()
    out = Table({k: uniq[k] for k in EXPOSURE_KEYS})
    out["N_ROWS"] = np.bincount(inverse, minlength=len(uniq))
    for name in columns:
        out[name] = _group_nanmedian(_float_column(table, name), inverse, len(uniq))
        if getattr(table[name], "unit", None) is not None:
            out[name].unit = table[name].unit
    return out
