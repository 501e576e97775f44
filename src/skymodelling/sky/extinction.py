"""Atmospheric extinction at Apache Point Observatory (2788 m).

``k(lambda)`` in mag per airmass is the sum of

* Rayleigh scattering: optical depth of a standard sea-level atmosphere
  ``tau_R = 0.008569 lambda^-4 (1 + 0.0113 lambda^-2 + 0.00013 lambda^-4)``
  (lambda in micron; Hansen & Travis 1974, Space Sci. Rev. 16, 527, eq. 2.30),
  scaled by the APO pressure over 1013.25 hPa (730 hPa for a 8.4 km scale height
  at 2788 m);
* aerosols: ``k_a (lambda / 5500 A)^-1.3`` with ``k_a = 0.04`` mag/airmass
  (Angstrom exponent 1.3: Angstrom 1929; amplitude chosen so that the total at
  the SDSS g, r, i bands is close to the APO values 0.17, 0.10, 0.06 of
  the SDSS photometric calibration, Tucker et al. 2006, AN 327, 821);
* ozone: the Chappuis band, approximated by a Gaussian cross-section of
  4.8e-21 cm^2 at 6020 A with a 700 A dispersion (after the cross-sections of
  Burrows et al. 1999, JQSRT 61, 509), plus the Huggins band wing below 3500 A
  (``1e-19 exp(-(lambda - 3100 A) / 60 A)`` cm^2), for a column of 300 Dobson units.

Molecular absorption bands (O2 A and B, H2O) are not included: they are narrow
and are handled, if needed, by the simulator's telluric model.
"""
from __future__ import annotations

import numpy as np

#: APO surface pressure over the standard sea-level pressure.
APO_PRESSURE_RATIO = float(np.exp(-2788.0 / 8400.0))
AEROSOL_K = 0.04
AEROSOL_ALPHA = 1.3
OZONE_DU = 300.0
_DU_CM2 = 2.687e16
_MAG_PER_TAU = 2.5 * np.log10(np.e)


def rayleigh_tau(wave, pressure_ratio: float = APO_PRESSURE_RATIO) -> np.ndarray:
    """Rayleigh optical depth at the zenith (Hansen & Travis 1974), scaled to pressure."""
    lam = np.asarray(wave, dtype=float) / 1.0e4
    return pressure_ratio * 0.008569 * lam**-4 * (1.0 + 0.0113 * lam**-2 + 0.00013 * lam**-4)


def ozone_cross_section(wave) -> np.ndarray:
    """Approximate ozone absorption cross-section in cm^2 (Chappuis + Huggins wing)."""
    wave = np.asarray(wave, dtype=float)
    chappuis = 4.8e-21 * np.exp(-0.5 * ((wave - 6020.0) / 700.0) ** 2)
    huggins = 1.0e-19 * np.exp(-np.clip(wave - 3100.0, -200.0, None) / 60.0)
    return chappuis + huggins


def extinction_coefficient(wave, aerosol_k: float = AEROSOL_K,
                           aerosol_alpha: float = AEROSOL_ALPHA,
                           ozone_du: float = OZONE_DU) -> np.ndarray:
    """Extinction coefficient k(lambda) in mag per airmass at APO.

    Parameters
    ----------
    wave : array_like
        Vacuum wavelength in Angstrom.
    aerosol_k : float
        Aerosol extinction at 5500 A, mag/airmass.
    aerosol_alpha : float
        Angstrom exponent of the aerosol extinction.
    ozone_du : float
        Ozone column in Dobson units.

    Returns
    -------
    numpy.ndarray
        Extinction in magnitudes per airmass.

    Examples
    --------
    >>> 0.1 < float(extinction_coefficient(5500.0)) < 0.2
    True
    """
    wave = np.asarray(wave, dtype=float)
    tau = rayleigh_tau(wave) + ozone_cross_section(wave) * ozone_du * _DU_CM2
    return _MAG_PER_TAU * tau + aerosol_k * (wave / 5500.0) ** -aerosol_alpha


def transmission(wave, airmass, **kwargs) -> np.ndarray:
    """Atmospheric transmission ``10^(-0.4 k(lambda) X)`` for airmass ``X``.

    Extra keyword arguments go to :func:`extinction_coefficient`.
    """
    return 10.0 ** (-0.4 * extinction_coefficient(wave, **kwargs) * np.asarray(airmass, float))
