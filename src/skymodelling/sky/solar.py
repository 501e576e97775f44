"""The solar spectrum at 1 AU.

Source: the extraterrestrial (ETR) spectrum of the ASTM G173-03 reference spectra
(ASTM 2003; Gueymard 2004, Solar Energy 76, 423), itself derived from Wehrli (1985),
bundled as ``skymodelling/data/solar_spectrum.csv`` by ``tools/make_solar_spectrum.py``.
It covers 2900-11100 A, sampled every 5 A (below 4000 A) or 10 A, with a resolution
of about 1 nm: solar absorption lines are smoothed, which is adequate for scattered
sunlight, moonlight and zodiacal light observed at the BOSS resolution only in the
broad-band sense. The ASTM wavelengths are nominal and are treated as vacuum.
"""
from __future__ import annotations

import functools
from importlib.resources import files

import numpy as np

SOLAR_FILE = "solar_spectrum.csv"


@functools.cache
def load_solar_table() -> tuple[np.ndarray, np.ndarray]:
    """Read the bundled solar spectrum (cached).

    Returns
    -------
    wave : numpy.ndarray
        Wavelength in Angstrom (vacuum, nominal).
    flux : numpy.ndarray
        Irradiance at 1 AU in erg s^-1 cm^-2 A^-1.
    """
    path = files("skymodelling.data").joinpath(SOLAR_FILE)
    with path.open("r") as fh:
        data = np.loadtxt(fh, delimiter=",", comments="#", skiprows=7)
    wave, flux = data[:, 0].copy(), data[:, 1].copy()
    wave.setflags(write=False)
    flux.setflags(write=False)
    return wave, flux


def solar_spectrum(wave) -> np.ndarray:
    """Solar irradiance at 1 AU, interpolated linearly onto ``wave``.

    Parameters
    ----------
    wave : array_like
        Vacuum wavelength in Angstrom; values outside 2900-11100 A get the
        nearest tabulated value.

    Returns
    -------
    numpy.ndarray
        Irradiance in erg s^-1 cm^-2 A^-1 (ASTM G173-03 ETR, ~1 nm resolution).

    Examples
    --------
    >>> 150 < float(solar_spectrum(5500.0)) < 210
    True
    """
    tw, tf = load_solar_table()
    return np.interp(np.asarray(wave, dtype=float), tw, tf)
