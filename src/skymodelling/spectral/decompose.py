"""Separate emission lines from the continuum of one sky spectrum on a log-lambda grid.

Model: a cubic B-spline continuum (knots every ``knot_spacing`` pixels) plus a sum of
lines ``A_k P(u - u_k)`` with the instrument profile ``P`` of
:mod:`skymodelling.spectral.lsf` (Gaussian core + Lorentzian wing, shared by all lines
of the spectrum; the core width varies smoothly along the camera, :func:`line_sigma`).
The profile parameters come from the widths of the brightest isolated lines
(:func:`fit_lsf`); with them fixed, continuum coefficients and line fluxes are one
weighted linear least-squares problem (sparse columns, normal equations solved by a
banded Cholesky with the wide template columns as a border, :class:`_Normal`), lines
that come out negative are dropped and the fit repeated (those dropped in the first round,
which lacks the lines found later, are tried again in the second). Lines are fitted within
``fit_half_width`` pixels; their far wing is a fixed term from the fluxes of the
previous solve (updated and solved again in every round).

Line positions come from the data: peaks of the matched-filter signal-to-noise of
the data minus a first continuum, then peaks of the residual of each fit
(``iterations`` rounds). Lines with S/N above ``shift_sigma`` also get a column
d P / d u_k, whose coefficient moves their centre (one update per round), and a width
column d P / d sigma. Named lines (a bundled list with cited rest wavelengths) take the
found peak within ``match_pixels`` (or are added) at their catalogue position, moved to the
heliocentric grid by ``velocity``. In blends (another line within ``blend_pixels``) lines get
no width column and named lines no shift column (:func:`_free_columns`): otherwise a
wider or shifted named line takes the flux of an unresolved neighbour.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.interpolate import BSpline
from scipy.ndimage import median_filter, uniform_filter1d

from .banded import BandedNormal as _Normal
from .banded import Reweighted, WeightedBlock
from .banded import border_mask as _border
from .lsf import line_columns, native_sampling, pixel_profile, wing_matrix
from .profile import DEFAULT_LSF, disp_width, fit_lsf, line_sigma
from .resample import correlated_sum

log = logging.getLogger(__name__)

#: Key of the nightglow template's flux in :attr:`Decomposition.bands`.
NIGHTGLOW = "NIGHTGLOW"


@functools.cache
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_thread(func):
    """Run ``func`` with one BLAS/OpenMP thread.

    The solves are many small dense factorisations (blocks of a few tens of columns), for
    which a threaded BLAS only adds synchronisation: measured on 2 cores, a red mean
    spectrum took 484 ms with the default threads and 69 ms with one. Parallelism comes
    from decomposing spectra side by side (the executors), not from threads.
    """
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with _controller().limit(limits=1):
            return func(*args, **kwargs)

    return wrapper

#: FLAG bits of a decomposition.
NOFIT = 1        # too few good pixels: nothing fitted
LSF_DEFAULT = 2  # the profile search failed or had too few lines: default profile used
HIGHCHI2 = 4     # reduced chi-square above 2
MANYLINES = 8    # the line limit was reached

#: Speed of light, km/s.
C_KMS = 299792.458


@dataclass
class Decomposition:
    """Continuum and lines of one spectrum."""

    CONT: np.ndarray          # (npix,) continuum model
    LINES: np.ndarray         # (npix,) line model
    CONT_SMOOTH: np.ndarray   # (npix,) running median of data - LINES (masked: CONT)
    centre: np.ndarray        # (nlines,) line centres, pixels of the grid
    flux: np.ndarray          # (nlines,) line fluxes (flux density unit x Angstrom)
    flux_err: np.ndarray      # (nlines,) their errors
    found: np.ndarray         # (nlines,) bool: position found in the data
    name: np.ndarray          # (nlines,) str: named line ('' if none)
    named_cov: np.ndarray     # (nnamed, nnamed) covariance of the named lines' fluxes, in
                              # the order of the lines with name != '' (sorted by centre)
    lsf: tuple                # (sigma, eta, gamma) in pixels
    rchi2: float
    flag: int
    bands: dict = field(default_factory=dict)  # band name -> (flux, error) of its component
    group: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    # (nlines,) blend group of each line: 0 alone, k >= 1 the k-th chain (by centre) of
    # lines closer than ``blend_pixels`` to a neighbour, whose summed flux is measured
    # far better than its parts (their errors anti-correlate)
    group_err: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # (nlines,) error of the summed flux of the line's group (flux_err for lines alone)
    GLOW: np.ndarray | None = None
    # (npix,) the nightglow template's part of LINES (None when not fitted)

    def group_flux(self) -> np.ndarray:
        """(nlines,) summed flux of each line's blend group (its own flux when alone)."""
        tot = np.bincount(self.group, weights=self.flux, minlength=1)
        return np.where(self.group > 0, tot[self.group], self.flux)

    def named_flux(self, names) -> tuple[float, float]:
        """Summed flux and error of the lines called ``names`` (NaN if none fitted)."""
        sel = np.isin(self.name, list(names)) & (self.name != "")
        if not sel.any():
            return np.nan, np.nan
        sub = sel[self.name != ""]
        return (float(self.flux[sel].sum()),
                float(np.sqrt(max(self.named_cov[np.ix_(sub, sub)].sum(), 0.0))))


def _bspline_basis(npix: int, lo: int, hi: int, spacing: int, gaps=()) -> sp.csc_matrix:
    """Cubic B-spline basis on pixels ``lo..hi`` (zero outside), knots every ``spacing``
    pixels except strictly inside the pixel ranges ``gaps``.

    The spectra of one camera share their grid and mostly their good-pixel range, so the
    basis is kept for the last arguments seen (scipy's design matrix takes ~1 ms, a tenth
    of a fibre's decomposition); each call gets its own copy.
    """
    key = (int(npix), int(lo), int(hi), int(spacing),
           tuple((int(a), int(b)) for a, b in gaps))
    return _bspline_cached(*key).copy()


