"""Integrated starlight (ISL): brightness against galactic coordinates and spectrum.

The longitude-averaged ISL against galactic latitude is bundled as
``skymodelling/data/isl_vs_galactic_latitude.csv`` (S10 units, visual), with
approximate values after Roach & Gordon (1973, *The Light of the Night Sky*) and
Leinert et al. (1998, A&AS 127, 1, sect. 5), uncertain by ~20%. A longitude
modulation (brighter towards the Galactic centre at low latitude) is added:
``1 + 0.5 cos(l) exp(-|b| / 15 deg)``; this form is an approximation of the
Milky Way's appearance, not a fit to a published map.
"""
from __future__ import annotations

import functools
from importlib.resources import files

import numpy as np

from skymodelling.conditions.zodiacal import s10_to_flux

TABLE_FILE = "isl_vs_galactic_latitude.csv"
#: Colour exponent: ISL is redder than the Sun (B-V ~ 0.85 against 0.65; Mattila
#: 1980, A&AS 39, 53); modelled as solar x (lambda / 5500 A)^0.8.
ISL_COLOUR_EXPONENT = 0.8


@functools.cache
def load_isl_table() -> tuple[np.ndarray, np.ndarray]:
    """Read the bundled ISL table: |b| (deg) and ISL (S10)."""
    path = files("skymodelling.data").joinpath(TABLE_FILE)
    with path.open("r") as fh:
        data = np.loadtxt(fh, delimiter=",", comments="#", skiprows=8)
    return data[:, 0].copy(), data[:, 1].copy()


def isl_s10(gal_lon, gal_lat) -> np.ndarray:
    """Integrated starlight in S10 units at galactic (l, b) in degrees.

    Parameters
    ----------
    gal_lon, gal_lat : array_like
        Galactic longitude and latitude in degrees (broadcast together).

    Returns
    -------
    numpy.ndarray
        ISL in S10 units (visual).

    Examples
    --------
    >>> 20 < float(isl_s10(0.0, 90.0)) < 30
    True
    """
    b_t, s_t = load_isl_table()
    lon = np.radians(np.asarray(gal_lon, dtype=float))
    absb = np.abs(np.asarray(gal_lat, dtype=float))
    base = np.interp(absb, b_t, s_t)
    return base * (1.0 + 0.5 * np.cos(lon) * np.exp(-absb / 15.0))


def isl_spectrum(s10, wave) -> np.ndarray:
    """ISL spectrum in erg s^-1 cm^-2 A^-1 arcsec^-2 for a brightness in S10.

    A solar spectrum scaled to ``s10`` in V and reddened by
    ``(lambda / 5500 A)^0.8`` renormalised so that the V-band brightness is kept
    to within a few per cent.
    """
    wave = np.asarray(wave, dtype=float)
    return s10_to_flux(s10, wave) * (wave / 5500.0) ** ISL_COLOUR_EXPONENT
