"""Stage mean: one mean sky spectrum per exposure and camera.

For every exposure and camera of every complete extract output, the good sky
fibres (any unmasked pixel, not rejected as a whole) are resampled onto the
camera arm's common log10-wavelength grid (1e-4 dex, centres at integer
multiples of 1e-4 as the BOSS coadd; :mod:`skymodelling.spectral.resample`)
and averaged with iterative sigma clipping across fibres
(:func:`clipped_mean`, pure). The mean spectra get the conditions of their
exposure from enrich and the line, continuum and magnitude measurements of
the lines stage (:func:`skymodelling.stages.lines.measure_block`).

Output: ``OUT/mean/<plate4>/mean-<plate4>-<mjd5>.fits`` (docs/mean.md).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..config import Config, MeanConfig
from ..errors import SkyModellingError
from ..io import products
from ..io.fitsutil import open_fits, write_hdus
from ..io.products import FLUX_UNIT, IVAR_UNIT, META_UNITS, table_hdu
from ..spectral.features import load_features
from ..spectral.resample import COADD_DLOGLAM, loglam_edges, loglam_grid, resample_flux
from . import _common
from .specfiles import SOURCE as SPECFILES_SOURCE

log = logging.getLogger(__name__)

STAGE = "mean"
EXTNAME = "MEANMETA"
NOFIBER = 1      # MASK bit 0: no fibre contributes to the pixel
FEWFIBERS = 2    # MASK bit 1: fewer than min_fibers fibres contribute
MAD_TO_SIGMA = 1.4826
KEY_COLUMNS = products.MEAN.keys
#: Images per camera (``<CAM>_<name>`` HDUs).
ARRAYS = ("FLUX", "IVAR", "NUSED", "MASK", "DISP", "CORR")
#: Extract META columns that differ between the fibres of an exposure (not copied).
FIBER_COLUMNS = ("FIB", "ROW", "XFOCAL", "YFOCAL", "FIBER_RA", "FIBER_DEC", "OBJTYPE")


def output_path(out, plate: int, mjd: int) -> Path:
    """Where the mean stage writes plate ``plate`` observed on ``mjd``."""
    return products.MEAN.path(out, plate, mjd)


def arm_grid(arm: str, config: Config | None = None) -> np.ndarray:
    """log10 wavelength centres of the mean spectra of arm ``b`` or ``r``."""
    config = config or Config()
    return loglam_grid(*config.extract.wave_range(arm), dloglam=COADD_DLOGLAM)


# ------------------------------------------------------------ computation

def _column_median(values: np.ndarray, good: np.ndarray) -> np.ndarray:
    """Median along axis 0 of ``values`` over ``good`` entries (NaN where none)."""
    n = good.sum(axis=0)
    s = np.sort(np.where(good, values, np.inf), axis=0)
    lo = np.take_along_axis(s, np.maximum((n - 1) // 2, 0)[None], axis=0)[0]
    hi = np.take_along_axis(s, np.maximum(n // 2, 0)[None], axis=0)[0]
    with np.errstate(invalid="ignore"):
        med = 0.5 * (lo + hi)
    return np.where(n > 0, med, np.nan)


@dataclass
class MeanResult:
    """A clipped mean of the spectra of one exposure and camera on a common grid."""

    FLUX: np.ndarray    # (npix,) mean flux
    IVAR: np.ndarray    # (npix,) its inverse variance; 0 where no fibre
    NUSED: np.ndarray   # (npix,) fibres used per pixel
    MASK: np.ndarray    # (npix,) NOFIBER | FEWFIBERS
    used: np.ndarray    # (nfib, npix) pixels that entered the mean
    weights: np.ndarray  # (nfib, npix) their weights (0 elsewhere)
    fiber_ok: np.ndarray  # (nfib,) fibres with good pixels not rejected as a whole
    CORR: np.ndarray | None = None  # (2, npix) noise correlation of pixel j with j+1, j+2

    @property
    def n_fibers(self) -> int:
        return int(self.fiber_ok.sum())


def reject_fibers(flux, ivar, good, *, fiber_clip: float) -> np.ndarray:
    """Fibres to keep: their median normalised residual from the median spectrum is typical.

    The residual of a pixel is (flux - median across fibres) / error; a fibre
    is rejected when the median of its residuals departs from the median of
    all fibres' by more than ``fiber_clip`` x the larger of their robust
    spread and the fibre's own statistical error (1.2533 / sqrt(n_pixels)).
    """
    has = good.any(axis=1)
    med = _column_median(flux, good)
    ok = good & np.isfinite(med)[None, :]
    z = np.zeros_like(flux)
    np.multiply(flux - np.where(ok, med, 0.0), np.sqrt(ivar), out=z, where=ok)
    m = _column_median(z.T, ok.T)              # per fibre
    n = ok.sum(axis=1)
    valid = has & (n > 0)
    if valid.sum() < 3:
        return valid
    centre = float(np.median(m[valid]))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(m[valid] - centre)))
    own = 1.2533 / np.sqrt(np.maximum(n, 1))
    with np.errstate(invalid="ignore"):
        return valid & (np.abs(m - centre) <= fiber_clip * np.maximum(spread, own))


def clipped_mean(flux, ivar, *, config: MeanConfig | None = None) -> MeanResult:
    """Weighted mean across fibres with robust rejection (pure: arrays in, arrays out).

    Parameters
    ----------
    flux, ivar : array_like (nfib, npix)
        Spectra on a common grid and their inverse variance (0 = masked).
    config : MeanConfig
        Rejection and weighting settings.

    Returns
    -------
    MeanResult

    Examples
    --------
    >>> flux = np.ones((12, 5)); flux[3] += 50.0; flux[5, 2] = 1e4   # bad fibre, cosmic ray
    >>> res = clipped_mean(flux, np.full((12, 5), 100.0))
    >>> res.FLUX.tolist(), res.NUSED.tolist(), bool(res.fiber_ok[3])
    ([1.0, 1.0, 1.0, 1.0, 1.0], [11, 11, 10, 11, 11], False)
    """
    cfg = config or MeanConfig()
    flux = np.asarray(flux, dtype=float)
    ivar = np.asarray(ivar, dtype=float)
    good = (ivar > 0) & np.isfinite(flux) & np.isfinite(ivar)
    flux = np.where(good, flux, 0.0)
    ivar = np.where(good, ivar, 0.0)
    fiber_ok = reject_fibers(flux, ivar, good, fiber_clip=cfg.fiber_clip)
    base = good & fiber_ok[:, None]
    err = np.full_like(flux, np.inf)
    np.divide(1.0, np.sqrt(ivar), out=err, where=base)
    if cfg.weighting == "fiber":
        # one weight per fibre: its inverse variance relative to the median across
        # fibres, so the weights do not follow each pixel's noise realisation
        ivar_med = _column_median(ivar, base)
        ratio = np.zeros_like(ivar)
        np.divide(ivar, ivar_med[None, :], out=ratio, where=base & (ivar_med > 0)[None, :])
        rel = _column_median(ratio.T, (base & (ratio > 0)).T)
        weight = np.where(base, np.nan_to_num(rel, nan=0.0)[:, None], 0.0)
    else:
        weight = np.where(base, ivar, 0.0)

    def weighted(used):
        w = np.where(used, weight, 0.0)
        wsum = w.sum(axis=0)
        mean = np.zeros(flux.shape[1])
        np.divide((w * flux).sum(axis=0), wsum, out=mean, where=wsum > 0)
        return mean, w, wsum

    used = base
    for it in range(cfg.clip_iterations):
        centre = _column_median(flux, used) if it == 0 else weighted(used)[0]
        centre = np.nan_to_num(centre)
        resid = np.abs(flux - centre[None, :])
        spread = MAD_TO_SIGMA * np.nan_to_num(_column_median(resid, used))
        sigma = np.maximum(err, spread[None, :])
        new = base & (resid <= cfg.clip_sigma * sigma)
        if np.array_equal(new, used):
            break
        used = new
    mean, w, wsum = weighted(used)
    var = np.zeros_like(mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        num = np.where(used, w * w / np.where(used, ivar, 1.0), 0.0).sum(axis=0)
    np.divide(num, wsum * wsum, out=var, where=wsum > 0)
    out_ivar = np.zeros_like(mean)
    np.divide(1.0, var, out=out_ivar, where=var > 0)
    nused = used.sum(axis=0).astype(np.int16)
    mask = np.where(nused == 0, NOFIBER, 0) | np.where(
        (nused > 0) & (nused < cfg.min_fibers), FEWFIBERS, 0)
    return MeanResult(FLUX=np.where(nused > 0, mean, 0.0), IVAR=out_ivar, NUSED=nused,
                      MASK=mask.astype(np.int16), used=used, weights=w, fiber_ok=fiber_ok)


def mean_spectrum(wave, flux, ivar, loglam, *, config: MeanConfig | None = None) -> MeanResult:
    """Resample the fibres of one exposure and camera onto ``loglam`` and average them.

    ``wave, flux, ivar`` are (nfib, npix) on the native pixels (extract output). The
    result's ``CORR`` is the correlation of the mean's noise between neighbouring pixels
    (:func:`mean_correlation`), which share native pixels of every fibre.
    """
    f, iv, corr = resample_flux(wave, flux, ivar, loglam_edges(loglam), correlation=True)
    res = clipped_mean(f, iv, config=config)
    res.CORR = mean_correlation(res.weights, iv, corr, res.IVAR)
    return res


def mean_correlation(weights, ivar, corr, mean_ivar) -> np.ndarray:
    """(2, npix) noise correlation of a weighted mean's pixels j and j + L (L = 1, 2).

    ``weights`` (nfib, npix): the mean's weights (0 where a fibre is not used); ``ivar``,
    ``corr``: the fibres' resampled inverse variance and their correlations
    (``resample_flux(..., correlation=True)``); ``mean_ivar``: the mean's inverse
    variance. The covariance of the mean is sum_f w_fj w_f(j+L) cov_f / (W_j W_(j+L)).
    """
    weights = np.asarray(weights, dtype=float)
    ivar = np.asarray(ivar, dtype=float)
    wsum = weights.sum(axis=0)
    out = np.zeros((2, weights.shape[1]))
    for lag in (1, 2):
        if weights.shape[1] <= lag:
            continue
        prod = ivar[:, :-lag] * ivar[:, lag:]
        with np.errstate(divide="ignore", invalid="ignore"):
            cov_f = np.where(prod > 0, corr[:, lag - 1, :-lag] / np.sqrt(prod), 0.0)
            cov = (weights[:, :-lag] * weights[:, lag:] * cov_f).sum(axis=0)
            norm = wsum[:-lag] * wsum[lag:]
            c = np.where(norm > 0, cov / norm, 0.0) * np.sqrt(mean_ivar[:-lag]
                                                             * mean_ivar[lag:])
        out[lag - 1, :-lag] = np.nan_to_num(c)
    return out


def mean_dispersion(wave, disp, loglam, fibers=None) -> np.ndarray:
    """Plain mean over ``fibers`` of the fibres' line-spread sigma ``disp`` on ``loglam``.

    ``wave, disp`` are (nfib, npix) on the native pixels (extract DISP, Angstrom). Each
    fibre's DISP is taken at the grid centres by linear interpolation: DISP is a smooth
    trace set, so this equals the flux's bin average (:func:`resample_flux`) to ~3e-6 of
    its value (up to 0.5 % at the two pixels of the red CCDs' readout jump, where the
    native pixel width jumps) at a sixth of the cost. A fibre counts at a pixel when the
    pixel lies within its wavelength range (masked flux does not matter: the width of the
    instrument profile is defined there too); the mean is over the fibres ``fibers`` (bool,
    default all).
    Returns (npix,) float, 0 where no fibre covers the pixel.
    """
    wave = np.asarray(wave, dtype=float)
    disp = np.asarray(disp, dtype=float)
    edges = loglam_edges(loglam)   # Angstrom
    centres = 10.0 ** np.asarray(loglam, dtype=float)
    fibers = np.ones(len(wave), bool) if fibers is None else np.asarray(fibers, bool)
    total = np.zeros(centres.size)
    n = np.zeros(centres.size)
    for w, d in zip(wave[fibers], disp[fibers], strict=True):
        ok = np.isfinite(d)
        if ok.sum() < 2:
            continue
        first, last = 1.5 * w[0] - 0.5 * w[1], 1.5 * w[-1] - 0.5 * w[-2]  # outer pixel edges
        cover = (edges[:-1] >= first) & (edges[1:] <= last)
        total += np.where(cover, np.interp(centres, w[ok], d[ok]), 0.0)
        n += cover
    out = np.zeros(centres.size)
    np.divide(total, n, out=out, where=n > 0)
    return out


def _conditions_of(cond: Table | None, rows: np.ndarray) -> dict:
    """Median over ``rows`` of every numeric conditions column."""
    out = {}
    if cond is None:
        return out
    for name in cond.colnames:
        if name in products.CONDITIONS.keys:
            continue
        col = cond[name]
        if col.dtype.kind not in "fiu":
            continue
        v = np.ma.filled(np.ma.asarray(col, dtype=float), np.nan)[rows]
        v = v[np.isfinite(v)]
        value = float(np.median(v)) if v.size else np.nan
        out[name] = (value, col.dtype)
    return out


def _enrich_conditions(path: Path, meta: Table, hdul, out: Path):
    """The enrich table of this extract output and its signature, if complete and current."""
    cond_path = products.CONDITIONS.path(out, *products.SKY.parse(path))
    if not products.is_complete(cond_path):
        return None, None
    info = products.marker_info(cond_path)
    if info.get("inputs", {}).get("extract_meta") != products.meta_checksum(hdul["META"]):
        return None, None
    cond = products.read_conditions(cond_path)
    cond.convert_bytestring_to_unicode()
    if len(cond) != len(meta) or any(np.any(np.asarray(cond[k]) != np.asarray(meta[k]))
                                     for k in products.CONDITIONS.keys):
        return None, None
    return cond, products.upstream_signature(cond_path)


def mean_file(path: Path, config: Config, failures: _common.FailureLog, out: Path,
              strict: bool = False):
    """Mean spectra of every exposure and camera of one extract output.

    Returns the MEANMETA table, the arrays per camera, the grids per arm and
    the enrich signature (None when not enriched).
    """
    from .lines import measure_block

    cfg = config.mean
    features = load_features(config.lines.line_list)
    rows_out, arrays, grids = [], {}, {}
    with open_fits(path) as hdul:
        meta = products.read_table(hdul["META"], "META")
        meta.convert_bytestring_to_unicode()
        cond, enrich_sig = _enrich_conditions(path, meta, hdul, out)
        # spec files hold one fibre each: the default min_fibers is for plates' sky fibres
        hint = ("; this output was made from spec files (one fibre each): set --min-fibers "
                "to at most their number (docs/specfile.md)"
                if hdul[0].header.get("SOURCE") == SPECFILES_SOURCE else "")
        cameras = np.asarray(meta["CAMERA"]).astype(str)
        imgs = np.asarray(meta["IMG"])
        for cam in sorted(set(cameras)):
            wave, flux, ivar = _common.camera_arrays(hdul, path, cam)
            disp = (np.asarray(hdul[f"{cam.upper()}_DISP"].data, dtype=float)
                    if f"{cam.upper()}_DISP" in hdul else None)
            loglam = grids.setdefault(cam[0], arm_grid(cam[0], config))
            for img in sorted(set(imgs[cameras == cam])):
                sel = np.flatnonzero((cameras == cam) & (imgs == img))
                rows = np.asarray(meta["ROW"])[sel]
                res = mean_spectrum(wave[rows], flux[rows], ivar[rows], loglam, config=cfg)
                if res.n_fibers < cfg.min_fibers:
                    reason = (f"{res.n_fibers} good sky fibres of {sel.size}, fewer than "
                              f"min_fibers = {cfg.min_fibers}: no mean{hint}")
                    if strict:
                        raise SkyModellingError(f"{path}: exposure {img} {cam}: {reason}")
                    failures.add(reason, expid=int(img), camera=cam, file=path)
                    continue
                block = arrays.setdefault(cam, {k: [] for k in ARRAYS})
                row = {k: meta[k][sel[0]] for k in meta.colnames if k not in FIBER_COLUMNS}
                row["ROW"] = len(block["FLUX"])
                row["NSKY"] = sel.size
                row["NFIBERS"] = res.n_fibers
                for name, (value, _dtype) in _conditions_of(cond, sel[res.fiber_ok]).items():
                    row[name] = value
                for name in ("FLUX", "IVAR", "NUSED", "MASK", "CORR"):
                    block[name].append(getattr(res, name))
                block["DISP"].append(
                    mean_dispersion(wave[rows], disp[rows], loglam, res.fiber_ok)
                    if disp is not None else np.zeros(loglam.size))
                rows_out.append(row)
        for cam, block in arrays.items():
            if f"{cam.upper()}_DISP" not in hdul:
                del block["DISP"]   # an extract output without DISP: no mean DISP
            for name in block:
                block[name] = np.array(block[name])
    table = _meta_table(rows_out, meta, cond)
    if len(table):
        cols = {}
        cams = np.asarray(table["CAMERA"]).astype(str)
        for cam in sorted(set(cams)):
            sel = np.flatnonzero(cams == cam)
            block = arrays[cam]
            rows = np.asarray(table["ROW"])[sel]
            wave2d = np.broadcast_to(10.0 ** grids[cam[0]], block["FLUX"][rows].shape)
            got = measure_block(wave2d, block["FLUX"][rows], block["IVAR"][rows], cam[0],
                                features, area_arcsec2=config.lines.fiber_area_arcsec2,
                                min_coverage=config.lines.min_coverage,
                                corr=block["CORR"][rows])
            for name, values in got.items():
                cols.setdefault(name, np.zeros(len(table), dtype=values.dtype))[sel] = values
        for name, values in cols.items():
            table[name] = values
    return table, arrays, grids, enrich_sig


def _meta_table(rows_out, meta: Table, cond: Table | None) -> Table:
    names = [k for k in meta.colnames if k not in FIBER_COLUMNS] + ["ROW", "NSKY", "NFIBERS"]
    if cond is not None:
        names += [k for k in cond.colnames if k not in products.CONDITIONS.keys
                  and cond[k].dtype.kind in "fiu"]
    if not rows_out:
        return Table({k: np.zeros(0, dtype=meta[k].dtype if k in meta.colnames else float)
                      for k in names})
    table = Table()
    for name in names:
        values = [r[name] for r in rows_out]
        if cond is not None and name in cond.colnames and name not in meta.colnames:
            dtype = cond[name].dtype
            arr = np.array(values, dtype=float)
            table[name] = arr.astype(dtype) if dtype.kind == "f" else np.where(
                np.isfinite(arr), arr, -1).astype(dtype)
        elif name in meta.colnames:
            table[name] = np.array(values, dtype=meta[name].dtype)
        else:
            table[name] = np.array(values, dtype=np.int32)
    return table


# --------------------------------------------------------------- the runner

def _units(features: Table) -> dict:
    return {**META_UNITS, **products.CONDITION_UNITS, **products.line_units(features)}


def _hdus(table, arrays, grids, features, primary) -> list:
    hdus = [primary, table_hdu(table, EXTNAME, _units(features))]
    for arm in sorted(grids):
        hdu = fits.ImageHDU(10.0 ** grids[arm], name=f"{arm.upper()}_WAVE")
        hdu.header["BUNIT"] = "Angstrom"
        hdu.header["COEFF0"] = (round(float(grids[arm][0]), 6), "log10 A of the first pixel")
        hdu.header["COEFF1"] = (COADD_DLOGLAM, "log10 A step")
        hdus.append(hdu)
    units = {"FLUX": FLUX_UNIT, "IVAR": IVAR_UNIT, "NUSED": None, "MASK": None,
             "DISP": "Angstrom", "CORR": None}
    dtypes = {"FLUX": np.float32, "IVAR": np.float32, "NUSED": np.int16, "MASK": np.int16,
              "DISP": np.float32, "CORR": np.float32}
    for cam in sorted(arrays):
        for name, values in arrays[cam].items():
            hdu = fits.ImageHDU(values.astype(dtypes[name]), name=f"{cam.upper()}_{name}")
            if units[name]:
                hdu.header["BUNIT"] = units[name]
            hdus.append(hdu)
    return hdus


def mean_plate(task) -> dict:
    """Run the stage on one extract output (a worker task)."""
    source, config, out, strict, force = task
    inputs = {"extract": products.upstream_signature(source),
              "enrich": _enrich_signature(source, out)}

    def work(target, plate, mjd, failures):
        table, arrays, grids, enrich_sig = mean_file(source, config, failures, out, strict)
        features = load_features(config.lines.line_list)
        primary = _common.primary_hdu(
            STAGE, config, PLATE=plate, MJD=mjd, NMEAN=len(table),
            EXTRACT=(source.name, "extract output averaged"),
            ENRICHED=(enrich_sig is not None, "conditions from enrich joined"),
            FIBAREA=(config.lines.fiber_area_arcsec2, "fibre solid angle, arcsec2"))
        write_hdus(target, _hdus(table, arrays, grids, features, primary))
        return len(table)

    return _common.plate_task(STAGE, source, out, config, strict, target_of=output_path,
                              inputs=inputs, work=work, force=force)


def _enrich_signature(source: Path, out: Path):
    """The signature of the current enrich output of ``source`` (None if not usable)."""
    with open_fits(source) as hdul:
        meta = products.read_table(hdul["META"], "META")
        meta.convert_bytestring_to_unicode()
        return _enrich_conditions(source, meta, hdul, out)[1]


def run_mean(out, config: Config | None = None, *, workers: int = 1,
             strict: bool = False, executor=None, force: bool = False) -> _common.StageSummary:
    """Mean sky spectra of every complete extract output under ``out`` (``force``: redo
    every output)."""
    config = config or Config()
    sources = _common.extract_outputs(out)
    load_features(config.lines.line_list)  # fail early on a bad line list
    tasks = [(p, config, Path(out), strict, force) for p in sources]
    return _common.run_tasks(STAGE, mean_plate, tasks, out, workers, executor)


__all__ = ["run_mean", "mean_file", "mean_spectrum", "mean_dispersion", "clipped_mean",
           "reject_fibers", "MeanResult", "arm_grid", "output_path", "NOFIBER", "FEWFIBERS"]
