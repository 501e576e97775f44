"""Line-spread function on a log-lambda grid: Gaussian core plus Lorentzian wing.

A line of unit flux centred at pixel coordinate ``u0`` (pixels of the 1e-4 dex
grid, fractional) puts into pixel ``j`` the fraction

    P_j = (1 - eta) [Phi((j + 1/2 - u0) / sigma) - Phi((j - 1/2 - u0) / sigma)]
          + eta [atan((j + 1/2 - u0) / gamma) - atan((j - 1/2 - u0) / gamma)] / pi

i.e. the profile is integrated exactly over each pixel (a Gaussian core of
width ``sigma`` pixels holding ``1 - eta`` of the flux and a Lorentzian
scattering wing of half width at half maximum ``gamma`` pixels holding ``eta``).
Columns are cut at ``half_width`` pixels from the centre; the Lorentzian flux
beyond (``eta * 2/pi * gamma / half_width`` of the line, ~0.3 % for eta = 0.05,
gamma = 4.5, half_width = 40) is left to the smooth continuum.

Divided by the pixel widths in Angstrom, ``P_j`` becomes a flux density, so
the amplitude fitted to a column is the line's integrated flux.

**Resampled spectra.** A spectrum resampled onto the grid from the spectrograph's native
pixels (flux-conserving, :func:`skymodelling.spectral.resample.resample_flux`) holds in grid
pixel ``j`` the native pixels' fractions spread evenly over their widths,

    P_j = sum_i (|native i  intersect  grid j| / |native i|) F_i,

``F_i`` the profile integrated over native pixel ``i``. Where native and grid pixels are of
similar size their relative phase drifts along the camera, and a line's shape on the grid
goes from the native one (phases aligned) to one smeared over two grid pixels (half a pixel
apart): up to ~15 % in width, different for every line, the same in every exposure of a
fibre. Given the native pixels (:func:`native_sampling`), :func:`line_columns` builds this
``P_j`` exactly; the far wings (:func:`line_wings`, beyond the jointly fitted part) stay on
the grid (smooth there: 13-39 pixels from the centre the resampling changes them by at most
0.6-1.2 % of their value for native pixels of 0.6-1.2 grid pixels, ~1e-4 of the line's peak).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import ndtr

from .resample import loglam_edges, pixel_edges

__all__ = ["pixel_profile", "profile_derivative", "line_columns", "line_wings", "wing_matrix",
           "NativeSampling", "native_sampling"]


@dataclass(frozen=True)
class NativeSampling:
    """How a grid spectrum was resampled from native pixels (:func:`native_sampling`).

    Attributes
    ----------
    edges : ndarray (nnative + 1,)
        Native pixel edges in (fractional) grid pixel coordinates.
    first : ndarray (npix,) of int
        First native pixel overlapping each grid pixel.
    weight : ndarray (npix, k)
        Overlap of grid pixel ``j`` with native pixel ``first[j] + k``, divided by that
        native pixel's width (0 beyond the last one it overlaps).
    """

    edges: np.ndarray
    first: np.ndarray
    weight: np.ndarray


def native_sampling(native_wave, loglam) -> NativeSampling:
    """The resampling of native pixels centred at ``native_wave`` (A, increasing) onto the
    uniform log10 grid ``loglam``, with the pixel edges of
    :func:`skymodelling.spectral.resample.resample_flux` (midpoints between centres).

    Examples
    --------
    >>> loglam = 3.6 + 1e-4 * np.arange(50)
    >>> s = native_sampling(10 ** loglam, loglam)   # native = grid: nearly the identity
    >>> float(np.round(s.weight[1:-1].max(axis=1).min(), 4))   # (edges: A midpoints)
    1.0
    >>> s = native_sampling(10 ** (3.6 + 0.8e-4 * np.arange(60)), loglam)
    >>> s.weight.shape[1], bool(np.allclose(s.weight[5:40].sum(axis=1), 1.25))
    (3, True)
    """
    loglam = np.asarray(loglam, dtype=float)
    step = (loglam[-1] - loglam[0]) / (loglam.size - 1)
    nat = pixel_edges(np.asarray(native_wave, dtype=float))
    out = loglam_edges(loglam)
    lo, hi = out[:-1], out[1:]
    n = nat.size - 1
    first = np.clip(np.searchsorted(nat, lo, side="right") - 1, 0, n - 1)
    last = np.clip(np.searchsorted(nat, hi, side="left") - 1, 0, n - 1)
    span = int(np.max(last - first, initial=0)) + 1
    k = first[:, None] + np.arange(span)
    kc = np.minimum(k, n - 1)
    overlap = np.minimum(nat[kc + 1], hi[:, None]) - np.maximum(nat[kc], lo[:, None])
    overlap = np.where(k <= last[:, None], np.clip(overlap, 0.0, None), 0.0)
    weight = overlap / np.diff(nat)[kc]
    return NativeSampling((np.log10(nat) - loglam[0]) / step, first, weight)


def pixel_profile(offset, sigma: float, eta: float, gamma: float) -> np.ndarray:
    """Fraction of a unit line in a pixel whose centre is ``offset`` pixels from the line.

    Examples
    --------
    >>> u = np.arange(-200, 201)
    >>> round(float(pixel_profile(u, 1.05, 0.04, 3.5).sum()), 4)
    0.9996
    """
    d = np.asarray(offset, dtype=float)
    hi, lo = d + 0.5, d - 0.5
    core = ndtr(hi / sigma) - ndtr(lo / sigma)
    wing = (np.arctan(hi / gamma) - np.arctan(lo / gamma)) / np.pi
    return (1.0 - eta) * core + eta * wing


def profile_derivative(offset, sigma: float, eta: float, gamma: float) -> np.ndarray:
    """d P / d u0 (change of :func:`pixel_profile` as the line centre moves by one pixel)."""
    d = np.asarray(offset, dtype=float)
    hi, lo = d + 0.5, d - 0.5
    phi = (np.exp(-0.5 * (hi / sigma) ** 2) - np.exp(-0.5 * (lo / sigma) ** 2)) / (
        sigma * np.sqrt(2.0 * np.pi))
    lor = (1.0 / (1.0 + (hi / gamma) ** 2) - 1.0 / (1.0 + (lo / gamma) ** 2)) / (np.pi * gamma)
    return -((1.0 - eta) * phi + eta * lor)   # d/du0 = -d/d(offset)


def line_columns(centres, npix: int, dlam, *, sigma: float, eta: float, gamma: float,
                 half_width: int = 40, derivative: np.ndarray | None = None,
                 width_derivative: bool | np.ndarray = False,
                 native: NativeSampling | None = None) -> sp.csc_matrix:
    """Sparse design-matrix columns of lines at pixel coordinates ``centres``.

    Parameters
    ----------
    centres : array_like
        Line centres in (fractional) pixels of the grid.
    npix : int
        Pixels of the grid.
    dlam : array_like (npix,)
        Pixel widths in Angstrom (columns are flux densities per unit flux).
    sigma : float or array_like (n_lines,)
        Gaussian core sigma in pixels, one for all lines or one per line (the width
        varies along a camera).
    eta, gamma : float
        Wing fraction and Lorentzian HWHM in pixels (see the module notes).
    half_width : int
        Pixels either side of the centre where a column is non-zero.
    derivative : bool array, optional
        Lines that also get a column d P / d u0 (a linearised shift of the centre,
        appended after the profile columns in the same order).
    width_derivative : bool or bool array
        Lines that also get a column d P / d sigma (a linearised change of the core
        width, appended after the shift columns); True: the lines of ``derivative``.

    native : NativeSampling, optional
        The native pixels the spectrum was resampled from (:func:`native_sampling`): the
        columns are the profile integrated over them and spread onto the grid, as the
        resampling did (module notes). None: the profile integrated over the grid pixels.

    Returns
    -------
    scipy.sparse.csc_matrix (npix, n_lines [+ n_derivative])

    Examples
    --------
    Resampled from native pixels equal to the grid's, the columns are the plain ones:

    >>> loglam = 3.6 + 1e-4 * np.arange(100)
    >>> dl = np.ones(100)
    >>> kw = dict(sigma=0.9, eta=0.05, gamma=3.0, half_width=20, derivative=[True])
    >>> a = line_columns([50.3], 100, dl, **kw).toarray()
    >>> b = line_columns([50.3], 100, dl, native=native_sampling(10 ** loglam, loglam),
    ...                  **kw).toarray()
    >>> bool(np.allclose(a, b, atol=1e-4))   # (native edges: midpoints in A)
    True
    """
    centres = np.asarray(centres, dtype=float)
    dlam = np.asarray(dlam, dtype=float)
    sig = np.broadcast_to(np.asarray(sigma, dtype=float), centres.shape)[:, None]
    offs = np.arange(-half_width, half_width + 1)
    base = np.rint(centres).astype(int)
    rows = base[:, None] + offs[None, :]
    ok = (rows >= 0) & (rows < npix)
    # quantities integrated up to every pixel edge, once (neighbouring pixels share edges),
    # then differenced into the pixels: the grid's own or the native ones spread onto it
    if native is None:
        d = rows - centres[:, None]
        edges = np.concatenate([d - 0.5, d[:, -1:] + 0.5], axis=1)

        def diff(q, idx=None):
            return np.diff(q, axis=1)
    else:
        edges, diff = _native_edges(native, rows, centres, npix)
    cdf = (1.0 - eta) * ndtr(edges / sig) + eta * np.arctan(edges / gamma) / np.pi
    vals = diff(cdf)
    # the entries come column by column, each column's rows increasing: CSC directly
    r = rows[ok]
    data = [vals[ok] / dlam[r]]
    rr, counts = [r], [ok.sum(axis=1)]
    ncol = centres.size

    def append(values, idx, first):
        """Columns first, first + 1, ... from per-edge differences of the lines idx."""
        okd = ok[idx]
        rd = rows[idx][okd]
        data.append(values[okd] / dlam[rd])
        rr.append(rd)
        counts.append(okd.sum(axis=1))
        return first + idx.size

    if derivative is not None and np.any(derivative):
        idx = np.flatnonzero(derivative)
        # d/du0 of the integral up to an edge is minus the density there
        e = edges[idx]
        si = sig[idx]
        dens = ((1.0 - eta) * np.exp(-0.5 * (e / si) ** 2) / (si * np.sqrt(2.0 * np.pi))
                + eta / (np.pi * gamma * (1.0 + (e / gamma) ** 2)))
        ncol = append(-diff(dens, idx), idx, ncol)
    if width_derivative is True:
        width_derivative = derivative
    if width_derivative is not None and width_derivative is not False and np.any(
            width_derivative):
        idx = np.flatnonzero(width_derivative)
        si = sig[idx]
        e = edges[idx] / si
        # d/dsigma of (1 - eta) Phi(e / sigma) is -(1 - eta) phi(e / sigma) e / sigma^2
        ncol = append(diff(-(1.0 - eta) * np.exp(-0.5 * e * e) * e
                           / (si * np.sqrt(2.0 * np.pi)), idx), idx, ncol)
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))])
    return sp.csc_matrix((np.concatenate(data), np.concatenate(rr), indptr),
                         shape=(npix, ncol))


def _native_edges(native: NativeSampling, rows, centres, npix: int):
    """For :func:`line_columns`: the native pixel edges around each line (offsets from its
    centre, grid pixels) and the operator turning per-edge quantities into grid pixels."""
    rc = np.minimum(np.maximum(rows, 0), npix - 1)
    f0 = native.first[rc]                            # (nlines, nwin), non-decreasing
    lo = f0[:, :1]
    span = native.weight.shape[1]
    nper = int(np.max(f0[:, -1] - lo[:, 0], initial=0)) + span + 1
    eidx = np.minimum(lo + np.arange(nper), native.edges.size - 1)
    edges = native.edges[eidx] - centres[:, None]
    # where in the (lines x native pixels) array of per-pixel values each grid pixel of a
    # line takes its native pixels from, and with which weights
    relk = (f0 - lo)[:, :, None] + np.arange(span)   # (nlines, nwin, span)
    wts = native.weight[rc]

    def diff(q, idx=None):
        r, wk = (relk, wts) if idx is None else (relk[idx], wts[idx])
        per_pixel = np.diff(q, axis=1)
        flat = r + (np.arange(r.shape[0]) * (nper - 1))[:, None, None]
        return np.einsum("ijk,ijk->ij", wk, per_pixel.ravel()[flat])

    return edges, diff


def line_wings(centres, fluxes, npix: int, dlam, *, sigma, eta: float, gamma: float,
               inner: int, half_width: int = 40) -> np.ndarray:
    """Flux density of the parts of lines more than ``inner`` pixels from their centre.

    The complement of :func:`line_columns` with ``half_width=inner`` within
    ``half_width``: ``line_columns(half_width=inner) @ fluxes + line_wings(...)`` equals
    ``line_columns(half_width=half_width) @ fluxes`` (same pixel convention: offsets from
    the pixel nearest the centre).

    Examples
    --------
    >>> dl = np.ones(200)
    >>> c, f = np.array([60.3, 140.8]), np.array([5.0, 2.0])
    >>> full = line_columns(c, 200, dl, sigma=1.0, eta=0.05, gamma=3.0) @ f
    >>> core = line_columns(c, 200, dl, sigma=1.0, eta=0.05, gamma=3.0, half_width=10) @ f
    >>> wing = line_wings(c, f, 200, dl, sigma=1.0, eta=0.05, gamma=3.0, inner=10)
    >>> bool(np.allclose(core + wing, full))
    True
    """
    return wing_matrix(centres, npix, dlam, sigma=sigma, eta=eta, gamma=gamma, inner=inner,
                       half_width=half_width) @ np.asarray(fluxes, dtype=float)


def wing_matrix(centres, npix: int, dlam, *, sigma, eta: float, gamma: float, inner: int,
                half_width: int = 40) -> sp.csc_matrix:
    """The operator of :func:`line_wings`: ``wing_matrix(...) @ fluxes`` is the lines' flux
    density beyond ``inner`` pixels (one column per line), for fits that evaluate the wings
    of the same lines with several sets of fluxes.

    Examples
    --------
    >>> dl = np.ones(200)
    >>> c = np.array([60.3, 140.8])
    >>> m = wing_matrix(c, 200, dl, sigma=1.0, eta=0.05, gamma=3.0, inner=10)
    >>> w = line_wings(c, [5.0, 2.0], 200, dl, sigma=1.0, eta=0.05, gamma=3.0, inner=10)
    >>> m.shape, bool(np.allclose(m @ [5.0, 2.0], w))
    ((200, 2), True)
    """
    centres = np.asarray(centres, dtype=float)
    dlam = np.asarray(dlam, dtype=float)
    if inner >= half_width or centres.size == 0:
        return sp.csc_matrix((npix, centres.size))
    sig = np.broadcast_to(np.asarray(sigma, dtype=float), centres.shape)[:, None]
    base = np.rint(centres).astype(int)[:, None]
    nout = half_width - inner
    # the profile integrated up to the pixel edges of each side (shared by neighbours),
    # the left side's pixels in increasing order, then the right side's: CSC directly
    edges = np.arange(inner + 0.5, half_width + 1.0)[::-1]    # nout + 1 edges, far first
    left = base - (inner + 1) - np.arange(nout)[None, ::-1]
    right = base + (inner + 1) + np.arange(nout)[None, :]
    vals = []
    for e in (-edges, edges[::-1]):
        e = e[None, :] + (base - centres[:, None])            # edge offsets from the centre
        cdf = eta * np.arctan(e / gamma) / np.pi
        if (inner - 1.0) / np.max(sig) < 8.5:   # Gaussian tail not negligible in double
            cdf = cdf + (1.0 - eta) * ndtr(e / sig)
        vals.append(np.diff(cdf, axis=1))
    rows = np.concatenate([left, right], axis=1)
    vals = np.concatenate(vals, axis=1)
    ok = (rows >= 0) & (rows < npix)
    r = rows[ok]
    indptr = np.concatenate([[0], np.cumsum(ok.sum(axis=1))])
    return sp.csc_matrix((vals[ok] / dlam[r], r, indptr), shape=(npix, centres.size))
