"""The line-spread profile of a sky spectrum on a log-lambda grid: its core width along the
camera and its fit to the brightest isolated lines.

The profile of every line of a spectrum is :func:`skymodelling.spectral.lsf.pixel_profile`
(a Gaussian core of width sigma and a Lorentzian wing of fraction eta and HWHM gamma,
integrated over the pixel). Its core width varies smoothly along the camera
(:func:`line_sigma`), optionally following the extraction's dispersion (:func:`disp_width`);
:func:`fit_lsf` measures it on the bright isolated lines of a spectrum.
"""
from __future__ import annotations

import numpy as np

from .lsf import line_columns

#: Profile (sigma, eta, gamma; grid pixels) when it cannot be fitted: BOSS core of ~1.05
#: (blue) / 1.08 (red) native pixels of 0.63 / 0.70 grid pixels, widened by the pixel boxes.
DEFAULT_LSF = {"b": (0.70, 0.04, 2.2), "r": (0.80, 0.05, 3.2)}


def line_sigma(lsf, centres, npix: int, width_curve=None) -> np.ndarray:
    """Core sigma (pixels) of lines at pixel coordinates ``centres`` of an ``npix`` grid.

    ``lsf`` is (sigma, eta, gamma) or (sigma, eta, gamma, s1, s2): the core width along
    the camera is ``sigma (1 + s1 t + s2 (3 t^2 - 1) / 2)`` with ``t`` = -1 .. 1 from the
    first to the last pixel of the grid (Legendre P1, P2: ``sigma`` is the mean width).
    The spectrograph's width varies along the CCD (aberrations: wider at both ends; the
    BOSS extraction's dispersion traceset is a Legendre series in the pixel coordinate too).

    ``width_curve`` (npix,), optional: the instrument's width along the grid (the mean DISP
    in pixels, :func:`disp_width`); the core width is then ``sigma w(u) / mean(w)`` times
    the same polynomial (a low-order correction to the measured shape).
    """
    centres = np.asarray(centres, dtype=float)
    s1, s2 = (lsf[3], lsf[4]) if len(lsf) > 3 else (0.0, 0.0)
    t = 2.0 * centres / max(npix - 1, 1) - 1.0
    poly = lsf[0] * (1.0 + s1 * t + s2 * (1.5 * t * t - 0.5))
    if width_curve is None:
        return poly
    return poly * _relative_width(width_curve, centres)


def _relative_width(width, centres) -> np.ndarray:
    """``width`` at the (fractional) pixels ``centres``, relative to its mean."""
    width = np.asarray(width, dtype=float)
    return np.interp(centres, np.arange(width.size), width) / float(np.mean(width))


def disp_width(loglam, disp) -> np.ndarray | None:
    """The instrument's core width (sigma) in pixels of the log-lambda grid ``loglam``.

    ``disp``: the line-spread sigma in Angstrom on the grid (the mean stage's
    ``<CAM>_DISP``, the extraction's dispersion traceset; 0 where unknown). Gaps are
    filled with the nearest known value. None when it is unknown everywhere.

    Converted with the pixel width lambda ln(10) dloglam. The extraction and the
    resampling widen a line beyond DISP: the native pixel integrates the profile (a box of
    p grid pixels, p the native pixel width) and the resampling spreads each native pixel
    evenly over its width (the same box again); the model integrates over the grid pixel
    itself. Variance 2 p^2 / 12 added to DISP^2 = (sigma_native p)^2 is a fraction
    1 / (6 sigma_native^2) (15 % for sigma_native = 1.05 native pixels; a line fitted on the
    grid is 7.3 % wider than DISP, checked by resampling pixelised Gaussians), constant
    along the camera to the extent sigma_native is (+-5 % in sigma_native changes it by
    +-0.5 %): a scale, which the fitted ``sigma`` absorbs, so it is not applied here.
    """
    loglam = np.asarray(loglam, dtype=float)
    disp = np.asarray(disp, dtype=float)
    ok = np.isfinite(disp) & (disp > 0)
    if ok.sum() < 2:
        return None
    step = float(np.median(np.diff(loglam)))
    pix = disp / (10.0 ** loglam * np.log(10.0) * step)
    idx = np.arange(loglam.size)
    return np.interp(idx, idx[ok], pix[ok])


