"""Flux-conserving resampling of many spectra onto one wavelength grid.

Each native pixel is a bin whose edges are the midpoints between pixel
centres (the outer edges are extrapolated by half a pixel); its flux density is
taken as constant across the bin. An output bin's flux density is the integral
of that piecewise-constant density over the bin divided by the bin's width:

    F_j = sum_k a_kj f_k,    a_kj = |bin k  intersect  bin j| / |bin j|

which is exact for piecewise-constant spectra, so the integral of the flux
over any range of whole output bins equals the integral of the input over
the same range. The variance is propagated as ``var_j = sum_k a_kj**2 var_k``;
neighbouring output bins share input pixels and are therefore correlated
(their covariance is not returned).

Masked input pixels (inverse variance 0) are never interpolated over: an
output bin that overlaps a masked input pixel by any positive length, or that
reaches beyond the input's first or last edge, is masked (inverse variance 0,
flux 0).

Everything is vectorised over the spectra of a block (rows may have different
native grids, as BOSS fibres do); the only Python loop runs over the few
native pixels an output bin can overlap.
"""
from __future__ import annotations

import numpy as np

#: Spacing of the BOSS coadd grid, dex (log10 A).
COADD_DLOGLAM = 1e-4


def pixel_edges(wave) -> np.ndarray:
    """Bin edges of pixels centred on ``wave`` (..., n): (..., n + 1).

    Inner edges are the midpoints between centres; the outer edges lie half a
    neighbouring pixel beyond the first and last centres.

    Examples
    --------
    >>> pixel_edges(np.array([1.0, 2.0, 4.0]))
    array([0.5, 1.5, 3. , 5. ])
    """
    wave = np.asarray(wave, dtype=float)
    mid = 0.5 * (wave[..., 1:] + wave[..., :-1])
    first = wave[..., :1] - (mid[..., :1] - wave[..., :1])
    last = wave[..., -1:] + (wave[..., -1:] - mid[..., -1:])
    return np.concatenate([first, mid, last], axis=-1)


def loglam_grid(lo: float, hi: float, *, dloglam: float = COADD_DLOGLAM) -> np.ndarray:
    """Centres (log10 A) of the coadd-style grid covering ``lo``-``hi`` A.

    The centres are integer multiples of ``dloglam`` (the BOSS spPlate grid,
    e.g. 3.5529 + j x 1e-4), so grids of different exposures share pixels.

    Examples
    --------
    >>> g = loglam_grid(3650.0, 6350.0)
    >>> round(float(g[0]), 4), round(float(g[-1]), 4), g.size
    (3.5623, 3.8027, 2405)
    """
    first = int(np.ceil(np.log10(lo) / dloglam - 1e-9))
    last = int(np.floor(np.log10(hi) / dloglam + 1e-9))
    return np.arange(first, last + 1) * dloglam


def loglam_edges(loglam) -> np.ndarray:
    """Wavelength edges (A) of bins centred on a uniform log10 grid ``loglam``."""
    loglam = np.asarray(loglam, dtype=float)
    step = loglam[1] - loglam[0]
    return 10.0 ** np.append(loglam - 0.5 * step, loglam[-1] + 0.5 * step)


