"""Line strengths and continuum levels of many sky spectra at once.

All functions take the spectra of one camera as 2-D arrays ``(nspec, npix)``
(each row on its own increasing wavelength grid, as BOSS fibres have) and
return one value per spectrum.  Work is restricted to the few pixel columns
around each feature, so the cost is independent of the spectrum length.

Two families of measures:

* the original analysis's raw measures: the sum of the flux over the nearest
  pixel +/- 5 pixels of a line, and the mean over the nearest pixel +/- 1 of a
  continuum point (no continuum subtraction, no masking, no error);
* proper measures: the continuum-subtracted integrated line flux over a window,
  with the continuum from two sidebands, and its 1-sigma error from the inverse
  variance; continuum-band means with errors.  A measure touching a masked
  pixel (IVAR = 0) is NaN and flagged.
"""
from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import numpy as np
from astropy.table import Table

from ..errors import SkyModellingError
from .resample import correlated_sum

#: Flag bits of a feature measurement.
NOT_COVERED = 1      # the window or a sideband falls outside the spectrum
MASKED = 2           # a pixel of the window or sidebands is masked (IVAR = 0)


def load_features(path=None) -> Table:
    """The feature list: the bundled ``data/sky_features.csv`` or a user file.

    Required columns: NAME, KIND (``line`` or ``continuum``), CAMERA (``b`` or
    ``r``), WAVE (vacuum A), HALF_WIDTH (A); lines also need SIDE_INNER and
    SIDE_OUTER (A from WAVE).
    """
    if path is None:
        source = resources.files("skymodelling.data").joinpath("sky_features.csv")
        with resources.as_file(source) as p:
            return _cached_features(p)
    return _cached_features(Path(path))


def _cached_features(path: Path) -> Table:
    try:
        st = path.stat()
    except OSError as exc:
        raise SkyModellingError(f"{path}: cannot read the feature list ({exc})") from exc
    return _read_features(path, st.st_size, st.st_mtime_ns)   # an edited file is read anew


#: Columns :func:`decomposition_lines` needs (which lines decompose fits, how they combine).
DECOMPOSE_COLUMNS = ("DECOMPOSE", "GROUP")


def decomposition_lines(path=None) -> Table:
    """The named lines ``skymodelling decompose`` fits, from the feature list.

    The lines with KIND ``line`` and DECOMPOSE 1; ``meta["GROUPS"]`` maps each GROUP name
    (a feature of the list) to the names of the fitted lines summed under it, in the
    order of the list. A list without the DECOMPOSE and GROUP columns, a GROUP that names no
    feature, or a group whose lines are not all fitted is an error naming the file.

    Examples
    --------
    >>> named = decomposition_lines()
    >>> "OI5577" in list(named["NAME"]), named.meta["GROUPS"]["NAD"]
    (True, ('NAD2', 'NAD1'))
    """
    table = load_features(path)
    where = path or "the bundled data/sky_features.csv"
    missing = [c for c in DECOMPOSE_COLUMNS if c not in table.colnames]
    if missing:
        raise SkyModellingError(
            f"{where}: feature list lacks column(s) {', '.join(missing)}, which say which "
            "lines decompose fits (DECOMPOSE 1/0) and which it sums (GROUP); see docs/lines.md")
    names = np.asarray(table["NAME"]).astype(str)
    kind = np.asarray(table["KIND"]).astype(str)
    try:
        fitted = (np.asarray(np.ma.filled(table["DECOMPOSE"], 0), dtype=int) == 1) & (
            kind == "line")
    except (TypeError, ValueError) as exc:
        raise SkyModellingError(f"{where}: DECOMPOSE must be 1 or 0 ({exc})") from exc
    group = np.char.strip(np.asarray(np.ma.filled(table["GROUP"].astype(str), "")).astype(str))
    group = np.where(np.isin(group, ("", "--", "nan")), "", group)
    groups = {}
    for name, g, fit in zip(names, group, fitted, strict=True):
        if not g:
            continue
        if g not in names:
            raise SkyModellingError(f"{where}: line {name}: GROUP {g} is not a feature of the "
                                    "list")
        if not fit:
            raise SkyModellingError(f"{where}: line {name} has GROUP {g} but DECOMPOSE 0")
        groups.setdefault(str(g), []).append(str(name))
    named = table[fitted]
    named.meta = {**named.meta, "GROUPS": {g: tuple(parts) for g, parts in groups.items()}}
    return named


@functools.lru_cache(maxsize=16)
def _read_features(path: Path, size: int, mtime_ns: int) -> Table:
    try:
        table = Table.read(path, format="ascii.csv", comment="#")
    except (OSError, ValueError) as exc:
        raise SkyModellingError(f"{path}: cannot read the feature list ({exc})") from exc
    required = ("NAME", "KIND", "CAMERA", "WAVE", "HALF_WIDTH")
    missing = [c for c in required if c not in table.colnames]
    if missing:
        raise SkyModellingError(f"{path}: feature list lacks column(s) {missing}")
    kinds = set(np.asarray(table["KIND"]).astype(str))
    if not kinds <= {"line", "continuum"}:
        raise SkyModellingError(f"{path}: KIND must be 'line' or 'continuum', got {kinds}")
    lines = np.asarray(table["KIND"]).astype(str) == "line"
    if lines.any():
        for col in ("SIDE_INNER", "SIDE_OUTER"):
            if col not in table.colnames or np.any(np.ma.getmaskarray(table[col])[lines]):
                raise SkyModellingError(f"{path}: every line needs {col}")
    names = np.asarray(table["NAME"]).astype(str)
    if len(set(names)) != len(names):
        raise SkyModellingError(f"{path}: feature NAMEs must be unique")
    return table