def native_width_ratio(disp_native) -> float:
    """Core width of a line modelled on its native pixels relative to the width fitted on
    the grid, where the pixel boxes widen it (:func:`disp_width`): 1 / sqrt(1 + 1 / (6 s^2)),
    ``s`` the median of ``disp_native``, the line-spread sigma in native pixels. For a
    profile fitted on a mean spectrum (native pixels at every phase of the grid's) used on
    a single fibre modelled on its native pixels
    (:func:`skymodelling.spectral.lsf.native_sampling`).

    >>> round(native_width_ratio([1.05]), 3)
    0.932
    """
    d = np.asarray(disp_native, dtype=float)
    d = d[np.isfinite(d) & (d > 0)]
    if d.size == 0:
        return 1.0
    s = float(np.median(d))
    return float(1.0 / np.sqrt(1.0 + 1.0 / (6.0 * s * s)))


class _WindowFits:
    """Chi-square of line windows fitted with a straight line plus their lines and the lines'
    shift columns (linear least squares), for one core width per window, all windows at
    once: one :func:`line_columns` call and one batched pseudo-inverse per evaluation.

    ``windows``: (lo, hi, centres of the lines inside, centre of the window's line).
    """

    def __init__(self, flux, ivar, dlam, windows, *, half_width, native=None):
        self.npix, self.dlam = flux.size, dlam
        self.half_width, self.native = half_width, native
        lengths = np.array([hi - lo for lo, hi, _, _ in windows])
        nrow = int(lengths.max())
        lo = np.array([w[0] for w in windows])
        self.rows = np.minimum(lo[:, None] + np.arange(nrow), flux.size - 1)
        # the pixels of the windows, numbered: only those rows of the columns are made dense
        used = np.unique(self.rows)
        self.rowmap = np.full(flux.size, -1)
        self.rowmap[used] = np.arange(used.size)
        self.local = self.rowmap[self.rows]
        inside = np.arange(nrow)[None, :] < lengths[:, None]
        self.sw = np.where(inside, np.sqrt(ivar[self.rows]), 0.0)
        self.yw = flux[self.rows] * self.sw
        x = np.where(inside, np.arange(nrow) / lengths[:, None] - 0.5, 0.0)
        self.base = np.stack([self.sw, x * self.sw], axis=2)
        counts = np.array([cs.size for _, _, cs, _ in windows])
        self.centres = np.concatenate([cs for _, _, cs, _ in windows])
        self.owner = np.repeat(np.arange(len(windows)), counts)
        ncs, width = self.centres.size, int(counts.max())
        # each window's columns in the lines' design (profile j, shift ncs + j); the extra
        # column 2 ncs is zeros (padding)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        k = np.arange(width)
        j = np.where(k[None, :] < counts[:, None], first[:, None] + k, -1)
        self.gather = np.where(np.concatenate([j, j], axis=1) >= 0,
                               np.concatenate([j, j + ncs], axis=1), 2 * ncs)

    def __call__(self, sigmas, eta, gamma):
        """Chi-square of each window with core width ``sigmas`` (one per window)."""
        cols = line_columns(self.centres, self.npix, self.dlam,
                            sigma=np.asarray(sigmas, float)[self.owner], eta=eta, gamma=gamma,
                            half_width=self.half_width,
                            derivative=np.ones(self.centres.size, bool), native=self.native)
        # the columns' entries on the windows' pixels (CSC: column by column)
        dense = np.zeros((self.local.max() + 1, cols.shape[1] + 1))
        r = self.rowmap[cols.indices]
        c = np.repeat(np.arange(cols.shape[1]), np.diff(cols.indptr))
        on = r >= 0
        dense[r[on], c[on]] = cols.data[on]
        a = dense[self.local[:, :, None], self.gather[:, None, :]] * self.sw[:, :, None]
        a = np.concatenate([self.base, a], axis=2)
        # the least-squares solution of each window, as numpy.linalg.lstsq's (minimum
        # norm: the zero padding columns get no coefficient)
        coef = np.linalg.pinv(a) @ self.yw[:, :, None]
        return np.sum((self.yw - (a @ coef)[:, :, 0]) ** 2, axis=1)