@functools.lru_cache(maxsize=32)
def _bspline_cached(npix: int, lo: int, hi: int, spacing: int, gaps: tuple) -> sp.csc_matrix:
    nseg = max(1, int(round((hi - lo) / spacing)))
    inner = np.linspace(lo - 0.5, hi + 0.5, nseg + 1)
    for a, b in gaps:
        keep = (inner <= a) | (inner >= b)
        keep[[0, -1]] = True
        inner = inner[keep]
    t = np.concatenate([[inner[0]] * 3, inner, [inner[-1]] * 3])
    u = np.clip(np.arange(npix, dtype=float), inner[0], inner[-1])
    basis = BSpline.design_matrix(u, t, 3).tocsc()
    outside = (np.arange(npix) < lo) | (np.arange(npix) > hi)
    if outside.any():
        basis = sp.diags((~outside).astype(float)) @ basis
    return basis.tocsc()


def _band_windows(loglam, lo, hi, cfg, velocity=0.0):
    """(name, first, last) pixel ranges of the configured emission bands on this grid
    (topocentric wavelengths moved to the grid's frame like the named lines)."""
    step = float(np.median(np.diff(loglam)))
    out = []
    for name, wlo, whi in cfg.bands:
        a, b = ((np.log10(np.array([wlo, whi]) / (1.0 + velocity / C_KMS)) - loglam[0]) / step)
        a, b = int(np.ceil(max(a, lo))), int(np.floor(min(b, hi)))
        if b - a >= 4 * cfg.band_knot_pixels + 4:
            out.append((name, a, b))
    return out


def _band_basis(npix, windows, spacing):
    """Columns of the band components: a cubic B-spline per window without its two end
    functions, so that each component vanishes at the window's ends; and the band index
    of every column."""
    cols, which = [], []
    for k, (_, a, b) in enumerate(windows):
        c = _bspline_basis(npix, a, b, spacing)[:, 1:-1]
        cols.append(c)
        which.append(np.full(c.shape[1], k))
    if not cols:
        return sp.csc_matrix((npix, 0)), np.zeros(0, int)
    return sp.hstack(cols).tocsc(), np.concatenate(which)


def _outside(pos, snr, windows):
    """Drop the peaks at ``pos`` (S/N ``snr``) inside the band windows."""
    keep = np.ones(pos.size, bool)
    for _, a, b in windows:
        keep &= (pos < a) | (pos > b)
    return pos[keep], snr[keep]


def _continuum_basis(loglam, lo, hi, cfg, velocity=0.0, gaps=(), arm="b"
                     ) -> tuple[sp.csc_matrix, int]:
    """Spline basis, plus the solar spectrum times a coarse spline when configured.

    The solar spectrum (scattered moonlight and sunlight reach us at rest in the
    topocentric frame, to ~1 km/s) is evaluated at the topocentric wavelengths of the
    heliocentric grid, grid x (1 + ``velocity`` / c), like the named lines.
    Returns the basis and the number of template columns (the last ones).
    """
    npix = loglam.size
    basis = _bspline_basis(npix, lo, hi, cfg.knot_spacing, gaps)
    if not cfg.solar_template:
        return basis, 0
    from ..sky.solar import solar_spectrum, solar_spectrum_kurucz

    topo = 10.0 ** loglam * (1.0 + velocity / C_KMS)
    template = (solar_spectrum_kurucz(topo) if arm in cfg.solar_kurucz
                else solar_spectrum(topo))
    template = template / np.median(template[lo:hi + 1])
    coarse = _bspline_basis(npix, lo, hi, cfg.template_knot_spacing)
    return sp.hstack([basis, sp.diags(template) @ coarse]).tocsc(), coarse.shape[1]


def nightglow_template(arm: str, wave) -> np.ndarray | None:
    """The nightglow forest template of ``arm`` at the vacuum topocentric wavelengths
    ``wave`` (linear interpolation; 0 outside the table), or None for an arm without one.

    The table (``data/nightglow_forest.csv``, columns WAVE, B, R) is the faint emission
    structure repeated in every exposure of real BOSS sky that our lines and continuum
    leave in the residual (docs/decompose.md, "The nightglow forest"), in arbitrary units.
    """
    table = _nightglow_table()
    column = table.get(arm.upper())
    if column is None:
        return None
    return np.interp(wave, table["WAVE"], column, left=0.0, right=0.0)


@functools.lru_cache(maxsize=1)
def _nightglow_table() -> dict[str, np.ndarray]:
    """The bundled template's columns (comment lines, a header line, then the values)."""
    from importlib import resources

    path = resources.files("skymodelling.data").joinpath("nightglow_forest.csv")
    with path.open("r") as fh:
        rows = [line for line in fh if not line.startswith("#")]
    data = np.loadtxt(rows[1:], delimiter=",", ndmin=2)
    return {name: data[:, k] for k, name in enumerate(rows[0].strip().split(","))}


def _nightglow_basis(loglam, lo, hi, cfg, velocity=0.0, arm="b") -> sp.csc_matrix:
    """The nightglow template times a linear spline (knots every ~``nightglow_knot_spacing``
    pixels), at the topocentric wavelengths like the solar template; no columns when the
    arm has none."""
    npix = loglam.size
    if arm not in cfg.nightglow:
        return sp.csc_matrix((npix, 0))
    topo = 10.0 ** loglam * (1.0 + velocity / C_KMS)
    template = nightglow_template(arm, topo)
    if template is None or not np.any(template[lo:hi + 1] > 0):
        return sp.csc_matrix((npix, 0))
    # the amplitude's sparsity pattern, zeros of the template kept as stored zeros: the
    # spectra of a camera then share the pattern (and its cached pair structure)
    glow = _hat_cached(npix, lo, hi, cfg.nightglow_knot_spacing).copy()
    glow.data = glow.data * template[glow.indices]
    return glow


@functools.lru_cache(maxsize=8)
def _hat_cached(npix: int, lo: int, hi: int, spacing: int) -> sp.csc_matrix:
    """Linear B-splines (hat functions) on pixels ``lo..hi`` with knots at ``lo``, ``hi``
    and every ``spacing`` pixels between (at least one interval): two non-zeros per pixel,
    zero outside."""
    n = max(1, int(round((hi - lo) / spacing)))
    knots = np.linspace(lo, hi, n + 1)
    u = np.arange(lo, hi + 1, dtype=float)
    k = np.minimum(np.searchsorted(knots, u, side="right") - 1, n - 1)
    frac = (u - knots[k]) / (knots[k + 1] - knots[k])
    rows = np.concatenate([u, u]).astype(int)
    cols = np.concatenate([k, k + 1])
    vals = np.concatenate([1.0 - frac, frac])
    return sp.csc_matrix((vals, (rows, cols)), shape=(npix, n + 1))


