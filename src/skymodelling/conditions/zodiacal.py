"""Zodiacal light: brightness from Leinert et al. (1998) Table 17 and its spectrum.

The bundled table ``skymodelling/data/leinert1998_table17.csv`` gives the zodiacal
light at 500 nm in S10 units (one 10th-magnitude solar-type star per square degree)
against helio-ecliptic longitude ``lambda - lambda_sun`` (0-180 deg) and ecliptic
latitude ``beta`` (0-90 deg), from Leinert et al. (1998, A&AS 127, 1, Table 17).

.. warning::
   The table was transcribed from the author's memory of the published table, not
   from the paper at hand: its structure (grid, blank cells near the Sun, 77 S10 at
   the ecliptic pole, minimum ~180 S10 near 135-150 deg on the ecliptic, Gegenschein)
   is right, but individual cells may be wrong by ~5-10%. Check against the paper
   before using it for anything more precise than a sky simulation.
"""
from __future__ import annotations

import functools
from importlib.resources import files

import numpy as np

from skymodelling.sky.solar import load_solar_table

TABLE_FILE = "leinert1998_table17.csv"
#: V surface brightness of 1 S10: 10 mag per square degree in mag/arcsec^2.
S10_V_MAG_ARCSEC2 = 10.0 + 2.5 * np.log10(3600.0**2)


@functools.cache
def load_leinert_table17() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read Table 17 of Leinert et al. (1998).

    Returns
    -------
    delta_lon : numpy.ndarray
        Helio-ecliptic longitudes ``lambda - lambda_sun`` (deg), shape (19,).
    beta : numpy.ndarray
        Ecliptic latitudes (deg), shape (11,).
    s10 : numpy.ndarray
        Brightness at 500 nm in S10 units, shape (19, 11), NaN where the table is blank.
    """
    path = files("skymodelling.data").joinpath(TABLE_FILE)
    with path.open("r") as fh:
        rows = [line.strip() for line in fh if line.strip() and not line.startswith("#")]
    beta = np.array([float(x) for x in rows[0].split(",")[1:]])
    lon, vals = [], []
    for row in rows[1:]:
        cells = row.split(",")
        lon.append(float(cells[0]))
        vals.append([float(c) if c else np.nan for c in cells[1:]])
    return np.array(lon), beta, np.array(vals)


@functools.cache
def _filled_table() -> np.ndarray:
    lon, beta, s10 = load_leinert_table17()
    filled = s10.copy()
    ii, jj = np.nonzero(np.isfinite(s10))
    for i, j in zip(*np.nonzero(~np.isfinite(s10)), strict=True):
        k = np.argmin((ii - i) ** 2 + (jj - j) ** 2 + 1e-3 * jj)
        filled[i, j] = s10[ii[k], jj[k]]
    return filled


def zodi_s10(delta_lon_deg, ecl_lat_deg, fill: str = "nan") -> np.ndarray:
    """Zodiacal light at 500 nm in S10 units, interpolated in Leinert et al. (1998) Table 17.

    Bilinear interpolation in (``|delta_lon|`` folded to 0-180 deg, ``|beta|``).

    Parameters
    ----------
    delta_lon_deg : array_like
        Ecliptic longitude of the target minus that of the Sun, degrees (any range).
    ecl_lat_deg : array_like
        Ecliptic latitude of the target, degrees.
    fill : {'nan', 'nearest'}
        What to return where an interpolation cell touches a blank cell of the table
        (within ~15-20 deg of the Sun): NaN, or the value from the nearest tabulated
        cell (a lower limit there).

    Returns
    -------
    numpy.ndarray
        Brightness in S10 units.

    Examples
    --------
    >>> float(zodi_s10(90.0, 90.0))
    77.0
    """
    lon_t, beta_t, table = load_leinert_table17()
    if fill == "nearest":
        table = _filled_table()
    elif fill != "nan":
        raise ValueError(f"fill must be 'nan' or 'nearest', not {fill!r}")
    dl = np.abs((np.asarray(delta_lon_deg, dtype=float) + 180.0) % 360.0 - 180.0)
    b = np.clip(np.abs(np.asarray(ecl_lat_deg, dtype=float)), 0.0, 90.0)
    dl, b = np.broadcast_arrays(dl, b)
    i = np.clip(np.searchsorted(lon_t, dl, side="right") - 1, 0, lon_t.size - 2)
    j = np.clip(np.searchsorted(beta_t, b, side="right") - 1, 0, beta_t.size - 2)
    tx = (dl - lon_t[i]) / (lon_t[i + 1] - lon_t[i])
    ty = (b - beta_t[j]) / (beta_t[j + 1] - beta_t[j])
    out = ((1 - tx) * (1 - ty) * table[i, j] + tx * (1 - ty) * table[i + 1, j]
           + (1 - tx) * ty * table[i, j + 1] + tx * ty * table[i + 1, j + 1])
    return out


@functools.cache
def _s10_solar_scale() -> float:
    # Factor turning the solar irradiance (erg/s/cm^2/A) into 1 S10 per arcsec^2.
    from skymodelling.sky.units import vega_v_magnitude

    w, f = load_solar_table()
    v_sun = vega_v_magnitude(w, f)
    return float(10.0 ** (-0.4 * (S10_V_MAG_ARCSEC2 - v_sun)))


def zodiacal_colour(wave) -> np.ndarray:
    """Reddening of the zodiacal light relative to the Sun, normalised at 500 nm.

    Leinert et al. (1998, sect. 8.1) give the colour correction at 90 deg elongation
    as ``f_co = 1 + 0.9 log10(lambda / 500 nm)`` for 200-500 nm and
    ``1 + 0.6 log10(lambda / 500 nm)`` for 500 nm-2.5 micron (as recalled by the
    author; a mild reddening of ~+5% per 100 nm in the red). The ratio is
    evaluated here at all elongations.
    """
    x = np.log10(np.asarray(wave, dtype=float) / 5000.0)
    return np.where(x < 0.0, 1.0 + 0.9 * x, 1.0 + 0.6 * x)


def s10_to_flux(s10, wave, redden: bool = False) -> np.ndarray:
    """Convert S10 units to a solar-type spectrum in erg s^-1 cm^-2 A^-1 arcsec^-2.

    One S10 is one V = 10 (Vega) solar-type star per square degree; the ASTM G173
    solar spectrum (:mod:`skymodelling.sky.solar`) is scaled to that V magnitude
    (27.78 mag/arcsec^2) in the speclite ``bessell-V`` band.

    Parameters
    ----------
    s10 : float or array_like
        Brightness in S10 units (scalar, or broadcastable against ``wave``).
    wave : array_like
        Vacuum wavelength in Angstrom.
    redden : bool
        Apply :func:`zodiacal_colour` (for zodiacal light).

    Returns
    -------
    numpy.ndarray
        Surface brightness in erg s^-1 cm^-2 A^-1 arcsec^-2.

    Examples
    --------
    >>> f = float(s10_to_flux(1.0, 5500.0))
    >>> 2.0e-20 < f < 3.5e-20
    True
    """
    wave = np.asarray(wave, dtype=float)
    tw, tf = load_solar_table()
    spec = np.interp(wave, tw, tf) * _s10_solar_scale()
    if redden:
        spec = spec * zodiacal_colour(wave)
    return np.asarray(s10, dtype=float) * spec