def resample_flux(wave, flux, ivar, out_edges, *, correlation: bool = False):
    """Resample spectra onto the bins ``out_edges``, conserving flux.

    Parameters
    ----------
    wave, flux, ivar : array_like (nspec, npix) or (npix,)
        Pixel centres (increasing along each row), flux density and its
        inverse variance (0 = masked) on the native pixels.
    out_edges : array_like (nout + 1,)
        Increasing edges of the output bins, in the units of ``wave``.

    correlation : bool
        Also return the correlation of each output bin's noise with that of the next
        two bins (below).

    Returns
    -------
    flux_out, ivar_out : ndarray (nspec, nout) or (nout,)
        Mean flux density over each output bin and its inverse variance;
        both 0 where the bin overlaps a masked pixel or leaves the input range.
    corr : ndarray (nspec, 2, nout) or (2, nout), with ``correlation``
        ``corr[..., L - 1, j]``: the correlation coefficient of the noise of bins j and
        j + L (L = 1, 2), which share the native pixels that straddle their edges
        (``ivar_out`` is each bin's own variance; a sum over bins has these covariances
        too: :func:`skymodelling.spectral.decompose.correlated_noise_factor`); 0 where
        either bin is not valid and in the last L bins.

    Examples
    --------
    >>> wave = np.arange(10.0)
    >>> flux = np.arange(10.0)
    >>> f, iv = resample_flux(wave, flux, np.ones(10), np.array([0.5, 2.5, 4.5, 9.5]))
    >>> f, iv
    (array([1.5, 3.5, 7. ]), array([2., 2., 5.]))
    >>> # flux is conserved: the integrals over 0.5-9.5 agree
    >>> round(float(np.sum(f * np.diff([0.5, 2.5, 4.5, 9.5]))), 12), float(flux[1:].sum())
    (45.0, 45.0)
    """
    wave = np.asarray(wave, dtype=float)
    one = wave.ndim == 1
    wave = np.atleast_2d(wave)
    flux = np.atleast_2d(np.asarray(flux, dtype=float))
    ivar = np.atleast_2d(np.asarray(ivar, dtype=float))
    out_edges = np.asarray(out_edges, dtype=float)
    nspec, npix = wave.shape
    nout = out_edges.size - 1
    edges = pixel_edges(wave)                        # (nspec, npix + 1)
    good = (ivar > 0) & np.isfinite(flux) & np.isfinite(ivar)
    f = np.where(good, flux, 0.0)
    with np.errstate(divide="ignore"):
        var = np.where(good, 1.0 / np.where(good, ivar, 1.0), 0.0)

    lo, hi = out_edges[:-1], out_edges[1:]
    # first native pixel overlapping each output bin, and the last one
    first = np.empty((nspec, nout), dtype=np.intp)
    last = np.empty((nspec, nout), dtype=np.intp)
    for i in range(nspec):  # searchsorted has no row-wise form; one call per spectrum
        first[i] = np.searchsorted(edges[i], lo, side="right") - 1
        last[i] = np.searchsorted(edges[i], hi, side="left") - 1
    inside = (lo[None, :] >= edges[:, :1]) & (hi[None, :] <= edges[:, -1:])
    first = np.clip(first, 0, npix - 1)
    last = np.clip(last, 0, npix - 1)
    span = int(np.max(last - first, initial=0)) + 1

    width = (hi - lo)[None, :]
    total = np.zeros((nspec, nout))
    variance = np.zeros((nspec, nout))
    bad = ~inside
    rows = np.arange(nspec)[:, None]
    terms = []                      # (native pixel, weight) of each bin, per offset t
    for t in range(span):
        k = np.minimum(first + t, npix - 1)
        active = (first + t) <= last
        overlap = (np.minimum(edges[rows, k + 1], hi[None, :])
                   - np.maximum(edges[rows, k], lo[None, :]))
        overlap = np.where(active, np.clip(overlap, 0.0, None), 0.0)
        a = overlap / width
        total += a * f[rows, k]
        variance += a * a * var[rows, k]
        bad |= (overlap > 0) & ~good[rows, k]
        if correlation:
            terms.append((np.where(active, first + t, -1), a))
    ok = ~bad & (variance > 0)
    flux_out = np.where(ok, total, 0.0)
    ivar_out = np.zeros_like(variance)
    np.divide(1.0, variance, out=ivar_out, where=ok)
    out = (flux_out, ivar_out)
    if correlation:
        out += (_lag_correlation(terms, var, ok, ivar_out, rows),)
    if one:
        return tuple(x[0] for x in out)
    return out


def _lag_correlation(terms, var, ok, ivar_out, rows) -> np.ndarray:
    """(nspec, 2, nout) noise correlation of bins j, j + L (L = 1, 2) from the native
    pixels they share: cov = sum over shared pixels k of a_jk a_(j+L)k var_k."""
    nspec, nout = ok.shape
    corr = np.zeros((nspec, 2, nout))
    for lag in (1, 2):
        if nout <= lag:
            continue
        cov = np.zeros((nspec, nout - lag))
        for k1, a1 in terms:
            for k2, a2 in terms:
                same = (k1[:, :-lag] == k2[:, lag:]) & (k1[:, :-lag] >= 0)
                kk = np.where(same, k1[:, :-lag], 0)
                cov += np.where(same, a1[:, :-lag] * a2[:, lag:] * var[rows, kk], 0.0)
        both = ok[:, :-lag] & ok[:, lag:]
        corr[:, lag - 1, :-lag] = np.where(
            both, cov * np.sqrt(ivar_out[:, :-lag] * ivar_out[:, lag:]), 0.0)
    return corr


def correlated_sum(a, corr) -> np.ndarray:
    """``sum_L sum_j a_j a_(j+L) corr[L - 1, j]`` along the last axis (pixels) of ``a``.

    With ``a_j = c_j sigma_j`` it is half the covariance part of the variance of
    ``sum_j c_j f_j`` when the noise of pixels j and j + L correlates by ``corr`` (the
    ``corr`` of :func:`resample_flux`; its leading axes broadcast against ``a``'s).

    Examples
    --------
    >>> corr = np.zeros((2, 4)); corr[0, :3] = 0.5
    >>> float(correlated_sum(np.ones(4), corr))          # three neighbour pairs x 0.5
    1.5
    """
    a = np.asarray(a, dtype=float)
    corr = np.asarray(corr, dtype=float)
    out = np.zeros(a.shape[:-1])
    for lag in range(1, corr.shape[-2] + 1):
        if a.shape[-1] <= lag:
            break
        out = out + np.sum(a[..., :-lag] * a[..., lag:] * corr[..., lag - 1, :-lag], axis=-1)
    return out


__all__ = ["COADD_DLOGLAM", "pixel_edges", "loglam_grid", "loglam_edges", "resample_flux",
           "correlated_sum"]