def _full_basis(loglam, lo, hi, cfg, velocity=0.0, arm="b"):
    """The continuum basis preceded by the band components' columns and followed by the
    nightglow template's.

    Returns (basis, nborder, nband, band_index, windows, nglow): the first ``nband``
    columns are the bands' (``band_index`` says which band), the last ``nborder`` the
    templates' (wide columns, the border of the banded solve), of which the last
    ``nglow`` are the nightglow template's (an airglow component: LINES, not CONT).
    """
    windows = _band_windows(loglam, lo, hi, cfg, velocity)
    cont, nborder = _continuum_basis(loglam, lo, hi, cfg, velocity,
                                     gaps=[(a, b) for _, a, b in windows], arm=arm)
    band, which = _band_basis(loglam.size, windows, cfg.band_knot_pixels)
    glow = _nightglow_basis(loglam, lo, hi, cfg, velocity, arm)
    return (sp.hstack([band, cont, glow]).tocsc(), nborder + glow.shape[1], band.shape[1],
            which, windows, glow.shape[1])


def _matched_snr(resid, w, sigma):
    """S/N of a line at every pixel from residual ``resid`` and weights ``w``."""
    k = pixel_profile(np.arange(-4, 5), sigma, 0.0, 1.0)
    num = np.convolve(resid * w, k[::-1], mode="same")
    den = np.convolve(w, (k * k)[::-1], mode="same")
    snr = np.zeros_like(resid)
    np.divide(num, np.sqrt(den), out=snr, where=den > 0)
    return snr


def _local_threshold(snr, w, base, window, lines=None, near=4.0):
    """Detection threshold per pixel: ``base`` times the local scale of the negative
    excursions of ``snr`` (1 for pure noise: E[min(x, 0)^2] = 1/2 for a unit Gaussian),
    never below ``base``.

    Emission lines make only positive excursions; a model that misses structure of either
    sign (a solar template coarser than the data's Fraunhofer lines, telluric absorption)
    makes both, and its peaks are then not taken for lines. Pixels within ``near`` of the
    centres ``lines`` of the current model are left out: a profile slightly different from
    the real one leaves troughs beside every bright line, which say nothing about the
    continuum model.
    """
    if window <= 1:
        return base
    valid = (w > 0).astype(float)
    if lines is not None and len(lines):
        srt = np.sort(np.asarray(lines, float))
        u = np.arange(snr.size)
        idx = np.searchsorted(srt, u)
        dist = np.minimum(np.abs(u - srt[np.clip(idx - 1, 0, srt.size - 1)]),
                          np.abs(srt[np.clip(idx, 0, srt.size - 1)] - u))
        valid[dist < near] = 0.0
    neg = np.minimum(snr, 0.0) ** 2 * valid
    num = np.maximum(uniform_filter1d(neg, window, mode="nearest"), 0.0)
    den = uniform_filter1d(valid, window, mode="nearest")
    scale = np.sqrt(2.0 * np.divide(num, den, out=np.zeros_like(num), where=den > 0.2))
    return base * np.maximum(scale, 1.0)


def _mad_threshold(z, w, base, window):
    """``base`` times the local robust scale of ``z`` (running median over ``window`` pixels
    of |z| / 0.6745 at the pixels of weight ``w`` > 0), never below ``base``. Given the
    weights of the previous clipping pass, the scale comes from the pixels taken as
    continuum there: a continuum model that misses structure of either sign (a template
    mismatch) leaves them many sigma off and raises it; lines, already clipped, do not."""
    if window <= 1:
        return base
    a = np.where(w > 0, np.abs(z), np.nan)
    good = np.isfinite(a)
    if not good.any():
        return base
    a[~good] = np.interp(np.flatnonzero(~good), np.flatnonzero(good), a[good])
    return base * np.maximum(median_filter(a, size=window, mode="nearest") / 0.6745, 1.0)


def _peaks(snr, resid, threshold, exclude, min_sep=2.0):
    """Sub-pixel positions and S/N of local maxima of ``snr`` above ``threshold`` (a number
    or one per pixel)."""
    s = snr
    threshold = np.broadcast_to(threshold, s.shape)[1:-1]
    cand = np.flatnonzero((s[1:-1] > threshold) & (s[1:-1] >= s[:-2]) & (s[1:-1] > s[2:])) + 1
    if cand.size == 0:
        return np.zeros(0), np.zeros(0)
    r0, rm, rp = resid[cand], resid[cand - 1], resid[cand + 1]
    den = rm - 2 * r0 + rp
    delta = np.zeros(cand.size)
    np.divide(0.5 * (rm - rp), den, out=delta, where=den < 0)
    pos = cand + np.clip(delta, -0.5, 0.5)
    if exclude.size:
        dist = np.abs(pos[:, None] - exclude[None, :]).min(axis=1)
        keep = dist >= min_sep
        pos, cand = pos[keep], cand[keep]
    return pos, s[cand]


def _final_fit(y, w, basis, nborder, dlam, centres, shift, lsf, half_width, *, width=True,
               want_cov=True, named=None, width_curve=None, native=None):
    """Fit with fixed line positions: coefficients and the lines' flux variances and the
    covariance of the lines ``named`` (bool), or (coefficients, chi-square)."""
    cols = line_columns(centres, y.size, dlam,
                        sigma=line_sigma(lsf, centres, y.size, width_curve),
                        eta=lsf[1], gamma=lsf[2], half_width=half_width, derivative=shift,
                        width_derivative=width, native=native)
    design = sp.hstack([basis, cols]).tocsc()
    system = _Normal(design, y, w, _border(design.shape[1], basis.shape[1], nborder))
    ncont, nl = basis.shape[1], centres.size
    if not want_cov:
        coef = system.solve()[0]
        return coef, float(np.sum((y - design @ coef) ** 2 * w))
    named = np.zeros(nl, bool) if named is None else named
    coef, var, cov = system.solve(var=ncont + np.arange(nl),
                                  cov=ncont + np.flatnonzero(named))
    return coef, var, cov, cols


