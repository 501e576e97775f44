"""Telluric absorption: O2 A and B bands from molecular lines, H2O from a random band model.

:func:`telluric_transmission` gives the transmission of the atmosphere above APO
at a given airmass on a fine (0.02 A) grid or averaged over the bins of a coarser
grid. It multiplies the continuum (extinction of :mod:`.extinction` is separate).

O2 A (b-X 0-0, ~7600 A) and B (1-0, ~6880 A) bands
    Line positions and relative strengths from :mod:`.o2_bands` (lower-level
    Boltzmann factors at 250 K). Band strengths (sum of the line intensities)
    ``S_A = 2.25e-22`` and ``S_B = 1.45e-23`` cm/molecule, of the order of the
    HITRAN band sums (Rothman et al. 2013, JQSRT 130, 4; values rounded by the
    author). Voigt profiles: Doppler at 250 K and Lorentz half width
    ``0.045 cm^-1 atm^-1`` at an effective pressure of half the APO surface
    pressure (0.36 atm). O2 column above APO: ``0.2095 P / (m g)`` = 3.24e24
    cm^-2 for P = 730 hPa.
H2O bands (0.65, 0.72, 0.82, 0.94 um)
    NOT real water lines: a Goody (1952) random band model. Each band has ``400``
    lines at seeded pseudo-random wavenumbers within a Gaussian envelope (centre,
    width ``H2O_BANDS``), exponentially distributed strengths and Lorentz half
    width 0.06 cm^-1; the strengths are scaled so that the mean zenith
    transmission across the band's central +-1 sigma is ``T_ref`` for
    ``H2O_PWV_MM = 5`` mm of precipitable water, typical of APO (the mean
    transmissions are the author's reading of published APO/KPNO telluric
    spectra, approximate). The optical depth scales with PWV x airmass.

What is attenuated (see docs/simulator.md): every component that crosses the whole
atmosphere (zodiacal light, starlight, moonlight, twilight, the airglow emitted at
~90 km, lines and continuum) by the transmission at the target's airmass. The
artificial light, scattered in the lowest kilometres, too (an upper bound).
"""
from __future__ import annotations

import functools

import numpy as np
from scipy.special import voigt_profile

from .o2_bands import o2_absorption_lines

FINE_STEP = 0.02  # Angstrom
O2_COLUMN = 0.2095 * 73000.0 / (4.81e-26 * 9.80) * 1e-4   # molecules cm^-2
O2_BAND_STRENGTH = {0: 2.25e-22, 1: 1.45e-23}             # cm / molecule
O2_GAMMA = 0.045 * 0.36                                    # cm^-1 HWHM
H2O_PWV_MM = 5.0
H2O_SEED = 1952
H2O_GAMMA = 0.06
#: (centre cm^-1, envelope sigma cm^-1, mean zenith transmission over +-1 sigma at 5 mm)
H2O_BANDS = ((15350.0, 120.0, 0.985), (13830.0, 180.0, 0.90), (12200.0, 170.0, 0.90),
             (10650.0, 260.0, 0.60))
N_H2O_LINES = 400
GRID = (6300.0, 10800.0)


def _doppler_sigma(sigma0, mass_amu, temperature=250.0):
    k, amu, c = 1.380649e-16, 1.66053907e-24, 2.99792458e10
    return sigma0 * np.sqrt(k * temperature / (mass_amu * amu)) / c


def _o2_tau(sig_grid: np.ndarray) -> np.ndarray:
    tau = np.zeros_like(sig_grid)
    for v_up, strength in O2_BAND_STRENGTH.items():
        s0, w = o2_absorption_lines(v_up)
        sd = _doppler_sigma(s0.mean(), 32.0)
        for s, wi in zip(s0, w, strict=True):
            lo, hi = np.searchsorted(sig_grid, [s - 5.0, s + 5.0])
            tau[lo:hi] += (O2_COLUMN * strength * wi
                           * voigt_profile(sig_grid[lo:hi] - s, sd, O2_GAMMA))
    return tau


def _h2o_tau_unit(sig_grid: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for centre, width, _ in H2O_BANDS:
        pos = centre + width * rng.uniform(-2.5, 2.5, N_H2O_LINES)
        env = np.exp(-0.5 * ((pos - centre) / width) ** 2)
        strength = rng.exponential(1.0, N_H2O_LINES) * env
        sd = _doppler_sigma(centre, 18.0)
        tau = np.zeros_like(sig_grid)
        for s, a in zip(pos, strength, strict=True):
            lo, hi = np.searchsorted(sig_grid, [s - 3.0, s + 3.0])
            tau[lo:hi] += a * voigt_profile(sig_grid[lo:hi] - s, sd, H2O_GAMMA)
        out.append(tau)
    return out


@functools.cache
def _zenith_tau() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fine wavelength grid, O2 and H2O (at H2O_PWV_MM) zenith optical depths."""
    wave = np.arange(GRID[0], GRID[1], FINE_STEP)
    sig = 1.0e8 / wave
    order = np.argsort(sig)
    sig_sorted = sig[order]
    o2 = np.empty_like(wave)
    o2[order] = _o2_tau(sig_sorted)
    h2o = np.zeros_like(wave)
    for (centre, width, t_ref), tau_u in zip(H2O_BANDS,
                                             _h2o_tau_unit(sig_sorted,
                                                           np.random.default_rng(H2O_SEED)),
                                             strict=True):
        t = np.empty_like(wave)
        t[order] = tau_u
        core = np.abs(sig - centre) < width
        # scale so that mean(exp(-a tau)) over the band core = t_ref (bisection in log a)
        lo, hi = -12.0, 8.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if np.mean(np.exp(-np.exp(mid) * t[core])) > t_ref:
                lo = mid
            else:
                hi = mid
        h2o += np.exp(0.5 * (lo + hi)) * t
    for arr in (wave, o2, h2o):
        arr.setflags(write=False)
    return wave, o2, h2o


def telluric_transmission(wave, airmass: float, pwv_mm: float = H2O_PWV_MM,
                          bin_width: float | None = None) -> np.ndarray:
    """Transmission of the O2 and H2O bands at ``airmass`` on ``wave`` (vacuum A).

    Parameters
    ----------
    wave : array_like
        Vacuum wavelength in Angstrom; 1 outside 6300-10800 A.
    airmass : float
    pwv_mm : float
        Precipitable water vapour (mm) at the zenith.
    bin_width : float, optional
        Average the fine transmission over bins of this width centred on ``wave``
        (for a continuum sampled with that step); otherwise interpolate.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> import numpy as np
    >>> t = telluric_transmission(np.array([6600.0, 7620.0, 8700.0]), 1.0, bin_width=20.0)
    >>> bool(t[0] > 0.97 and t[1] < 0.8 and t[2] > 0.97)
    True
    """
    fw, o2, h2o = _zenith_tau()
    trans = np.exp(-float(airmass) * (o2 + h2o * (pwv_mm / H2O_PWV_MM)))
    wave = np.asarray(wave, dtype=float)
    if bin_width is None:
        return np.interp(wave, fw, trans, left=1.0, right=1.0)
    cum = np.concatenate([[0.0], np.cumsum(trans - 1.0) * FINE_STEP])
    edges = np.concatenate([[fw[0] - 0.5 * FINE_STEP], fw + 0.5 * FINE_STEP])
    lo = np.interp(wave - 0.5 * bin_width, edges, cum)
    hi = np.interp(wave + 0.5 * bin_width, edges, cum)
    return 1.0 + (hi - lo) / bin_width
