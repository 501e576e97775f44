"""Scattered moonlight after Krisciunas & Schaefer (1991, PASP 103, 1033; KS91).

V band (KS91 eqs. 15-21):

* lunar illuminance outside the atmosphere (eq. 20), in foot-candles,
  ``I* = 10^(-0.4 (3.84 + 0.026 |alpha| + 4e-9 alpha^4))`` with the phase angle
  ``alpha`` in degrees (0 = full). ``|alpha|`` is floored at 1.5 deg: nearer full,
  the Moon would be in the Earth's shadow (a lunar eclipse), and KS91 note that the
  formula ignores the opposition surge, which is not modelled;
* scattering function (eq. 21), ``rho`` the Moon-target separation in degrees,
  ``f(rho) = 10^5.36 (1.06 + cos^2 rho) + 10^(6.15 - rho/40)``; the first term is
  Rayleigh scattering, the second Mie (aerosol) scattering. KS91 validate it for
  ``rho > 10`` deg; ``rho`` is floored at 2 deg here;
* the optical path ``X(Z) = (1 - 0.96 sin^2 Z)^-1/2`` (eq. 3);
* ``B_moon = f(rho) I* 10^(-0.4 k X(Z_moon)) [1 - 10^(-0.4 k X(Z))]`` in
  nanoLamberts (eq. 15), ``Z_moon`` and ``Z`` the zenith distances of the Moon and
  the target, ``k`` the V extinction coefficient;
* nanoLamberts to V mag/arcsec^2 by inverting eq. 1,
  ``B = 34.08 exp(20.7233 - 0.92104 V)``.

The spectrum is the solar spectrum times the lunar colour ``(lambda/5500)^0.9``
(the Moon's B-V is 0.92 against the Sun's 0.65; Lane & Irvine 1973, AJ 78, 267),
times the KS91 Rayleigh and Mie terms given wavelength dependences
``(lambda/5500)^-4`` and ``(lambda/5500)^-1.3``, normalised so that the V
magnitude equals the KS91 value. KS91 already include the extinction of the
moonlight and of the scattered light, so no further extinction is applied.
"""
from __future__ import annotations

import functools

import numpy as np

from .solar import load_solar_table
from .units import vega_v_magnitude

V_EXTINCTION_DEFAULT = 0.15
LUNAR_COLOUR_EXPONENT = 0.9


def ks91_optical_path(zenith_deg) -> np.ndarray:
    """KS91 eq. 3, ``X(Z) = (1 - 0.96 sin^2 Z)^-1/2``."""
    s = np.sin(np.radians(np.asarray(zenith_deg, dtype=float)))
    return 1.0 / np.sqrt(1.0 - 0.96 * s**2)


def ks91_scattering_terms(rho_deg) -> tuple[np.ndarray, np.ndarray]:
    """Rayleigh and Mie terms of the KS91 scattering function (eq. 21)."""
    rho = np.maximum(np.asarray(rho_deg, dtype=float), 2.0)
    rayleigh = 10.0**5.36 * (1.06 + np.cos(np.radians(rho)) ** 2)
    mie = 10.0 ** (6.15 - rho / 40.0)
    return rayleigh, mie


def moon_brightness_nl(phase_angle_deg, sep_deg, moon_alt_deg, target_alt_deg,
                       k_v: float = V_EXTINCTION_DEFAULT) -> np.ndarray:
    """Scattered-moonlight V surface brightness in nanoLamberts (KS91 eq. 15).

    Parameters
    ----------
    phase_angle_deg : array_like
        Lunar phase angle alpha in degrees (0 full, 180 new).
    sep_deg : array_like
        Moon-target separation rho in degrees.
    moon_alt_deg, target_alt_deg : array_like
        Altitudes of the Moon and of the target in degrees.
    k_v : float
        V-band extinction coefficient, mag/airmass.

    Returns
    -------
    numpy.ndarray
        Brightness in nanoLamberts; 0 when the Moon is below the horizon.

    Examples
    --------
    >>> b = moon_brightness_nl(10.0, 60.0, 50.0, 70.0)
    >>> 100 < float(b) < 1000
    True
    """
    alpha = np.maximum(np.abs(np.asarray(phase_angle_deg, dtype=float)), 1.5)
    istar = 10.0 ** (-0.4 * (3.84 + 0.026 * alpha + 4.0e-9 * alpha**4))
    rayleigh, mie = ks91_scattering_terms(sep_deg)
    moon_alt = np.asarray(moon_alt_deg, dtype=float)
    x_moon = ks91_optical_path(90.0 - np.clip(moon_alt, 0.0, 90.0))
    x_target = ks91_optical_path(90.0 - np.clip(target_alt_deg, 0.0, 90.0))
    b = (rayleigh + mie) * istar * 10.0 ** (-0.4 * k_v * x_moon) * (
        1.0 - 10.0 ** (-0.4 * k_v * x_target))
    return np.where(moon_alt > 0.0, b, 0.0)


def nanolambert_to_vmag(b_nl) -> np.ndarray:
    """Convert nanoLamberts to V mag/arcsec^2 (inverse of KS91 eq. 1); inf for 0."""
    b = np.asarray(b_nl, dtype=float)
    with np.errstate(divide="ignore"):
        return (20.7233 - np.log(b / 34.08)) / 0.92104


@functools.cache
def _basis_v_mags() -> tuple[float, float]:
    w, f = load_solar_table()
    base = f * (w / 5500.0) ** LUNAR_COLOUR_EXPONENT
    return (vega_v_magnitude(w, base * (w / 5500.0) ** -4.0),
            vega_v_magnitude(w, base * (w / 5500.0) ** -1.3))


def moon_spectrum(wave, phase_angle_deg: float, sep_deg: float, moon_alt_deg: float,
                  target_alt_deg: float, k_v: float = V_EXTINCTION_DEFAULT) -> np.ndarray:
    """Scattered-moonlight spectrum in erg s^-1 cm^-2 A^-1 arcsec^-2.

    Parameters
    ----------
    wave : array_like
        Vacuum wavelength in Angstrom.
    phase_angle_deg, sep_deg, moon_alt_deg, target_alt_deg, k_v : float
        As in :func:`moon_brightness_nl`.

    Returns
    -------
    numpy.ndarray
        Surface brightness whose Johnson V magnitude is the KS91 value; zero when
        the Moon is below the horizon.
    """
    wave = np.asarray(wave, dtype=float)
    if moon_alt_deg <= 0.0:
        return np.zeros_like(wave)
    b_nl = float(moon_brightness_nl(phase_angle_deg, sep_deg, moon_alt_deg, target_alt_deg, k_v))
    v_total = float(nanolambert_to_vmag(b_nl))
    rayleigh, mie = ks91_scattering_terms(sep_deg)
    frac_r = float(rayleigh / (rayleigh + mie))
    v_r, v_m = _basis_v_mags()
    # Each basis shape scaled to contribute its fraction of the V-band flux.
    scale_r = frac_r * 10.0 ** (-0.4 * (v_total - v_r))
    scale_m = (1.0 - frac_r) * 10.0 ** (-0.4 * (v_total - v_m))
    tw, tf = load_solar_table()
    base = np.interp(wave, tw, tf) * (wave / 5500.0) ** LUNAR_COLOUR_EXPONENT
    return base * (scale_r * (wave / 5500.0) ** -4.0 + scale_m * (wave / 5500.0) ** -1.3)