@_one_thread
def fit_profile(loglam, flux, ivar, *, arm: str, config=None, named=None, velocity=0.0,
                etas=(0.0, 0.02, 0.04, 0.06, 0.09), gammas=(1.5, 2.2, 3.2, 5.0),
                width_curve=None, native_wave=None) -> tuple:
    """The line profile (sigma, eta, gamma) of a spectrum, in pixels.

    The core width comes from the brightest isolated lines (:func:`fit_lsf`); the
    wing (fraction ``eta``, HWHM ``gamma``), which a local fit cannot tell from the
    continuum, from the chi-square of the whole-spectrum fit over a grid of
    ``etas`` x ``gammas`` with the lines found by a first decomposition; then the
    core width again with the chosen wing. With ``fit_wing`` false (the default) the
    wing is the configured one and only the core width is fitted. Meant to run once
    per camera on a bright spectrum and be passed as ``lsf`` to :func:`decompose_spectrum` for all.
    ``width_curve``: the instrument's width along the grid (:func:`disp_width`), whose shape
    the core width then follows (only its scale is fitted, :func:`fit_lsf`).
    ``native_wave``: the native pixels the spectrum was resampled from
    (:func:`decompose_spectrum`).
    """
    from ..config import DecomposeConfig

    cfg = config or DecomposeConfig()
    if not cfg.fit_wing:
        # the core width is fitted on the first continuum's peaks, before the search rounds
        return _decompose(loglam, flux, ivar, arm=arm, config=cfg, named=named,
                          velocity=velocity, width_curve=width_curve, native_wave=native_wave,
                          profile_only=True)
    first = decompose_spectrum(loglam, flux, ivar, arm=arm, config=cfg, named=named,
                               velocity=velocity, width_curve=width_curve,
                               native_wave=native_wave)
    if first.flag & (NOFIT | LSF_DEFAULT):
        return first.lsf, first.flag & (NOFIT | LSF_DEFAULT)
    y, w, dlam, (basis, nborder) = _prepare(loglam, flux, ivar, cfg, velocity, arm)
    native = None if native_wave is None else native_sampling(native_wave, loglam)
    snr = first.flux / np.maximum(first.flux_err, 1e-30)
    shift = snr > cfg.shift_sigma
    sigma = first.lsf[0]
    best = (np.inf, first.lsf)
    for eta in etas:
        for gamma in gammas:
            _, chi2 = _final_fit(y, w, basis, nborder, dlam, first.centre, shift,
                                 (sigma, eta, gamma), cfg.half_width, want_cov=False,
                                 width_curve=width_curve, native=native)
            if chi2 < best[0]:
                best = (chi2, (sigma, eta, gamma))
    _, eta, gamma = best[1][:3]
    good = w > 0
    again = fit_lsf(y, w, dlam, first.centre, snr, start=(sigma,), n_lines=cfg.lsf_lines,
                    min_snr=cfg.lsf_snr, scale_snr=cfg.lsf_scale_snr,
                    fixed_wing=(eta, gamma), width_curve=width_curve, native=native)
    return (again or (sigma, eta, gamma)), (0 if good.any() else NOFIT)


def _prepare(loglam, flux, ivar, cfg, velocity=0.0, arm="b"):
    loglam = np.asarray(loglam, dtype=float)
    flux = np.asarray(flux, dtype=float)
    ivar = np.asarray(ivar, dtype=float)
    good = (ivar > 0) & np.isfinite(flux) & np.isfinite(ivar)
    step = float(np.median(np.diff(loglam)))
    edges = np.concatenate([[loglam[0] - step / 2], 0.5 * (loglam[1:] + loglam[:-1]),
                            [loglam[-1] + step / 2]])
    gidx = np.flatnonzero(good)
    basis = (_full_basis(loglam, int(gidx[0]), int(gidx[-1]), cfg, velocity, arm)[:2]
             if gidx.size else None)
    return np.where(good, flux, 0.0), np.where(good, ivar, 0.0), np.diff(10.0 ** edges), basis


def _free_columns(centres, csnr, names, cfg):
    """Which lines get a shift column and which a width column.

    Bright lines (S/N > ``shift_sigma``) get both, except in blends (another line
    closer than ``blend_pixels``): there a width change is degenerate with the
    neighbours' fluxes, so blended lines get no width column, and blended named lines
    keep their catalogue position (no shift column).
    """
    bright = csnr > cfg.shift_sigma
    if centres.size > 1:
        order = np.argsort(centres)
        gaps = np.diff(centres[order])
        near = np.empty(centres.size)
        near[order] = np.minimum(np.append(np.inf, gaps), np.append(gaps, np.inf))
    else:
        near = np.full(centres.size, np.inf)
    blended = near < cfg.blend_pixels
    return bright & ~(blended & (names != "")), bright & ~blended


def blend_groups(centres, pixels: float) -> np.ndarray:
    """Blend group of each line: chains of lines whose neighbours are closer than ``pixels``.

    Returns an int array (same order as ``centres``): 0 for a line with no neighbour
    within ``pixels``, k >= 1 for the members of the k-th chain in order of wavelength.

    >>> blend_groups(np.array([10.0, 30.0, 11.5, 13.0, 50.0, 52.0]), 3.0).tolist()
    [1, 0, 1, 1, 2, 2]
    """
    centres = np.asarray(centres, dtype=float)
    gid = np.zeros(centres.size, int)
    if centres.size < 2:
        return gid
    order = np.argsort(centres)
    run = np.cumsum(np.concatenate([[True], np.diff(centres[order]) >= pixels]))
    multi = np.bincount(run)[run] > 1
    ids = np.unique(run[multi])
    remap = np.zeros(run.max() + 1, int)
    remap[ids] = np.arange(1, ids.size + 1)
    gid[order] = np.where(multi, remap[run], 0)
    return gid