def _golden(f, lo: float, hi: float, n: int, xatol: float):
    """Minima of ``n`` one-dimensional functions on [lo, hi] by golden-section search, all
    at once: ``f`` maps n abscissae to n values. Returns the abscissae and values of the
    best points found, the brackets narrower than 2 ``xatol``."""
    g = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = np.full(n, float(lo)), np.full(n, float(hi))
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(int(np.ceil(np.log(2.0 * xatol / (hi - lo)) / np.log(g)))):
        left = fc < fd        # the minimum is in [a, d]
        a, b = np.where(left, a, c), np.where(left, d, b)
        new = np.where(left, b - g * (b - a), a + g * (b - a))
        fn = f(new)
        c, d, fc, fd = (np.where(left, new, d), np.where(left, c, new),
                        np.where(left, fn, fd), np.where(left, fc, fn))
    best = fc < fd
    return np.where(best, c, d), np.where(best, fc, fd)


def fit_lsf(flux, ivar, dlam, centres, snr, *, start, n_lines=10, window=15,
            fixed_wing=None, vary=True, width_curve=None, curve_degree=0, details=None,
            min_snr=30.0, scale_snr=None, native=None):
    """Profile (sigma, eta, gamma[, s1, s2]) from bright isolated lines, or None.

    Each line's window (``window`` pixels either side) is fitted with a straight
    line plus the line and its shift column, and any other peak inside it.

    With ``fixed_wing`` (eta, gamma) and ``vary`` the core width is measured line by
    line (a one-dimensional golden-section search per window, all windows together) on
    the ``n_lines`` brightest isolated lines plus the brightest few of each third of the
    camera, and a quadratic in the
    pixel coordinate (:func:`line_sigma`; a straight line or a constant when the lines
    cover only two or one third) is fitted to the widths, clipping outliers (lines with
    an unresolved neighbour look wide). Otherwise one width (and, without
    ``fixed_wing``, the wing) is fitted to all windows together (Nelder-Mead on the
    summed chi-square).

    With ``width_curve`` (the instrument's width along the grid, :func:`disp_width`) the
    widths are fitted by that curve's shape times a polynomial of degree at most
    ``curve_degree`` (0: only the scale). ``details`` (a dict) receives the lines'
    positions (``where``), widths, errors and which were kept (``used``).

    Lines are used from S/N ``min_snr``; when only the scale of ``width_curve`` is
    fitted and ``scale_snr`` is given, from S/N ``scale_snr``, provided the lines used
    reach ``min_snr`` together (quadrature sum): one number measured on several faint
    lines is as precise as on one bright line. A single-fibre blue spectrum has few
    lines above S/N 30 but several above 10 (benchmarks/RESULTS.md, realsky).

    ``native`` (:class:`~skymodelling.spectral.lsf.NativeSampling`): the native pixels a
    resampled spectrum came from, whose profile the windows are then fitted with.
    """
    from scipy.optimize import minimize

    npix = flux.size
    order = np.argsort(snr)[::-1]
    ok = []
    pooled = width_curve is not None and curve_degree == 0 and scale_snr is not None
    floor = min(scale_snr, min_snr) if pooled else min_snr
    for i in order:
        if snr[i] < floor:
            break
        near = np.abs(centres - centres[i])
        if np.any((near > 0) & (near < 6) & (snr > 0.05 * snr[i])):
            continue
        lo, hi = int(centres[i]) - window, int(centres[i]) + window + 1
        if lo < 0 or hi > npix or np.mean(ivar[lo:hi] > 0) < 0.9:
            continue
        ok.append((i, lo, hi))
    chosen = ok[:n_lines]
    third = np.zeros(len(ok), int)
    if vary and fixed_wing and ok:
        good = np.flatnonzero(ivar > 0)
        cuts = np.linspace(good[0], good[-1], 4)[1:3]
        third = np.searchsorted(cuts, [centres[i] for i, _, _ in ok])
        for part in range(3):   # the brightest few of each third too
            extra = [c for c, p in zip(ok, third, strict=True) if p == part][:3]
            chosen += [c for c in extra if c not in chosen]
    if len(chosen) < 2:
        return None
    if pooled and np.sqrt(np.sum(snr[[i for i, _, _ in chosen]] ** 2)) < min_snr:
        return None
    windows = []
    for i, lo, hi in chosen:
        others = np.flatnonzero((centres >= lo) & (centres < hi))
        windows.append((lo, hi, centres[others], centres[i]))
    chi2 = _WindowFits(flux, ivar, dlam, windows, half_width=window + 10, native=native)

    if vary and fixed_wing:
        eta, gamma = fixed_wing
        # every window's one-dimensional search at once (golden section to 2e-3 pixels)
        x, fun = _golden(lambda s: chi2(s, eta, gamma), 0.4, 4.0, len(windows), 2e-3)
        h = 0.02
        curv = (chi2(x + h, eta, gamma) + chi2(x - h, eta, gamma) - 2.0 * fun) / (h * h)
        keep = (x > 0.41) & (x < 3.99) & (curv > 0)
        where = np.array([c for _, _, _, c in windows])[keep]
        widths = x[keep]
        errs = list(np.sqrt(2.0 / curv[keep]))
        if len(widths) < 2:
            return None
        # statistical error plus a 1 % floor (the windows' own model is not perfect)
        wt = 1.0 / np.sqrt(np.array(errs) ** 2 + (0.01 * widths) ** 2)
        good = np.flatnonzero(ivar > 0)
        cuts = np.linspace(good[0], good[-1], 4)[1:3]
        parts = np.bincount(np.searchsorted(cuts, where), minlength=3)
        degree = min(int(np.sum(parts >= 2)) - 1, 2, widths.size - 2)
        t = 2.0 * where / max(npix - 1, 1) - 1.0
        if width_curve is not None:
            degree = min(degree, curve_degree)
        basis = np.column_stack([np.ones_like(t), t, 1.5 * t * t - 0.5])[:, :max(degree, 0) + 1]
        if width_curve is not None:
            basis = basis * _relative_width(width_curve, where)[:, None]
        use = np.ones(widths.size, bool)
        for _ in range(5):
            coef, *_ = np.linalg.lstsq(basis[use] * wt[use, None], widths[use] * wt[use],
                                       rcond=None)
            dev = (widths - basis @ coef) * wt
            mad = 1.4826 * np.median(np.abs(dev[use]))
            new = np.abs(dev) < 3.0 * max(mad, 1.0)
            if new.sum() < basis.shape[1] + 1 or np.array_equal(new, use):
                break
            use = new
        if details is not None:
            details.update(where=where, widths=widths, errs=np.array(errs), used=use)
        coef = np.concatenate([coef, np.zeros(3 - coef.size)])
        s1, s2 = (float(np.clip(v / coef[0], -0.2, 0.2)) for v in coef[1:])
        return (float(coef[0]), eta, gamma, s1, s2)

    def cost(theta):
        sigma, eta, gamma = (theta[0], *fixed_wing) if fixed_wing else theta
        if not (0.4 < sigma < 4 and 0 <= eta < 0.5 and 0.5 < gamma < 30):
            return 1e30
        return float(np.sum(chi2(np.full(len(windows), sigma), eta, gamma)))

    start = np.asarray(start, float)[:1 if fixed_wing else 3]
    res = minimize(cost, start, method="Nelder-Mead",
                   options={"xatol": 1e-3, "fatol": 1e-3, "maxfev": 200})
    if not np.isfinite(res.fun) or res.fun >= 1e30:
        return None
    if fixed_wing:
        return (float(res.x[0]), *fixed_wing)
    return tuple(float(v) for v in res.x)


__all__ = ["DEFAULT_LSF", "line_sigma", "disp_width", "fit_lsf"]
