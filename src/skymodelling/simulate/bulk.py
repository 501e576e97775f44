"""The line-spread function applied in bulk: the sky continuum and the faint lines.

The simulated continuum has fine structure (solar Fraunhofer lines, telluric O2 and
H2O bands) and the sky has thousands of faint OH lines. Rendering every faint line
through the exact per-fibre profile of :func:`skymodelling.simulate.instrument.
render_lines` would cost ~500 fibres x 8,000 lines per camera, so:

* the brightest ``N_EXACT`` lines of a camera are rendered exactly (Gaussian core
  of each fibre's sigma integrated over pixels, plus the Lorentzian wing);
* the others are deposited (flux-conserving, linear share between neighbours) on a
  uniform log-wavelength grid of step 1e-5 dex, together with the continuum
  interpolated onto it, and both are convolved with one Gaussian of the camera's
  mean LSF sigma (native pixels, widened by the pixel's own width,
  ``sigma^2 + 1/12``), then interpolated at every pixel of every fibre.

The faint lines carry no Lorentzian wing (their wing flux stays in the core) and
see the camera-mean sigma rather than each fibre's (a few per cent different):
differences far below the noise of any one of them.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

#: Lines per camera rendered through the exact profile (the brightest ones).
N_EXACT = 1000
LOG_STEP = 1.0e-5


def split_lines(line_wave, line_flux, lo: float, hi: float, n_exact: int = N_EXACT):
    """Indices of the lines in (lo, hi): the ``n_exact`` brightest, and the rest."""
    inside = np.flatnonzero((line_wave > lo) & (line_wave < hi))
    if inside.size <= n_exact:
        return inside, inside[:0]
    order = inside[np.argsort(line_flux[inside])[::-1]]
    return np.sort(order[:n_exact]), np.sort(order[n_exact:])


def smooth_on_pixels(wave_pix, sky_wave, sky_cont, faint_wave, faint_flux, sigma_pix: float,
                     dloglam_pix: float) -> tuple[np.ndarray, np.ndarray]:
    """Continuum and faint-line flux density through the LSF, at every pixel.

    Parameters
    ----------
    wave_pix : ndarray
        Wavelength (A) of each pixel, any shape, in the frame of ``sky_wave``.
    sky_wave, sky_cont : ndarray
        The continuum (flux density per A) on its grid.
    faint_wave, faint_flux : ndarray
        Faint lines: wavelengths (A) and integrated fluxes (flux density x A).
    sigma_pix : float
        Mean LSF Gaussian sigma in native pixels.
    dloglam_pix : float
        Mean native pixel width in log10 wavelength.

    Returns
    -------
    cont, lines : ndarray
        Same shape as ``wave_pix``: flux density per A.

    Examples
    --------
    >>> import numpy as np
    >>> w = np.linspace(7000.0, 7100.0, 201)
    >>> c, l = smooth_on_pixels(w, w, np.ones_like(w), np.array([7050.0]),
    ...                         np.array([2.0]), 1.0, 1e-4)
    >>> bool(np.allclose(c[20:-20], 1.0) and abs(np.sum(l) * 0.5 - 2.0) < 0.01)
    True
    """
    wave_pix = np.asarray(wave_pix, dtype=float)
    lo = np.log10(wave_pix.min()) - 0.002
    hi = np.log10(wave_pix.max()) + 0.002
    grid_log = np.arange(lo, hi, LOG_STEP)
    grid = 10.0**grid_log
    cont = np.interp(grid, sky_wave, sky_cont)
    dens = np.zeros(grid.size)
    if len(faint_wave):
        u = (np.log10(faint_wave) - lo) / LOG_STEP
        i0 = np.floor(u).astype(np.int64)
        frac = u - i0
        ok = (i0 >= 0) & (i0 < grid.size - 1)
        dens += np.bincount(i0[ok], weights=faint_flux[ok] * (1 - frac[ok]), minlength=grid.size)
        dens += np.bincount(i0[ok] + 1, weights=faint_flux[ok] * frac[ok], minlength=grid.size)
        dens /= grid * np.log(10.0) * LOG_STEP   # per A
    sigma = np.sqrt(sigma_pix**2 + 1.0 / 12.0) * dloglam_pix / LOG_STEP
    cont = gaussian_filter1d(cont, sigma, mode="nearest")
    dens = gaussian_filter1d(dens, sigma, mode="constant")
    flat = wave_pix.ravel()
    return (np.interp(flat, grid, cont).reshape(wave_pix.shape),
            np.interp(flat, grid, dens).reshape(wave_pix.shape))