def pixel_widths(wave: np.ndarray) -> np.ndarray:
    """Width in A of every pixel (difference of the mid-points to its neighbours)."""
    return np.gradient(wave, axis=1)


def _columns(wave: np.ndarray, lo: float, hi: float) -> slice | None:
    """The smallest column slice holding every pixel of every row inside [lo, hi]."""
    inside = (wave[:, 0] <= hi) & (wave[:, -1] >= lo)
    if not inside.any():
        return None
    first = int(np.searchsorted(wave[inside].max(axis=0), lo))  # upper envelope reaches lo
    last = int(np.searchsorted(wave[inside].min(axis=0), hi, side="right"))
    first = max(first - 1, 0)
    last = min(last + 1, wave.shape[1])
    return slice(first, last) if last > first else None


def nearest_pixel(wave: np.ndarray, w0: float) -> np.ndarray:
    """Index of the pixel nearest ``w0`` in every row (rows increasing)."""
    idx = np.sum(wave < w0, axis=1)
    idx = np.clip(idx, 1, wave.shape[1] - 1)
    rows = np.arange(wave.shape[0])
    left_closer = (w0 - wave[rows, idx - 1]) < (wave[rows, idx] - w0)
    return np.where(left_closer, idx - 1, idx)


def raw_window(wave, flux, w0: float, half: int, reduce: str = "sum",
               ivar=None) -> np.ndarray:
    """The original's raw measure: sum (or mean) of ``flux`` over nearest pixel +/- ``half``.

    NaN where the window leaves the spectrum, or (given ``ivar``) touches a
    masked pixel: the original set masked pixels to NaN before summing.
    """
    idx = nearest_pixel(wave, w0)
    offsets = np.arange(-half, half + 1)
    cols = idx[:, None] + offsets[None, :]
    ok = (cols >= 0) & (cols < wave.shape[1])
    safe = np.clip(cols, 0, wave.shape[1] - 1)
    vals = np.take_along_axis(flux, safe, axis=1)
    if ivar is not None:
        vals = np.where(np.take_along_axis(ivar, safe, axis=1) > 0, vals, np.nan)
    out = vals.sum(axis=1) if reduce == "sum" else vals.mean(axis=1)
    covered = ok.all(axis=1) & (wave[:, 0] <= w0) & (wave[:, -1] >= w0)
    return np.where(covered, out, np.nan)


def _covariances(coef, var, corr) -> np.ndarray:
    """The covariance terms of the variance of sum_j coef_j f_j (rows: spectra), pixels j
    and j + L correlated by ``corr[:, L - 1, j]``; 0 without ``corr``."""
    if corr is None:
        return np.zeros(coef.shape[0])
    return 2.0 * correlated_sum(coef * np.sqrt(var), corr)