def _first_peaks(y, w, basis, cborder, ncont, nglow, windows, sigma0, arm, cfg):
    """Centres and S/N of the peaks above a first continuum: a spline fit with the pixels
    far above it (lines) given no weight, clipped until nothing changes."""
    wc = w.copy()
    adaptive = arm in cfg.adaptive_clip
    # (without the nightglow template: its amplitude is set by the faint features that
    # the clipping decides about; it joins in the fits with lines below)
    first = basis[:, :ncont - nglow] if nglow else basis
    passes = Reweighted(first, cborder[:ncont - nglow])
    for npass in range(6):
        coef = passes.system(y, wc).solve()[0]
        cont = first @ coef
        z = (y - cont) * np.sqrt(w)
        # (the first pass clips at 2.5: an unclipped fit is pulled up by the lines, and
        # its residual scale says nothing about the continuum model)
        new = np.where(z > (_mad_threshold(z, wc, 2.5, cfg.systematics_window)
                            if adaptive and npass > 0 else 2.5), 0.0, w)
        if np.array_equal(new, wc) and (npass > 0 or not adaptive):
            break       # a fixed point: the further passes would repeat this one exactly
        wc = new
    resid = y - cont
    snr = _matched_snr(resid, w, sigma0)
    return _outside(*_peaks(snr, resid,
                            _local_threshold(snr, w, cfg.detect_sigma, cfg.systematics_window),
                            np.zeros(0)), windows)


@_one_thread
def decompose_spectrum(loglam, flux, ivar, *, arm: str, config=None, named=None,
                       lsf=None, velocity: float = 0.0, width_curve=None,
                       native_wave=None, seeds=None, noise_corr=None) -> Decomposition:
    """Continuum and emission lines of one spectrum (pure: arrays in, arrays out).

    Parameters
    ----------
    loglam : array_like (npix,)
        log10 wavelength centres (uniform step).
    flux, ivar : array_like (npix,)
        Flux density and inverse variance (0 = masked).
    arm : {"b", "r"}
        Camera arm (default profile when it cannot be fitted).
    config : DecomposeConfig
    named : astropy Table, optional
        Named lines (NAME, WAVE vacuum Angstrom) to identify.
    lsf : tuple, optional
        Fixed (sigma, eta, gamma) in pixels; default: fitted (or the config's).
    velocity : float
        Heliocentric correction (km/s, BOSS ``HELIO_RV``) of a heliocentric grid: the
        named lines (topocentric rest wavelengths) are placed at WAVE / (1 + v / c).
    width_curve : array_like (npix,), optional
        The instrument's core width along the grid (pixels, :func:`disp_width` of the mean
        DISP): the line widths follow its shape, ``lsf[0]`` being their mean
        (:func:`line_sigma`); when the profile is fitted, only its scale is.
    native_wave : array_like (nnative,), optional
        Centres (A, the grid's frame) of the native pixels the spectrum was resampled from
        (flux-conserving, :func:`skymodelling.spectral.resample.resample_flux`): the line
        profiles are then integrated over those pixels and spread onto the grid as the
        resampling did (:func:`skymodelling.spectral.lsf.native_sampling`; the core width
        is then the instrument's, without the pixel boxes). None: integrated over the grid
        pixels, with the boxes in the fitted width (a mean of many fibres, whose native
        pixels fall at every phase of the grid's).
    seeds : array_like, optional
        Centres (fractional pixels of the grid) of lines known to be in this spectrum: the
        lines found in a deeper spectrum of the same sky: the stack of a camera's spectra
        (``stack_seeds``) or the mean of a fibre's exposure and camera (``fibre_seeds``;
        docs/decompose.md "Seeds"). Used with a given
        ``lsf`` (ignored when the profile is fitted here, which needs the first continuum's
        peaks): the first round fits them instead of the peaks above a first continuum,
        a seeded line is kept when its amplitude comes out negative (a line of the brighter
        spectrum measured, not rejected, in a noisier one: its continuum is not biased by
        the faint lines that fall below a detection threshold), and ``seed_iterations``
        rounds of line search follow instead of ``iterations``.
    noise_corr : array_like (2, npix), optional
        Correlation of each pixel's noise with the next pixel's and the one after
        (``resample_flux(..., correlation=True)``: resampled pixels share native ones).
        The fit's weights stay ``ivar``; the errors of the fluxes, of the groups' sums,
        of the bands and of the nightglow are those of sums over correlated pixels
        (:func:`correlated_noise_factor`). None: independent pixels.

    Returns
    -------
    Decomposition

    Examples
    --------
    >>> from skymodelling.spectral.lsf import pixel_profile
    >>> loglam = 3.6 + 1e-4 * np.arange(600)
    >>> dlam = 10 ** loglam * np.log(10) * 1e-4
    >>> flux = 5.0 + 300.0 * pixel_profile(np.arange(600) - 300.3, 1.1, 0.04, 3.5) / dlam
    >>> d = decompose_spectrum(loglam, flux, np.full(600, 100.0), arm="b",
    ...                        lsf=(1.1, 0.04, 3.5))
    >>> round(float(d.flux[np.argmax(d.flux)]), 1)
    300.0
    """
    return _decompose(loglam, flux, ivar, arm=arm, config=config, named=named, lsf=lsf,
                      velocity=velocity, width_curve=width_curve, native_wave=native_wave,
                      seeds=seeds, noise_corr=noise_corr)


def _correlated_errors(corr, w, profiles, basis, coef, ncont, nband, nglow, named, gid,
                       var, cov, gvar):
    """The final fit's variances for correlated pixels (:func:`correlated_noise_factor`):
    each line's from its profile column, each group's the mean of its members', each
    band's and the nightglow's from its component's model (all bands: the sum of theirs);
    ``cov`` (rows: named lines, bands' coefficients, nightglow's) scaled by the factors of
    its rows and columns."""
    corr = np.asarray(corr, dtype=float)
    f_line = correlated_noise_factor(profiles, w, corr)
    var = var * f_line ** 2
    if gvar.size:
        # a group's members overlap: their factors, which follow the pixels' correlation
        # along the camera, are alike; the group takes their mean
        member = gid > 0
        n = np.bincount(gid[member] - 1, minlength=gvar.size)
        fsum = np.bincount(gid[member] - 1, f_line[member], minlength=gvar.size)
        gvar = gvar * np.where(n > 0, fsum / np.maximum(n, 1), 1.0) ** 2
    comps = []
    if nband:
        comps.append(np.asarray(basis[:, :nband] @ coef[:nband]).ravel())
    if nglow:
        comps.append(np.asarray(basis[:, ncont - nglow:ncont]
                                @ coef[ncont - nglow:ncont]).ravel())
    f_comp = (correlated_noise_factor(np.column_stack(comps), w, corr) if comps
              else np.zeros(0))
    f_cov = np.concatenate([f_line[named], np.full(nband, f_comp[0] if nband else 1.0),
                            np.full(nglow, f_comp[-1] if nglow else 1.0)])
    cov = cov * f_cov[:, None] * f_cov[None, :]
    return var, cov, gvar


