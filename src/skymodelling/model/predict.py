"""Conditions for a prediction: from values, from a time and pointing, or from a file.

The thin runners behind ``skymodelling model fit`` and ``skymodelling model
predict`` (docs/model.md).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from astropy.table import Table

from .._atomic import atomic_path
from ..errors import SkyModellingError
from .columns import CONDITION_COLUMNS, CONDITION_NAMES
from .features import TIME_COLUMN, conditions_at

log = logging.getLogger(__name__)

#: Values used for conditions not given on the command line: a typical dark,
#: clear night at moderate airmass (Moon down, 6 h after sunset).
DEFAULT_CONDITIONS = {
    "MOON_ILL": 0.0, "MOON_ALT": -30.0, "MOON_SEP": 90.0, "SUN_ALT": -40.0,
    "OBS_ZENITH": 25.0, "ECL_LAT": 20.0, "ECL_LON_SUN": 180.0, "GAL_LAT": 45.0,
    "ZODI": 140.0, "ISL": 40.0, "SOLARFLUX": 110.0, "SOLARFLUX_81": 110.0, "HOUR": 6.0,
    "MONTH": 3.0, "PHOTO": 1.0,
}
UNITS = {n: u for n, u, _d in CONDITION_COLUMNS if u}


def option_name(column: str) -> str:
    """Command-line option of a condition column: ``MOON_ILL`` -> ``moon_ill``."""
    return column.lower()


def conditions_from_values(values: dict, *, airmass: float | None = None,
                           mjd: float | None = None) -> Table:
    """One row of conditions from given values, defaults for the rest.

    Parameters
    ----------
    values : dict
        Column -> value (None for not given). MOON_PHASE, when not given, is
        ``arccos(2 MOON_ILL - 1)``.
    airmass : float, optional
        Sets OBS_ZENITH by inverting the KS91 airmass ``(1 - 0.96 sin^2 Z)^-1/2``.
    mjd : float, optional
        TAI MJD of the exposure midpoint: sets ``TAI-MID`` (the boosted model's
        epoch and season); without it they are missing values.

    Examples
    --------
    >>> t = conditions_from_values({"MOON_ILL": 1.0}, airmass=1.0)
    >>> float(t["MOON_PHASE"][0]), float(t["OBS_ZENITH"][0])
    (0.0, 0.0)
    """
    given = {k: float(v) for k, v in values.items() if v is not None}
    unknown = [k for k in given if k not in CONDITION_NAMES]
    if unknown:
        raise SkyModellingError(f"unknown condition(s) {', '.join(unknown)}")
    if airmass is not None:
        if not airmass >= 1.0:
            raise SkyModellingError(f"--airmass must be >= 1, not {airmass}")
        s2 = (1.0 - 1.0 / airmass**2) / 0.96
        given["OBS_ZENITH"] = float(np.degrees(np.arcsin(np.sqrt(min(s2, 1.0)))))
    row = {**DEFAULT_CONDITIONS, **given}
    if "MOON_PHASE" not in given:
        row["MOON_PHASE"] = float(np.arccos(np.clip(2 * row["MOON_ILL"] - 1, -1, 1)))
    defaulted = sorted(set(CONDITION_NAMES) - set(given) - {"MOON_PHASE"})
    if defaulted:
        log.info("conditions not given, typical dark values used: %s",
                 ", ".join(f"{k}={row[k]:g}" for k in defaulted))
    table = Table({k: [row[k]] for k in CONDITION_NAMES})
    if mjd is not None:
        table[TIME_COLUMN] = [float(mjd) * 86400.0]
        table[TIME_COLUMN].unit = "s"
    for k, u in UNITS.items():
        if u not in ("S10", "sfu"):
            table[k].unit = u
    return table


def conditions_from_time(iso: str, ra: float, dec: float) -> Table:
    """Conditions (enrich's computation) at a UTC time for a pointing.

    Examples
    --------
    >>> t = conditions_from_time("2010-05-01T05:00:00", 150.0, 20.0)
    >>> bool(t["SUN_ALT"][0] < 0)
    True
    """
    from astropy.time import Time

    from ..conditions.site import SECONDS_PER_DAY

    try:
        time = Time(iso, scale="utc")
    except ValueError:
        raise SkyModellingError(f"--time {iso!r} is not an ISO time like "
                                "2012-03-20T05:30:00 (UTC)") from None
    return conditions_at(time.tai.mjd * SECONDS_PER_DAY, ra, dec)


def write_table(path, table: Table) -> None:
    """Write a prediction table atomically: CSV for ``.csv``, else FITS."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".csv":
            table.write(tmp, format="csv", overwrite=True)
        else:
            from astropy.io import fits

            from .spectrum import _unit_safe_hdu

            fits.HDUList([fits.PrimaryHDU(), _unit_safe_hdu(table, "PREDICTION")]).writeto(
                tmp, overwrite=True)


def format_prediction(model, pred: Table) -> str:
    """Human-readable lines: target, prediction, 68 % interval, unit, kind."""
    lines = []
    for i in range(len(pred)):
        if len(pred) > 1:
            lines.append(f"row {i}:")
        for target in model.targets:
            if target not in pred.colnames:
                continue
            lo, hi = pred[target + "_LO"][i], pred[target + "_HI"][i]
            lines.append(f"  {target:<14s} {pred[target][i]:10.4g}  68% [{lo:.4g}, {hi:.4g}] "
                         f"{model.targets[target].get('unit', '')}"
                         f"  ({pred.meta[f'KIND_{target}']})")
    return "\n".join(lines)