def line_flux(wave, flux, ivar, w0: float, half_width: float, side_inner: float,
              side_outer: float, corr=None):
    """Continuum-subtracted integrated flux of a line, its error and a flag.

    The continuum is the mean of the good pixels of the two sidebands
    ``side_inner < |lambda - w0| <= side_outer`` (each side averaged, then the
    two sides averaged: a linear continuum evaluated at ``w0``); the flux is
    the sum of ``(flux - continuum) * pixel width`` over ``|lambda - w0| <= half_width``.

    ``corr`` (nspec, 2, npix), optional: the noise correlation of each pixel with the next
    two (resampled spectra: the mean's ``<CAM>_CORR``), whose covariances the error
    includes; None: independent pixels (native pixels).

    Returns
    -------
    value, error : ndarray
        In flux units times A (1e-17 erg/s/cm2 for BOSS spectra); NaN when flagged.
    flag : ndarray of int
        NOT_COVERED, MASKED (bits).
    """
    n = wave.shape[0]
    cols = _columns(wave, w0 - side_outer, w0 + side_outer)
    nan = np.full(n, np.nan)
    if cols is None:
        return nan, nan.copy(), np.full(n, NOT_COVERED, dtype=np.int16)
    w, f, iv = wave[:, cols], flux[:, cols], ivar[:, cols]
    corr = None if corr is None else np.asarray(corr, dtype=float)[:, :, cols]
    dw = pixel_widths(wave)[:, cols]
    d = w - w0
    core = np.abs(d) <= half_width
    left = (d < -side_inner) & (d >= -side_outer)
    right = (d > side_inner) & (d <= side_outer)
    good = iv > 0
    covered = (wave[:, 0] <= w0 - side_outer) & (wave[:, -1] >= w0 + side_outer)
    masked = np.any((core | left | right) & ~good, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(good, 1.0 / iv, 0.0)
        n_l, n_r = left.sum(axis=1), right.sum(axis=1)
        c_l = np.where(left, f, 0.0).sum(axis=1) / n_l
        c_r = np.where(right, f, 0.0).sum(axis=1) / n_r
        var_c = 0.25 * (np.where(left, var, 0.0).sum(axis=1) / n_l**2
                        + np.where(right, var, 0.0).sum(axis=1) / n_r**2)
    cont = 0.5 * (c_l + c_r)
    width = np.where(core, dw, 0.0).sum(axis=1)
    value = np.where(core, f * dw, 0.0).sum(axis=1) - cont * width
    # the flux as sum_j coef_j f_j: the core's pixel widths minus the continuum's share
    with np.errstate(divide="ignore", invalid="ignore"):
        coef = (np.where(core, dw, 0.0)
                - 0.5 * width[:, None] * (np.where(left, 1.0, 0.0) / n_l[:, None]
                                          + np.where(right, 1.0, 0.0) / n_r[:, None]))
    coef = np.where(good, np.nan_to_num(coef), 0.0)
    error = np.sqrt(np.where(core, var * dw**2, 0.0).sum(axis=1) + width**2 * var_c
                    + _covariances(coef, var, corr))
    flag = np.where(covered & (n_l > 0) & (n_r > 0), 0, NOT_COVERED) | np.where(masked, MASKED, 0)
    bad = flag != 0
    return (np.where(bad, np.nan, value), np.where(bad, np.nan, error),
            flag.astype(np.int16))


def band_mean(wave, flux, ivar, w0: float, half_width: float, corr=None):
    """Mean flux over ``|lambda - w0| <= half_width`` and its error.

    The unweighted mean of the good pixels (an inverse-variance weighted mean
    would be biased low in the Poisson regime, where brighter pixels have lower
    weights); NaN and flagged when the band leaves the spectrum or more than
    half of its pixels are masked (MASKED is set whenever any is). ``corr``: as for
    :func:`line_flux`.
    """
    n = wave.shape[0]
    cols = _columns(wave, w0 - half_width, w0 + half_width)
    nan = np.full(n, np.nan)
    if cols is None:
        return nan, nan.copy(), np.full(n, NOT_COVERED, dtype=np.int16)
    w, f, iv = wave[:, cols], flux[:, cols], ivar[:, cols]
    corr = None if corr is None else np.asarray(corr, dtype=float)[:, :, cols]
    band = np.abs(w - w0) <= half_width
    good = band & (iv > 0)
    n_band, n_good = band.sum(axis=1), good.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(good, 1.0 / np.where(good, iv, 1.0), 0.0)
        mean = np.where(good, f, 0.0).sum(axis=1) / n_good
        coef = np.where(good, 1.0, 0.0) / n_good[:, None]
        error = np.sqrt(var.sum(axis=1) / n_good**2
                        + _covariances(np.nan_to_num(coef), var, corr))
    covered = (wave[:, 0] <= w0 - half_width) & (wave[:, -1] >= w0 + half_width)
    flag = (np.where(covered, 0, NOT_COVERED) | np.where(n_good < n_band, MASKED, 0))
    bad = ~covered | (n_good < 0.5 * n_band) | (n_good == 0)
    return (np.where(bad, np.nan, mean), np.where(bad, np.nan, error), flag.astype(np.int16))


def measure_features(wave, flux, ivar, features: Table, arm: str,
                     corr=None) -> dict[str, np.ndarray]:
    """Every feature of camera arm ``arm`` ('b' or 'r') for all spectra (``corr``: the
    pixels' noise correlation of resampled spectra, :func:`line_flux`).

    Returns columns ``<NAME>_SUM`` (lines; the original's raw sum),
    ``<NAME>_MEAN3`` (continuum points; the original's raw 3-pixel mean),
    ``<NAME>_FLUX``/``_FLUX_ERR`` (lines) or ``<NAME>_CONT``/``_CONT_ERR``
    (continuum bands) and ``<NAME>_FLAG``.
    """
    out = {}
    for row in features:
        if str(row["CAMERA"]) != arm:
            continue
        name, w0 = str(row["NAME"]), float(row["WAVE"])
        if str(row["KIND"]) == "line":
            out[f"{name}_SUM"] = raw_window(wave, flux, w0, 5, "sum", ivar)
            value, error, flag = line_flux(wave, flux, ivar, w0, float(row["HALF_WIDTH"]),
                                           float(row["SIDE_INNER"]), float(row["SIDE_OUTER"]),
                                           corr=corr)
            out[f"{name}_FLUX"], out[f"{name}_FLUX_ERR"] = value, error
        else:
            out[f"{name}_MEAN3"] = raw_window(wave, flux, w0, 1, "mean", ivar)
            value, error, flag = band_mean(wave, flux, ivar, w0, float(row["HALF_WIDTH"]),
                                           corr=corr)
            out[f"{name}_CONT"], out[f"{name}_CONT_ERR"] = value, error
        out[f"{name}_FLAG"] = flag
    return out
