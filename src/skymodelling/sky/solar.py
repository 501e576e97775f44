"""The solar spectrum at 1 AU.

Two tables are bundled. ``solar_spectrum`` (below) is the broad-band one, used for
colours and band integrals (zodiacal light, the model stage). ``solar_spectrum_kurucz`` is
R. L. Kurucz's computed solar flux at a resolving power of 2000, about the BOSS
resolution: the decompose stage fits it as the template of scattered sunlight, because the
Fraunhofer lines at BOSS resolution (Ca II H and K 20-90 % deep, H beta, Mg b, Na D) are
smoothed away in the ~1 nm table.

Broad-band source: the extraterrestrial (ETR) spectrum of the ASTM G173-03 reference spectra
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
KURUCZ_FILE = "solar_kurucz.csv"


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
    return _read_table(SOLAR_FILE)


def _read_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    """WAVE and FLUX columns of a bundled CSV table (7 header lines), read-only."""
    path = files("skymodelling.data").joinpath(name)
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


@functools.cache
def load_kurucz_table() -> tuple[np.ndarray, np.ndarray]:
    """Read the bundled Kurucz solar flux at R = 2000 (cached).

    Source: ``fsunallp.2000resam125`` of http://kurucz.harvard.edu/stars/sun/ (computed
    with all of Kurucz's line lists), 3000-11000 A, sampled every 1/4000 in ln(lambda),
    vacuum wavelengths; extracted by ``tools/make_kurucz_solar.py``.

    Returns
    -------
    wave : numpy.ndarray
        Wavelength in Angstrom (vacuum).
    flux : numpy.ndarray
        Irradiance at 1 AU in erg s^-1 cm^-2 A^-1.
    """
    return _read_table(KURUCZ_FILE)


def solar_spectrum_kurucz(wave) -> np.ndarray:
    """Kurucz's solar irradiance at R = 2000, averaged over the pixels centred on ``wave``.

    Each value is the mean of the (linearly interpolated) table over the pixel whose
    edges are halfway to the neighbouring ``wave`` values, so that on a grid coarser
    than the table's sampling the line depths are those a spectrograph of that sampling
    records, not point samples. Outside 3000-11000 A the nearest tabulated value.

    Parameters
    ----------
    wave : array_like
        Increasing vacuum wavelengths in Angstrom (a pixel grid).

    Returns
    -------
    numpy.ndarray
        Irradiance in erg s^-1 cm^-2 A^-1.

    Examples
    --------
    >>> w = 10 ** (3.55 + 1e-4 * np.arange(800))      # 3548-4265 A, BOSS pixels
    >>> s = solar_spectrum_kurucz(w)
    >>> k = np.argmin(np.abs(w - 3934.8))              # Ca II K (vacuum)
    >>> bool(s[k] < 0.3 * np.median(s))
    True
    """
    tw, tf = load_kurucz_table()
    wave = np.atleast_1d(np.asarray(wave, dtype=float))
    if wave.size < 2:
        return np.interp(wave, tw, tf)
    edges = np.concatenate([[1.5 * wave[0] - 0.5 * wave[1]], 0.5 * (wave[1:] + wave[:-1]),
                            [1.5 * wave[-1] - 0.5 * wave[-2]]])
    # cumulative integral of the piecewise-linear table, evaluated at the edges
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (tf[1:] + tf[:-1]) * np.diff(tw))])
    inside = np.clip(edges, tw[0], tw[-1])
    j = np.clip(np.searchsorted(tw, inside) - 1, 0, tw.size - 2)
    t = (inside - tw[j]) / (tw[j + 1] - tw[j])
    fe = tf[j] + t * (tf[j + 1] - tf[j])
    at = cum[j] + 0.5 * (tf[j] + fe) * (inside - tw[j])
    # beyond the table: its end values
    at = at + np.where(edges < tw[0], (edges - tw[0]) * tf[0], 0.0) + np.where(
        edges > tw[-1], (edges - tw[-1]) * tf[-1], 0.0)
    return np.diff(at) / np.diff(edges)
