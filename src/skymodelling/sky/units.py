"""Unit conversions for sky surface brightness, line intensities and wavelengths.

Conventions used throughout :mod:`skymodelling.sky`:

* wavelengths are vacuum wavelengths in Angstrom;
* continuum surface brightness is in erg s^-1 cm^-2 A^-1 arcsec^-2;
* line surface brightness (integrated over the line) is in erg s^-1 cm^-2 arcsec^-2;
* the rayleigh is 1 R = 1e6 / (4 pi) photons s^-1 cm^-2 sr^-1 (Hunten, Roach &
  Chamberlain 1956, J. Atmos. Terr. Phys. 8, 345).
"""
from __future__ import annotations

import functools

import numpy as np

#: Planck constant times speed of light, erg Angstrom.
HC_ERG_ANGSTROM = 6.62607015e-27 * 2.99792458e18
#: Speed of light in Angstrom per second.
C_ANGSTROM_PER_S = 2.99792458e18
#: Square arcseconds per steradian, (180 * 3600 / pi)^2.
ARCSEC2_PER_SR = (180.0 * 3600.0 / np.pi) ** 2
#: Photons s^-1 cm^-2 sr^-1 in one rayleigh.
PHOTONS_PER_RAYLEIGH = 1.0e6 / (4.0 * np.pi)
#: V_AB - V_Vega for the Johnson V band (Blanton & Roweis 2007, AJ 133, 734, Table 1).
V_AB_MINUS_VEGA = -0.02


def _sigma2(wave):
    return (1.0e4 / np.asarray(wave, dtype=float)) ** 2


def _refractive_factor(sigma2):
    # Ciddor (1996, Appl. Opt. 35, 1566) dispersion of standard air, as used by
    # Morton (2000, ApJS 130, 403) and by the SDSS IDL ``airtovac`` (idlutils).
    return 1.0 + 5.792105e-2 / (238.0185 - sigma2) + 1.67917e-3 / (57.362 - sigma2)


def air_to_vacuum(wave_air):
    """Convert air wavelengths to vacuum wavelengths.

    Uses the Ciddor (1996) refractive index of standard air in the form of
    Morton (2000, ApJS 130, 403, eq. 3) as implemented in the SDSS IDL
    ``airtovac``. The conversion is iterated to use the vacuum wavenumber, as
    the formula requires. Wavelengths below 2000 A are returned unchanged.

    Parameters
    ----------
    wave_air : array_like
        Air wavelengths in Angstrom.

    Returns
    -------
    numpy.ndarray
        Vacuum wavelengths in Angstrom.

    Examples
    --------
    >>> round(float(air_to_vacuum(5577.339)), 2)
    5578.89
    """
    wave_air = np.asarray(wave_air, dtype=float)
    vac = wave_air.copy()
    for _ in range(3):
        vac = wave_air * _refractive_factor(_sigma2(vac))
    return np.where(wave_air >= 2000.0, vac, wave_air)


def vacuum_to_air(wave_vac):
    """Convert vacuum wavelengths to air wavelengths (inverse of :func:`air_to_vacuum`).

    Parameters
    ----------
    wave_vac : array_like
        Vacuum wavelengths in Angstrom.

    Returns
    -------
    numpy.ndarray
        Air wavelengths in Angstrom (unchanged below 2000 A).

    Examples
    --------
    >>> round(float(vacuum_to_air(6302.046)), 2)
    6300.3
    """
    wave_vac = np.asarray(wave_vac, dtype=float)
    air = wave_vac / _refractive_factor(_sigma2(wave_vac))
    return np.where(wave_vac >= 2000.0, air, wave_vac)


