"""The ground truth written beside a simulated tree, in ``RAW/truth/``.

Layout (documented in ``docs/truth.md``)::

    RAW/truth/exposures.fits                          one row per simulated exposure
    RAW/truth/<plate4>/truth-<plate4>-<expid8>-<cam>.fits   per camera: the sky fibres
    RAW/truth/<plate4>/sky-<plate4>-<expid8>.fits     per exposure: lines and continua

:func:`read_truth` returns the per-camera table with the exposure's
conditions in ``meta``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..errors import BossFileError

FLUX_UNIT = "1e-17 erg / (s cm2 Angstrom)"


def truth_dir(raw) -> Path:
    """The truth folder of a simulated tree."""
    return Path(raw) / "truth"


def camera_truth_path(raw, plate: int, expid: int, camera: str) -> Path:
    return truth_dir(raw) / f"{plate:04d}" / f"truth-{plate:04d}-{expid:08d}-{camera}.fits"


def sky_truth_path(raw, plate: int, expid: int) -> Path:
    return truth_dir(raw) / f"{plate:04d}" / f"sky-{plate:04d}-{expid:08d}.fits"


def camera_truth_hdus(fiberid, wave, sky, cont, lines, conditions: dict) -> fits.HDUList:
    """HDUs of one camera's truth file (primary header = conditions, HDU1 = SKYFIBERS)."""
    table = Table()
    table["FIBERID"] = np.asarray(fiberid, dtype=np.int32)
    table["WAVE"] = np.asarray(wave, dtype=np.float64)
    table["WAVE"].unit = "Angstrom"
    for name, arr in (("SKY", sky), ("CONT", cont), ("LINES", lines)):
        table[name] = np.asarray(arr, dtype=np.float32)
        table[name].unit = FLUX_UNIT
    hdu = fits.table_to_hdu(table)
    hdu.header["EXTNAME"] = "SKYFIBERS"
    hdu.header["COMMENT"] = "WAVE: vacuum heliocentric wavelength of the fibre's native pixels"
    hdu.header["COMMENT"] = "SKY = CONT + LINES: noiseless calibrated sky entering the fibre"
    return fits.HDUList([fits.PrimaryHDU(header=conditions_header(conditions)), hdu])


def conditions_header(conditions: dict) -> fits.Header:
    """A FITS header from a conditions dict (keys up to 8 characters)."""
    header = fits.Header()
    for key, value in conditions.items():
        if isinstance(value, (np.floating, float)):
            value = float(value)
            if not np.isfinite(value):
                continue  # FITS headers cannot hold NaN: absent means unknown
        elif isinstance(value, (np.integer, int, np.bool_, bool)):
            value = value.item() if hasattr(value, "item") else value
        header[key[:8]] = value
    return header


def read_truth(raw, plate: int, expid: int, camera: str) -> Table:
    """Read the truth of one camera of one simulated exposure.

    Parameters
    ----------
    raw : path-like
        Root of a tree written by ``skymodelling simulate``.
    plate, expid : int
    camera : str
        'b1', 'b2', 'r1' or 'r2'.

    Returns
    -------
    astropy.table.Table
        One row per sky fibre: FIBERID, WAVE (vacuum heliocentric A, the fibre's
        pixel grid), SKY, CONT, LINES (noiseless calibrated sky and its continuum
        and line parts, 1e-17 erg/s/cm2/A per fibre); ``meta`` holds the
        exposure's condition parameters.
    """
    path = camera_truth_path(raw, plate, expid, camera)
    if not path.exists():
        raise BossFileError(path, "no truth file for this plate, exposure and camera")
    with fits.open(path) as hdul:
        table = Table.read(hdul["SKYFIBERS"])
        meta = {k: v for k, v in hdul[0].header.items() if k not in ("SIMPLE", "BITPIX",
                                                                      "NAXIS", "EXTEND")}
    table.meta = meta
    return table


def read_exposures(raw) -> Table:
    """The table of all simulated exposures (``truth/exposures.fits``)."""
    path = truth_dir(raw) / "exposures.fits"
    if not path.exists():
        raise BossFileError(path, "not a simulated tree (no truth/exposures.fits)")
    return Table.read(path, hdu="EXPOSURES")


#: Units of the columns of ``truth/exposures.fits``.
EXPOSURE_UNITS = {
    "TAI_BEG": "s", "TAI_END": "s", "EXPTIME": "s", "SEEING50": "arcsec", "HELIO_RV": "km/s",
    "SOLARFLUX": "1e-22 W / (m2 Hz)", "MOON_ALT": "deg", "MOON_SEP": "deg", "MOON_PHASE": "rad",
    "SUN_ALT": "deg", "ECL_LAT": "deg", "ECL_LON_SUN": "deg", "GAL_LAT": "deg", "GAL_LON": "deg",
    "HOUR": "h", "OBS_ZENITH": "deg", "OI5577": "R",
}


def exposures_hdu(table: Table) -> fits.HDUList:
    """``truth/exposures.fits``: primary header with the run's metadata, HDU1 EXPOSURES."""
    table = Table(table, copy=True)
    for name, unit in EXPOSURE_UNITS.items():
        if name in table.colnames:
            table[name].unit = unit
    primary = fits.PrimaryHDU(header=conditions_header(dict(table.meta)))
    table.meta = {}
    hdu = fits.table_to_hdu(table)
    hdu.header["EXTNAME"] = "EXPOSURES"
    return fits.HDUList([primary, hdu])
