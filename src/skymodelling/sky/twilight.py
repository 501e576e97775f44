"""Twilight sky brightness for the Sun between -18 deg and the horizon.

Patat et al. (2006, A&A 455, 385) measured the zenith twilight brightness at
Paranal; in V it fades by roughly 1 mag per degree of solar depression around the
end of nautical twilight, flattening as the sky approaches its night level near
-18 deg. We model the *excess* over the night sky at the zenith as

``V_tw(h) = 19.0 + 0.75 (-12 - h)`` mag/arcsec^2 for the solar altitude ``h`` (deg)
(about 15.3 at -7, 19.0 at -12 and 23.5 at -18, where the night sky is 21.7),

multiplied by a linear taper reaching zero at ``h = -18``; for ``h > 0`` the value at
0 deg is used. This is an approximation to the published curves (good to ~0.5 mag);
the azimuth dependence (brighter towards the Sun) and the increase towards the
horizon are neglected, apart from a mild airmass factor ``X^0.5``.

The spectrum is solar times ``(lambda/5500 A)^-2``: bluer than the Sun from Rayleigh
scattering (single scattering gives lambda^-4; multiple scattering and the ozone
Chappuis absorption of the long twilight paths make the real colour intermediate,
Patat et al. 2006, sect. 5).
"""
from __future__ import annotations

import functools

import numpy as np

from .solar import load_solar_table
from .units import vega_v_magnitude

TWILIGHT_COLOUR_EXPONENT = -2.0


def twilight_v_mag(sun_alt_deg, airmass=1.0) -> np.ndarray:
    """Twilight excess V surface brightness (mag/arcsec^2); inf below -18 deg."""
    h = np.minimum(np.asarray(sun_alt_deg, dtype=float), 0.0)
    v = 19.0 + 0.75 * (-12.0 - h) - 1.25 * np.log10(np.asarray(airmass, dtype=float))
    taper = np.clip((h + 18.0) / 3.0, 0.0, 1.0)
    with np.errstate(divide="ignore"):
        return np.where(taper > 0.0, v - 2.5 * np.log10(np.maximum(taper, 1e-30)), np.inf)


@functools.cache
def _basis_v_mag() -> float:
    w, f = load_solar_table()
    return vega_v_magnitude(w, f * (w / 5500.0) ** TWILIGHT_COLOUR_EXPONENT)


def twilight_spectrum(wave, sun_alt_deg: float, airmass: float = 1.0) -> np.ndarray:
    """Twilight sky spectrum in erg s^-1 cm^-2 A^-1 arcsec^-2 (zero below -18 deg).

    Examples
    --------
    >>> float(twilight_spectrum(5500.0, -20.0))
    0.0
    """
    wave = np.asarray(wave, dtype=float)
    v = float(twilight_v_mag(sun_alt_deg, airmass))
    if not np.isfinite(v):
        return np.zeros_like(wave)
    tw, tf = load_solar_table()
    shape = np.interp(wave, tw, tf) * (wave / 5500.0) ** TWILIGHT_COLOUR_EXPONENT
    return shape * 10.0 ** (-0.4 * (v - _basis_v_mag()))