def rayleigh_to_line_flux(intensity_r, wave):
    """Convert a line intensity in rayleigh to erg s^-1 cm^-2 arcsec^-2.

    Parameters
    ----------
    intensity_r : array_like
        Line intensity in rayleigh.
    wave : array_like
        Vacuum wavelength of the line in Angstrom.

    Returns
    -------
    numpy.ndarray
        Line surface brightness in erg s^-1 cm^-2 arcsec^-2.

    Examples
    --------
    >>> f"{float(rayleigh_to_line_flux(1.0, 5000.0)):.3e}"
    '7.431e-18'
    """
    photon_energy = HC_ERG_ANGSTROM / np.asarray(wave, dtype=float)
    return np.asarray(intensity_r, dtype=float) * PHOTONS_PER_RAYLEIGH * photon_energy / (
        ARCSEC2_PER_SR
    )


def line_flux_to_rayleigh(flux, wave):
    """Convert a line surface brightness (erg s^-1 cm^-2 arcsec^-2) to rayleigh.

    Inverse of :func:`rayleigh_to_line_flux`.
    """
    return np.asarray(flux, dtype=float) / rayleigh_to_line_flux(1.0, wave)


def rayleigh_per_angstrom_to_flux(intensity, wave):
    """Convert a continuum in R/A to erg s^-1 cm^-2 A^-1 arcsec^-2.

    Parameters
    ----------
    intensity : array_like
        Continuum intensity in rayleigh per Angstrom.
    wave : array_like
        Vacuum wavelength in Angstrom.

    Returns
    -------
    numpy.ndarray
        Surface brightness in erg s^-1 cm^-2 A^-1 arcsec^-2.
    """
    return rayleigh_to_line_flux(intensity, wave)


def flux_to_rayleigh_per_angstrom(flux, wave):
    """Convert erg s^-1 cm^-2 A^-1 arcsec^-2 to rayleigh per Angstrom."""
    return line_flux_to_rayleigh(flux, wave)


@functools.cache
def _filter_response(name: str):
    import speclite.filters

    filt = speclite.filters.load_filter(name)
    return np.asarray(filt.wavelength, dtype=float), np.asarray(filt.response, dtype=float)


def ab_magnitude(wave, flux, filter_name: str, line_wave=None, line_flux=None) -> float:
    """AB magnitude per arcsec^2 of a sky spectrum in a speclite filter.

    The continuum is integrated as a photon-counting detector would
    (weights ``R(lambda) lambda``); lines are added analytically as integrated
    flux times the response at the line.

    Parameters
    ----------
    wave : array_like
        Vacuum wavelength grid in Angstrom covering the filter.
    flux : array_like
        Continuum in erg s^-1 cm^-2 A^-1 arcsec^-2.
    filter_name : str
        A speclite filter name, e.g. ``"sdss2010-r"`` or ``"bessell-V"``.
    line_wave, line_flux : array_like, optional
        Line wavelengths (A) and integrated surface brightness
        (erg s^-1 cm^-2 arcsec^-2).

    Returns
    -------
    float
        AB magnitude per arcsec^2.
    """
    fw, fr = _filter_response(filter_name)
    wave = np.asarray(wave, dtype=float)
    resp = np.interp(wave, fw, fr, left=0.0, right=0.0)
    num = np.trapezoid(np.asarray(flux, dtype=float) * resp * wave, wave)
    if line_wave is not None:
        lw = np.asarray(line_wave, dtype=float)
        num += float(np.sum(np.asarray(line_flux, dtype=float)
                            * np.interp(lw, fw, fr, left=0.0, right=0.0) * lw))
    fine = np.linspace(fw[0], fw[-1], 2000)
    rfine = np.interp(fine, fw, fr)
    f_ab = 3631.0e-23 * C_ANGSTROM_PER_S / fine**2
    den = np.trapezoid(f_ab * rfine * fine, fine)
    return float(-2.5 * np.log10(num / den))


def vega_v_magnitude(wave, flux, line_wave=None, line_flux=None) -> float:
    """Johnson V (Vega) magnitude per arcsec^2, from the AB magnitude in speclite ``bessell-V``.

    Uses V_Vega = V_AB - (V_AB - V_Vega) with V_AB - V_Vega = -0.02
    (Blanton & Roweis 2007, AJ 133, 734).
    """
    return ab_magnitude(wave, flux, "bessell-V", line_wave, line_flux) - V_AB_MINUS_VEGA
