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
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import ndtr

__all__ = ["pixel_profile", "profile_derivative", "line_columns", "line_wings"]


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
                 width_derivative: bool | np.ndarray = False) -> sp.csc_matrix:
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

    Returns
    -------
    scipy.sparse.csc_matrix (npix, n_lines [+ n_derivative])
    """
    centres = np.asarray(centres, dtype=float)
    dlam = np.asarray(dlam, dtype=float)
    sig = np.broadcast_to(np.asarray(sigma, dtype=float), centres.shape)[:, None]
    offs = np.arange(-half_width, half_width + 1)
    base = np.rint(centres).astype(int)
    rows = base[:, None] + offs[None, :]
    d = rows - centres[:, None]
    ok = (rows >= 0) & (rows < npix)
    cols = np.broadcast_to(np.arange(centres.size)[:, None], rows.shape)
    # the profile integrated up to every pixel edge, once: neighbouring pixels share edges
    edges = np.concatenate([d - 0.5, d[:, -1:] + 0.5], axis=1)
    cdf = (1.0 - eta) * ndtr(edges / sig) + eta * np.arctan(edges / gamma) / np.pi
    vals = np.diff(cdf, axis=1)
    r, c = rows[ok], cols[ok]
    data = [vals[ok] / dlam[r]]
    rr, cc = [r], [c]
    ncol = centres.size

    def append(values, idx, first):
        """Columns first, first + 1, ... from per-edge differences of the lines idx."""
        okd = ok[idx]
        rd = rows[idx][okd]
        data.append(values[okd] / dlam[rd])
        rr.append(rd)
        cc.append(np.broadcast_to(np.arange(idx.size)[:, None], okd.shape)[okd] + first)
        return first + idx.size

    if derivative is not None and np.any(derivative):
        idx = np.flatnonzero(derivative)
        # d/du0 of the integral up to an edge is minus the density there
        e = edges[idx]
        si = sig[idx]
        dens = ((1.0 - eta) * np.exp(-0.5 * (e / si) ** 2) / (si * np.sqrt(2.0 * np.pi))
                + eta / (np.pi * gamma * (1.0 + (e / gamma) ** 2)))
        ncol = append(-np.diff(dens, axis=1), idx, ncol)
    if width_derivative is True:
        width_derivative = derivative
    if width_derivative is not None and width_derivative is not False and np.any(
            width_derivative):
        idx = np.flatnonzero(width_derivative)
        si = sig[idx]
        e = edges[idx] / si
        # d/dsigma of (1 - eta) Phi(e / sigma) is -(1 - eta) phi(e / sigma) e / sigma^2
        ncol = append(np.diff(-(1.0 - eta) * np.exp(-0.5 * e * e) * e
                              / (si * np.sqrt(2.0 * np.pi)), axis=1), idx, ncol)
    return sp.csc_matrix((np.concatenate(data), (np.concatenate(rr), np.concatenate(cc))),
                         shape=(npix, ncol))


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
    centres = np.asarray(centres, dtype=float)
    fluxes = np.asarray(fluxes, dtype=float)
    dlam = np.asarray(dlam, dtype=float)
    if inner >= half_width or centres.size == 0:
        return np.zeros(npix)
    sig = np.broadcast_to(np.asarray(sigma, dtype=float), centres.shape)[:, None]
    base = np.rint(centres).astype(int)[:, None]
    nout = half_width - inner
    # the profile integrated up to the pixel edges of each side (shared by neighbours)
    edges = np.arange(inner + 0.5, half_width + 1.0)          # nout + 1 edges
    right = base + (inner + 1) + np.arange(nout)[None, :]
    left = base - (inner + 1) - np.arange(nout)[None, :]
    out = np.zeros(npix)
    for rows, sign in ((right, 1.0), (left, -1.0)):
        e = sign * edges[None, :] + (base - centres[:, None])  # edge offsets from the centre
        cdf = eta * np.arctan(e / gamma) / np.pi
        if (inner - 1.0) / np.max(sig) < 8.5:   # Gaussian tail not negligible in double
            cdf = cdf + (1.0 - eta) * ndtr(e / sig)
        vals = sign * np.diff(cdf, axis=1)
        ok = (rows >= 0) & (rows < npix)
        r = rows[ok]
        out += np.bincount(r, (vals * fluxes[:, None])[ok] / dlam[r], minlength=npix)
    return out