def correlated_noise_factor(columns, ivar, corr) -> np.ndarray:
    """How much a least-squares amplitude's error grows when the pixels' noise correlates.

    For a column ``x`` fitted with weights ``w = ivar``, the amplitude's variance with
    independent pixels is ``1 / sum(x^2 w)``; with the noise of pixels j and j + L
    correlated by ``corr[L - 1, j]`` (covariance ``corr / sqrt(w_j w_j+L)``) it is that
    times ``f^2 = 1 + 2 sum_L sum_j x_j x_j+L sqrt(w_j w_j+L) corr[L - 1, j] / sum(x^2 w)``.
    Returns ``f`` per column (1 for a column without weight). Used for the errors of a
    joint fit, whose estimators are close to their own columns' for lines and smooth
    components (the errors of real fibres' lines: RESULTS.md, "realsky").

    Parameters
    ----------
    columns : scipy.sparse matrix or ndarray (npix, ncol)
    ivar : array_like (npix,)
    corr : array_like (nlag, npix)

    Examples
    --------
    >>> x = np.ones((10, 1))                    # a flat column over 10 pixels
    >>> corr = np.zeros((2, 10)); corr[0, :9] = 0.25
    >>> round(float(correlated_noise_factor(x, np.ones(10), corr)[0]), 4)   # 1 + 2 * 9 / 40
    1.2042
    """
    corr = np.asarray(corr, dtype=float)
    sw = np.sqrt(np.clip(np.asarray(ivar, dtype=float), 0.0, None))
    if sp.issparse(columns):
        x = sp.csc_matrix(columns)
        x.sort_indices()
        ncol = x.shape[1]
        r = x.indices
        d = x.data * sw[r]
        col = np.repeat(np.arange(ncol), np.diff(x.indptr))
        den = np.bincount(col, d * d, minlength=ncol)
        num = den.copy()
        # neighbours j, j + L of a column: entries o = 1 or 2 apart in its sorted rows
        for lag in range(1, corr.shape[0] + 1):
            for o in range(1, lag + 1):
                if d.size <= o:
                    continue
                m = (col[:-o] == col[o:]) & (r[o:] - r[:-o] == lag)
                num += 2.0 * np.bincount(col[:-o][m],
                                         (d[:-o] * d[o:] * corr[lag - 1, r[:-o]])[m],
                                         minlength=ncol)
    else:
        xs = np.asarray(columns, dtype=float).T * sw       # (ncol, npix)
        den = np.sum(xs * xs, axis=1)
        num = den + 2.0 * correlated_sum(xs, corr)
    ratio = np.ones_like(den)
    np.divide(num, den, out=ratio, where=den > 0)
    return np.sqrt(np.clip(ratio, 1e-12, None))


def _decompose(loglam, flux, ivar, *, arm, config=None, named=None, lsf=None, velocity=0.0,
               width_curve=None, native_wave=None, seeds=None, profile_only=False,
               noise_corr=None):
    """:func:`decompose_spectrum`; with ``profile_only`` it returns, as soon as the profile
    is fitted (or given), ``(lsf, flag)`` (flag NOFIT or LSF_DEFAULT, else 0): the rounds
    that follow do not change it."""
    from ..config import DecomposeConfig

    cfg = config or DecomposeConfig()
    loglam = np.asarray(loglam, dtype=float)
    flux = np.asarray(flux, dtype=float)
    ivar = np.asarray(ivar, dtype=float)
    npix = flux.size
    good = (ivar > 0) & np.isfinite(flux) & np.isfinite(ivar)
    w = np.where(good, ivar, 0.0)
    y = np.where(good, flux, 0.0)
    step = float(np.median(np.diff(loglam)))
    edges = np.concatenate([[loglam[0] - step / 2], 0.5 * (loglam[1:] + loglam[:-1]),
                            [loglam[-1] + step / 2]])
    dlam = np.diff(10.0 ** edges)
    native = None if native_wave is None else native_sampling(native_wave, loglam)
    empty = np.zeros(0)
    if good.sum() < max(50, 4 * cfg.knot_spacing):
        if profile_only:
            return (np.nan,) * 3, NOFIT
        z = np.zeros(npix)
        return Decomposition(z, z.copy(), z.copy(), empty, empty, empty, empty.astype(bool),
                             empty.astype(str), np.zeros((0, 0)), (np.nan,) * 3, np.nan, NOFIT)
    flag = 0
    gidx = np.flatnonzero(good)
    basis, nborder, nband, band_of, windows, nglow = _full_basis(
        loglam, int(gidx[0]), int(gidx[-1]), cfg, velocity, arm)
    ncont = basis.shape[1]
    cborder = _border(ncont, ncont, nborder)

    sigma0 = lsf[0] if lsf else (cfg.lsf_sigma or DEFAULT_LSF[arm][0])
    seeded = seeds is not None and (lsf is not None or cfg.lsf_sigma is not None)
    if seeded:
        # the lines of a brighter spectrum of the same sky, on good pixels of this one and
        # outside the band windows; their S/N here comes from the first round's fit
        centres = np.unique(np.asarray(seeds, dtype=float))
        centres = centres[(centres >= gidx[0] + 2) & (centres <= gidx[-1] - 2)]
        centres = centres[good[np.rint(centres).astype(int)]]
        centres, csnr = _outside(centres, np.zeros(centres.size), windows)
    else:
        centres, csnr = _first_peaks(y, w, basis, cborder, ncont, nglow, windows, sigma0,
                                     arm, cfg)
    names = np.full(centres.size, "", dtype=object)
    found = np.ones(centres.size, bool)
    keep = np.full(centres.size, seeded)   # kept whatever the sign of their amplitude
    home = {}    # catalogue positions of the named lines
    if named is not None and len(named):
        # catalogue (topocentric) wavelengths in the grid's heliocentric frame
        u_named = (np.log10(np.asarray(named["WAVE"], float) / (1.0 + velocity / C_KMS))
                   - loglam[0]) / step
        inside = (u_named >= gidx[0] + 2) & (u_named <= gidx[-1] - 2)
        masked = np.array([not (ok and good[int(round(un))])
                           for ok, un in zip(inside, u_named, strict=True)], dtype=bool)
        # a named line blended with a masked one (within blend_pixels) is not fitted either:
        # it would take the masked line's flux from the pixels beside its core
        lost = masked & inside
        near_lost = (np.abs(u_named[:, None] - u_named[lost][None, :])
                     <= cfg.blend_pixels).any(axis=1) if lost.any() else np.zeros_like(masked)
        for nm, un, skip in zip(np.asarray(named["NAME"]).astype(str), u_named,
                                masked | near_lost, strict=True):
            if skip:
                continue
            d = np.abs(centres - un) if centres.size else np.zeros(0)
            free = d.size and np.any((d <= cfg.match_pixels) & (names == ""))
            if free:
                # the peak is this line: it keeps the catalogue position (a peak of a
                # blend is pulled towards its neighbours), the shift column refines it
                # when the line is isolated and bright
                j = int(np.argmin(np.where(names == "", d, np.inf)))
                names[j], centres[j] = nm, un
                home[nm] = un
            else:
                centres = np.append(centres, un)
                csnr = np.append(csnr, 0.0)
                names = np.append(names, nm)
                found = np.append(found, False)
                keep = np.append(keep, False)
                home[nm] = un

    def at_home(centres, csnr, names):
        """Named lines without a shift column (faint, or blended now, maybe because a
        neighbour was found after their centre was refined) at their catalogue position."""
        shift, _ = _free_columns(centres, csnr, names, cfg)
        back = np.flatnonzero((names != "") & ~shift)
        centres = centres.copy()
        centres[back] = [home[n] for n in names[back]]
        return centres

    # the line profile
    if lsf is None and cfg.lsf_sigma is not None:
        lsf = (cfg.lsf_sigma, cfg.lsf_eta, cfg.lsf_gamma)
    if lsf is None:
        wing = cfg.wing_blue if arm == "b" else cfg.wing_red
        start = (sigma0, *wing)
        lsf = fit_lsf(y, w, dlam, centres, csnr, start=start, n_lines=cfg.lsf_lines,
                      fixed_wing=None if cfg.fit_wing else wing, width_curve=width_curve,
                      min_snr=cfg.lsf_snr, scale_snr=cfg.lsf_scale_snr, native=native)
        if lsf is None:
            lsf, flag = DEFAULT_LSF[arm], flag | LSF_DEFAULT
    if profile_only:
        return tuple(float(v) for v in lsf), flag
    sigma, eta, gamma = lsf[:3]
    # lines are fitted within fit_half_width pixels; their profile beyond (the Lorentzian
    # wing) is a fixed term computed from the previous fluxes ``prev``
    inner = min(cfg.fit_half_width, cfg.half_width)

    def wings(c):
        """The far wings of the lines at ``c`` as an operator on their fluxes (built once
        per set of centres: the fits of a round evaluate it with several)."""
        return wing_matrix(c, npix, dlam, sigma=line_sigma(lsf, c, npix, width_curve), eta=eta,
                           gamma=gamma, inner=inner, half_width=cfg.half_width)

    prev = np.zeros(centres.size)
    # the continuum's weighted columns and normal matrix, shared by every fit below
    cont_block = WeightedBlock(basis, w)
    rounds = cfg.seed_iterations if seeded else cfg.iterations
    for it in range(rounds + 1):
        if centres.size > cfg.max_lines:
            top = np.argsort(-np.where(names != "", np.inf, csnr))[:cfg.max_lines]
            top.sort()
            centres, csnr, names, found = centres[top], csnr[top], names[top], found[top]
            prev, keep = prev[top], keep[top]
            flag |= MANYLINES
        # columns and normal matrix once per round, for every line and (bright lines)
        # their shift and width columns; each attempt solves a principal sub-system
        centres = at_home(centres, csnr, names)
        bright = csnr > cfg.shift_sigma
        nl0, nbr = centres.size, int(bright.sum())
        rank = np.cumsum(bright) - 1
        allcols = line_columns(centres, npix, dlam,
                               sigma=line_sigma(lsf, centres, npix, width_curve),
                               eta=eta, gamma=gamma,
                               half_width=inner, derivative=bright,
                               width_derivative=bright, native=native)
        ndesign = ncont + allcols.shape[1]
        wmat = wings(centres)
        system = _Normal.extend(cont_block, allcols, y - wmat @ prev,
                                _border(ndesign, ncont, nborder))
        alive = np.arange(nl0)
        for attempt in range(6):   # drop lines that come out negative
            shift, width = _free_columns(centres[alive], csnr[alive], names[alive], cfg)
            sel = np.concatenate([np.arange(ncont), ncont + alive,
                                  ncont + nl0 + rank[alive[shift]],
                                  ncont + nl0 + nbr + rank[alive[width]]])
            coef = system.solve(sel)[0]
            amp = coef[ncont:ncont + alive.size]
            neg = (amp <= 0) & (names[alive] == "") & ~keep[alive]
            # always leave the loop right after a solve, so that shift, coef and
            # the line arrays describe the same set of lines
            if not neg.any() or attempt == 5:
                break
            alive = alive[~neg]
        # lines dropped in the first round are tried again in the second: a negative
        # amplitude in a model that still lacks the lines found in its residual is no
        # evidence against a detected line (a bright line without its neighbours is fitted
        # wider and takes a faint line next to it, whose flux then goes to the continuum)
        gone = np.setdiff1d(np.arange(nl0), alive) if it == 0 else np.zeros(0, int)
        retry, retry_snr = centres[gone], csnr[gone]
        walive = wmat[:, alive]
        if inner < cfg.half_width:
            # once more with the wings of this round's fluxes
            system.set_data(y - walive @ amp)
            coef = system.solve(sel)[0]
            amp = coef[ncont:ncont + alive.size]
        centres, csnr, names, found = centres[alive], csnr[alive], names[alive], found[alive]
        keep = keep[alive]
        prev = amp.copy()
        full = np.zeros(ndesign)
        full[sel] = coef
        model = basis @ full[:ncont] + allcols @ full[ncont:] + walive @ prev
        # refine the centres of bright lines by their shift coefficient
        nsh = int(shift.sum())
        if nsh:
            first = ncont + centres.size
            dshift = coef[first:first + nsh] / np.where(amp[shift] > 0, amp[shift], np.inf)
            centres[shift] += np.clip(dshift, -1.0, 1.0)
        if it == rounds:
            break
        resid = y - model
        snr = _matched_snr(resid, w, sigma)
        new, nsnr = _outside(*_peaks(snr, resid,
                                     _local_threshold(snr, w, cfg.detect_sigma,
                                                      cfg.systematics_window),
                                     centres, cfg.min_separation), windows)
        if retry.size:
            near = np.abs(retry[:, None] - np.concatenate([centres, new])[None, :])
            back = near.min(axis=1, initial=np.inf) >= cfg.min_separation
            new, nsnr = np.append(new, retry[back]), np.append(nsnr, retry_snr[back])
        # S/N of the existing lines from this fit (ignoring correlations: cheap)
        prof = allcols[:, alive]
        info = np.bincount(np.repeat(np.arange(alive.size), np.diff(prof.indptr)),
                           prof.data ** 2 * w[prof.indices], minlength=alive.size)
        csnr = amp * np.sqrt(info)
        if new.size == 0 and not nsh:
            break
        centres = np.append(centres, new)
        csnr = np.append(csnr, nsnr)
        names = np.append(names, np.full(new.size, "", dtype=object))
        found = np.append(found, np.ones(new.size, bool))
        keep = np.append(keep, np.zeros(new.size, bool))
        prev = np.append(prev, np.zeros(new.size))

    # final solution with the refined centres; the shift and width columns of bright
    # lines stay (they carry no flux: their profiles integrate to zero). Solved twice when
    # the wings are a fixed term: the second time with the wings of this fit's fluxes
    # (lines found in the last round have none before)
    centres = at_home(centres, csnr, names)
    shift, width = _free_columns(centres, csnr, names, cfg)
    nl = centres.size
    cols = line_columns(centres, npix, dlam,
                        sigma=line_sigma(lsf, centres, npix, width_curve), eta=eta,
                        gamma=gamma, half_width=inner, derivative=shift,
                        width_derivative=width, native=native)
    ndesign = ncont + cols.shape[1]
    wmat = wings(centres)
    outer = wmat @ prev
    system = _Normal.extend(cont_block, cols, y - outer,
                            _border(ndesign, ncont, nborder))
    if inner < cfg.half_width:
        outer = wmat @ system.solve()[0][ncont:ncont + nl]
        system.set_data(y - outer)
    named_idx = ncont + np.flatnonzero(names != "")
    gid = blend_groups(centres, cfg.blend_pixels)
    # the members of each group (1, 2, ...) as design columns
    counts = np.bincount(gid, minlength=1)
    members = ncont + np.argsort(gid, kind="stable")[counts[0]:]
    glow_idx = np.arange(ncont - nglow, ncont)
    coef, var, cov, gvar = system.solve(
        var=ncont + np.arange(nl),
        cov=np.concatenate([named_idx, np.arange(nband), glow_idx]),
        sums=np.split(members, np.cumsum(counts[1:])[:-1]) if counts.size > 1 else [])
    nnamed = named_idx.size
    if noise_corr is not None:
        var, cov, gvar = _correlated_errors(noise_corr, w, cols[:, :nl], basis, coef,
                                            ncont, nband, nglow, named_idx - ncont, gid,
                                            var, cov, gvar)
    amp = coef[ncont:ncont + nl]
    cont = basis[:, nband:ncont - nglow] @ coef[nband:ncont - nglow]
    band = basis[:, :nband] @ coef[:nband]
    glow = basis[:, ncont - nglow:ncont] @ coef[ncont - nglow:ncont]
    lines = cols @ coef[ncont:] + outer + band + glow
    # band fluxes: integrals of their components, errors from the coefficients' covariance
    integral = np.asarray(basis[:, :nband].T @ dlam).ravel()
    bcov = cov[nnamed:nnamed + nband, nnamed:nnamed + nband]
    bands = {}
    for k, (bname, _, _) in enumerate(windows):
        g = np.where(band_of == k, integral, 0.0)
        bands[bname] = (float(g @ coef[:nband]), float(np.sqrt(max(g @ bcov @ g, 0.0))))
    if nglow:
        g = np.asarray(basis[:, ncont - nglow:ncont].T @ dlam).ravel()
        gcov = cov[nnamed + nband:, nnamed + nband:]
        bands[NIGHTGLOW] = (float(g @ coef[ncont - nglow:ncont]),
                            float(np.sqrt(max(g @ gcov @ g, 0.0))))
    cov = cov[:nnamed, :nnamed]
    model = cont + lines
    ncol = coef.size
    chi2 = float(np.sum((y - model) ** 2 * w))
    dof = max(int(good.sum()) - ncol, 1)
    rchi2 = chi2 / dof
    if rchi2 > 2:
        flag |= HIGHCHI2
    filled = np.where(good, y - lines, cont)
    smooth = median_filter(filled, size=cfg.smooth_pixels, mode="nearest")
    span = np.zeros(npix, bool)
    span[gidx[0]:gidx[-1] + 1] = True
    order = np.argsort(centres)
    group_err = np.sqrt(np.maximum(var, 0.0))
    inside = gid > 0
    group_err[inside] = np.sqrt(np.maximum(gvar[gid[inside] - 1], 0.0))
    # the named lines' covariance rows follow the named lines in centre order
    nord = np.argsort(centres[names != ""])
    return Decomposition(
        CONT=np.where(span, cont, 0.0), LINES=np.where(span, lines, 0.0),
        CONT_SMOOTH=np.where(span, smooth, 0.0), centre=centres[order], flux=amp[order],
        flux_err=np.sqrt(np.maximum(var, 0.0))[order], found=found[order],
        name=names[order].astype(str), named_cov=cov[np.ix_(nord, nord)],
        lsf=tuple(float(v) for v in lsf), rchi2=rchi2, flag=flag, bands=bands,
        group=gid[order], group_err=group_err[order],
        GLOW=np.where(span, glow, 0.0) if nglow else None)


__all__ = ["decompose_spectrum", "fit_profile", "correlated_noise_factor", "blend_groups",
           "fit_lsf", "line_sigma", "disp_width", "nightglow_template", "NIGHTGLOW",
           "Decomposition", "NOFIT",
           "LSF_DEFAULT", "HIGHCHI2", "MANYLINES", "DEFAULT_LSF"]
