"""Stage decompose: emission lines and continuum of every mean sky spectrum.

For every complete mean output, each mean spectrum (one exposure and camera on the
1e-4 dex grid) is split into a smooth continuum and emission lines by
:func:`skymodelling.spectral.decompose.decompose_spectrum`. The line profile is
fitted once per camera and file, on its spectrum of highest median S/N
(:func:`skymodelling.spectral.decompose.fit_profile`), and fixed for the others.

Output: ``OUT/decompose/<plate4>/decomp-<plate4>-<mjd5>.fits`` (docs/decompose.md).

With ``spectra="fibres"``, every sky-fibre spectrum of every complete extract output is
resampled onto the mean stage's grid of its arm (flux-conserving, as the mean stage does) and
decomposed the same way, the profile fitted once per camera and file on its fibre of highest
median S/N: ``OUT/decompose/<plate4>/decomp-fibres-<plate4>-<mjd5>.fits``, one row per row of
the extract META.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..config import Config
from ..errors import BossFileError, SkyModellingError
from ..io import products
from ..io.fitsutil import open_fits, write_hdus
from ..io.products import FLUX_UNIT, table_hdu
from ..spectral.decompose import (
    C_KMS,
    DEFAULT_LSF,
    LSF_DEFAULT,
    NIGHTGLOW,
    NOFIT,
    decompose_spectrum,
    disp_width,
    fit_profile,
)
from ..spectral.features import decomposition_lines
from ..spectral.profile import native_width_ratio
from ..spectral.resample import COADD_DLOGLAM, loglam_edges, resample_flux
from . import _common

log = logging.getLogger(__name__)

STAGE = "decompose"
EXTNAME = "DECOMPMETA"
KEY_COLUMNS = products.DECOMP.keys
#: Keys of the fibre table (those of the extract META, docs/extract.md; same rows, same order).
FIBRE_KEY_COLUMNS = products.DECOMP_FIBRES.keys
FIBRE_EXTNAME = "DECOMPFIBRES"
#: Name of the fibre mode's problem files (``OUT/failures/decompfibres-<plate4>-<mjd5>.csv``).
FIBRE_STAGE = "decompfibres"
SPECTRA = ("mean", "fibres", "both")
#: Fibres (in order of median S/N) on which the fibre mode tries to fit the profile.
FIBRE_PROFILE_TRIES = 5
def output_path(out, plate: int, mjd: int) -> Path:
    """Where the decompose stage writes plate ``plate`` observed on ``mjd``."""
    return products.DECOMP.path(out, plate, mjd)


def fibre_output_path(out, plate: int, mjd: int) -> Path:
    """Where ``--spectra fibres`` writes plate ``plate`` observed on ``mjd``."""
    return products.DECOMP_FIBRES.path(out, plate, mjd)


def named_lines(line_list=None) -> Table:
    """The named single lines fitted (NAME, CAMERA, WAVE): the ``line`` features of the
    lines stage's list with DECOMPOSE 1, and in ``meta["GROUPS"]`` the sums reported
    (:func:`skymodelling.spectral.features.decomposition_lines`)."""
    return decomposition_lines(line_list)


def output_names(named: Table) -> dict[str, tuple[str, ...]]:
    """The flux columns of DECOMPMETA (single lines, then the groups whose lines are all
    fitted), each with the fitted lines it sums."""
    single = list(np.asarray(named["NAME"]).astype(str))
    out = {name: (name,) for name in single}
    out.update({g: parts for g, parts in named.meta.get("GROUPS", {}).items()
                if set(parts) <= set(single)})
    return out


def width_curves(loglam, disp, config: Config):
    """The instrument's core width in grid pixels of each row of ``disp`` (Angstrom, the
    mean stage's ``<CAM>_DISP``), or None when not available or not wanted (``disp_width``)."""
    if disp is None or not config.decompose.disp_width:
        return None
    curves = [disp_width(loglam, d) for d in disp]
    return None if any(c is None for c in curves) else curves


def _rescaled(lsf, curve, reference):
    """``lsf`` (its sigma the mean width of a spectrum with width curve ``reference``) for a
    spectrum with width curve ``curve``: the same shape correction, sigma scaled by the ratio
    of the curves' means (exposures and fibres differ in DISP)."""
    if lsf is None or curve is None or reference is None:
        return lsf
    return (lsf[0] * float(np.mean(curve)) / float(np.mean(reference)), *lsf[1:])


def decompose_block(loglam, flux, ivar, arm: str, config: Config, named: Table,
                    velocity=None, *, tries: int = 1, default: bool = False, lsf=None,
                    curves=None, lsf_curve=None, native_waves=None, seeds=None,
                    noise_corr=None):
    """Decompose the rows of one camera (2-D arrays); the profile is fitted on the best row.

    ``velocity``: the heliocentric correction (km/s) of each row (MEANMETA ``HELIO_RV``),
    used to place the named lines on the heliocentric grid; None: 0. The profile is fitted
    on the row of highest median S/N, or when that fails on the next, up to ``tries`` rows;
    when none succeeds, each row gets its own profile fit, or with ``default`` the default
    profile (FLAG LSF_DEFAULT). A given ``lsf`` (sigma, eta, gamma) is used as it is.
    ``curves``: each row's instrument width along the grid (:func:`width_curves`): the
    widths follow its shape, the profile's sigma scaled by the ratio of the row's mean width
    to that of the row the profile was fitted on (``lsf_curve`` for a given ``lsf``).
    ``native_waves``: each row's native pixel centres (A; a sequence, None for a row that
    was not resampled from native pixels): with ``native_pixels`` (the default) the line
    profiles of a resampled row are the native ones spread onto the grid
    (:func:`~skymodelling.spectral.decompose.decompose_spectrum`).
    ``seeds``: each row's known line centres (grid pixels; a sequence, None for a row
    without), the ``seeds`` of ``decompose_spectrum`` (used with a fitted or given profile).
    With ``stack_seeds`` (the default), one profile for all rows, more than one row and no
    given seeds, the rows are stacked (:func:`stack_rows`), the stack is decomposed with
    the detection threshold ``stack_detect_sigma``, and its lines seed every row
    (docs/decompose.md, "Seeds").
    ``noise_corr``: each row's noise correlation with the next two pixels ((nrow, 2, npix),
    or None: independent pixels), the ``noise_corr`` of ``decompose_spectrum``.
    """
    cfg = config.decompose
    if noise_corr is None:
        noise_corr = [None] * len(flux)
    if curves is None:
        curves = [None] * len(flux)
    if seeds is None:
        seeds = [None] * len(flux)
    if native_waves is None or not cfg.native_pixels:
        native_waves = [None] * len(flux)
    sel = named[np.asarray(named["CAMERA"]).astype(str) == arm]
    vel = np.zeros(len(flux)) if velocity is None else np.asarray(velocity, dtype=float)
    vel = np.where(np.isfinite(vel), vel, 0.0)
    snr = np.array([np.median((f * np.sqrt(iv))[iv > 0]) if np.any(iv > 0) else 0.0
                    for f, iv in zip(flux, ivar, strict=True)])
    if lsf is None and cfg.lsf_sigma is None:
        for best in np.argsort(-snr, kind="stable")[:tries]:
            lsf, bad = fit_profile(loglam, flux[best], ivar[best], arm=arm, config=cfg,
                                   named=sel, velocity=float(vel[best]),
                                   width_curve=curves[best], native_wave=native_waves[best])
            if not bad and np.all(np.isfinite(lsf)):
                lsf_curve = curves[best]
                break
            lsf = None
    flag = 0
    if lsf is None and default and cfg.lsf_sigma is None:
        lsf, flag, lsf_curve = DEFAULT_LSF[arm], LSF_DEFAULT, None
    # the width curves apply to a profile fitted with one (or fitted row by row), not to
    # the default, a configured or a given profile fitted without
    if not ((lsf is None and cfg.lsf_sigma is None) or lsf_curve is not None):
        curves = [None] * len(flux)

    if (cfg.stack_seeds and len(flux) > 1 and all(sd is None for sd in seeds)
            and (lsf is not None or cfg.lsf_sigma is not None)):
        # the rows' stack (a deeper spectrum of the same lines): its lines seed every row
        lead = int(np.argmax(snr))
        stacked = stack_rows(loglam, flux, ivar, vel, vel[lead])
        res = decompose_spectrum(loglam, *stacked, arm=arm,
                                 config=replace(cfg, detect_sigma=cfg.stack_detect_sigma),
                                 named=sel, lsf=_rescaled(lsf, curves[lead], lsf_curve),
                                 velocity=float(vel[lead]), width_curve=curves[lead],
                                 native_wave=native_waves[lead])
        if not res.flag & NOFIT:
            step = (loglam[-1] - loglam[0]) / (loglam.size - 1)
            topo = res.centre + np.log10(1.0 + vel[lead] / C_KMS) / step
            seeds = [topo - np.log10(1.0 + v / C_KMS) / step for v in vel]
    results = [decompose_spectrum(loglam, flux[r], ivar[r], arm=arm, config=cfg, named=sel,
                                  lsf=_rescaled(lsf, curves[r], lsf_curve),
                                  velocity=float(vel[r]), width_curve=curves[r],
                                  native_wave=native_waves[r], seeds=seeds[r],
                                  noise_corr=noise_corr[r])
               for r in range(len(flux))]
    for res in results:
        if not res.flag & NOFIT:
            res.flag |= flag
    return results


def stack_rows(loglam, flux, ivar, velocity, v0: float):
    """Inverse-variance weighted mean of spectra on the heliocentric grid ``loglam`` with
    heliocentric corrections ``velocity`` (km/s), moved to the frame of correction ``v0``
    (the sky lines are at rest in the topocentric frame; linear interpolation, shifts of a
    few hundredths of a pixel within a night): (flux, ivar) of the stack, ivar 0 where no
    row has a good pixel.

    Examples
    --------
    >>> loglam = 3.6 + 1e-4 * np.arange(5)
    >>> f, iv = stack_rows(loglam, np.array([[1.0, 2, 3, 4, 5], [3.0, 4, 5, 6, 7]]),
    ...                    np.array([[1.0, 1, 0, 1, 1], [1.0, 1, 1, 1, 1]]), [0.0, 0.0], 0.0)
    >>> f.tolist(), iv.tolist()
    ([2.0, 3.0, 5.0, 5.0, 6.0], [2.0, 2.0, 1.0, 2.0, 2.0])
    """
    flux = np.asarray(flux, dtype=float)
    ivar = np.asarray(ivar, dtype=float)
    num = np.zeros(loglam.size)
    den = np.zeros(loglam.size)
    for f, iv, v in zip(flux, ivar, np.asarray(velocity, dtype=float), strict=True):
        good = (iv > 0) & np.isfinite(f)
        shifted = loglam + (np.log10(1.0 + v / C_KMS) - np.log10(1.0 + v0 / C_KMS))
        # (the weighted flux and the weights interpolated apart: a masked pixel adds nothing)
        num += np.interp(loglam, shifted, np.where(good, f * iv, 0.0), left=0.0, right=0.0)
        den += np.interp(loglam, shifted, np.where(good, iv, 0.0), left=0.0, right=0.0)
    return np.divide(num, den, out=np.zeros(loglam.size), where=den > 0), den


def _mean_meta(hdul, path) -> tuple[Table, np.ndarray]:
    """The MEANMETA table of an open mean output and its CAMERA column as str."""
    try:
        meta = Table.read(hdul["MEANMETA"], unit_parse_strict="silent", mask_invalid=False)
    except KeyError as exc:
        raise BossFileError(path, "no MEANMETA HDU") from exc
    meta.convert_bytestring_to_unicode()
    return meta, np.asarray(meta["CAMERA"]).astype(str)


def decompose_file(path: Path, config: Config, failures: _common.FailureLog,
                   strict: bool = False):
    """Decompositions of every mean spectrum of one mean output.

    Returns the DECOMPMETA table, the line table, the images per camera and the grids.
    """
    named = named_lines(config.lines.line_list)
    names = output_names(named)
    with open_fits(path) as hdul:
        meta, cams = _mean_meta(hdul, path)
        rows, line_rows, images, grids = [], [], {}, {}
        for cam in sorted(set(cams)):
            wave, flux, ivar = _common.camera_arrays(hdul, path, cam,
                                                        f"{cam[0].upper()}_WAVE")
            disp = (np.asarray(hdul[f"{cam.upper()}_DISP"].data, dtype=float)
                    if f"{cam.upper()}_DISP" in hdul else None)   # older mean outputs: none
            loglam = np.log10(wave)
            grids[cam[0]] = wave
            sel = np.flatnonzero(cams == cam)
            mrows = np.asarray(meta["ROW"])[sel]
            velocity = (np.asarray(meta["HELIO_RV"], dtype=float)[sel]
                        if "HELIO_RV" in meta.colnames else None)
            # the means' noise correlation between neighbouring pixels (mean outputs of
            # algorithm 4 on; older ones: independent pixels)
            corr = (np.asarray(hdul[f"{cam.upper()}_CORR"].data, dtype=float)[mrows]
                    if f"{cam.upper()}_CORR" in hdul else None)
            results = decompose_block(
                loglam, flux[mrows], ivar[mrows], cam[0], config, named, velocity,
                curves=width_curves(loglam, None if disp is None else disp[mrows], config),
                noise_corr=corr)
            images[cam] = {k: np.array([getattr(r, k) for r in results])
                           for k in ("CONT", "LINES", "CONT_SMOOTH")}
            for r, res in zip(sel, results, strict=True):
                row = _result_row(meta, r, KEY_COLUMNS, res, names,
                                  band_names(config.decompose))
                rows.append(row)
                if res.flag & NOFIT:
                    reason = "too few good pixels: not decomposed"
                    if strict:
                        raise SkyModellingError(f"{path}: exposure {row['IMG']} {cam}: {reason}")
                    failures.add(reason, expid=int(row["IMG"]), camera=cam, file=path)
                n = res.flux.size
                group = np.asarray(res.group, dtype=np.int32)
                line_rows.append({
                    "IMG": np.full(n, row["IMG"], dtype=np.int32),
                    "CAMERA": np.full(n, cam, dtype="U3"),
                    "ROW": np.full(n, int(meta["ROW"][r]), dtype=np.int32),
                    "WAVE": 10.0 ** (loglam[0] + COADD_DLOGLAM * np.asarray(res.centre)),
                    "FLUX": np.asarray(res.flux, dtype=float),
                    "FLUX_ERR": np.asarray(res.flux_err, dtype=float),
                    "FOUND": np.asarray(res.found, dtype=bool),
                    "NAME": np.asarray(res.name).astype("U16"),
                    "GROUP": group,
                    "GROUP_FLUX": np.asarray(res.group_flux(), dtype=float),
                    "GROUP_FLUX_ERR": np.asarray(res.group_err, dtype=float)})
    table = Table(rows=rows, names=list(rows[0]) if rows else None) if rows else Table()
    columns = ("IMG", "CAMERA", "ROW", "WAVE", "FLUX", "FLUX_ERR", "FOUND", "NAME", "GROUP",
               "GROUP_FLUX", "GROUP_FLUX_ERR")
    dtypes = (np.int32, "U3", np.int32, float, float, float, bool, "U16", np.int32, float,
              float)
    lines = Table({c: np.concatenate([d[c] for d in line_rows]) if line_rows
                   else np.zeros(0, dtype=t) for c, t in zip(columns, dtypes, strict=True)})
    return table, lines, images, grids


def band_names(cfg) -> list[str]:
    """Names of the emission components with a flux column: the configured bands, then the
    nightglow template's (``NIGHTGLOW``) when any arm fits it."""
    return [name for name, _, _ in cfg.bands] + ([NIGHTGLOW] if cfg.nightglow else [])


def _result_row(meta: Table, r: int, keys, res, names, bands=()) -> dict:
    """One output row: ``keys`` from ``meta`` row ``r``, fit quality, line fluxes, and the
    group fluxes of the emission components ``bands`` (:func:`band_names`), NaN where the
    camera does not cover them or does not fit them."""
    row = {k: meta[k][r] for k in keys}
    s1, s2 = (res.lsf[3], res.lsf[4]) if len(res.lsf) > 3 else (0.0, 0.0)
    if not np.isfinite(res.lsf[0]):
        s1 = s2 = np.nan
    row.update(RCHI2=res.rchi2, FLAG=res.flag, LSF_SIGMA=res.lsf[0], LSF_ETA=res.lsf[1],
               LSF_GAMMA=res.lsf[2], LSF_S1=s1, LSF_S2=s2, NLINES=res.flux.size,
               NFOUND=int(res.found.sum()))
    for name, parts in names.items():
        f, e = res.named_flux(parts)
        row[f"{name}_FLUX"], row[f"{name}_FLUX_ERR"] = f, e
    for name in bands:
        f, e = res.bands.get(name, (np.nan, np.nan))
        row[f"{name}_FLUX"], row[f"{name}_FLUX_ERR"] = f, e
    return row


def mean_profiles(path: Path, config: Config, *, curves: bool = False) -> dict:
    """Profile per camera fitted on the mean output ``path``'s spectrum of highest median S/N
    (as the mean mode does); cameras whose fit fails are left out. With ``curves``, each
    value is (profile, width curve of that spectrum or None) (:func:`width_curves`)."""
    named = named_lines(config.lines.line_list)
    out = {}
    with open_fits(path) as hdul:
        meta, cams = _mean_meta(hdul, path)
        for cam in sorted(set(cams)):
            sel = np.flatnonzero(cams == cam)
            rows = np.asarray(meta["ROW"])[sel]
            flux = np.asarray(hdul[f"{cam.upper()}_FLUX"].data, dtype=float)[rows]
            ivar = np.asarray(hdul[f"{cam.upper()}_IVAR"].data, dtype=float)[rows]
            snr = np.array([np.median((f * np.sqrt(iv))[iv > 0]) if np.any(iv > 0) else 0.0
                            for f, iv in zip(flux, ivar, strict=True)])
            best = int(np.argmax(snr))
            vel = float(meta["HELIO_RV"][sel[best]]) if "HELIO_RV" in meta.colnames else 0.0
            loglam = np.log10(np.asarray(hdul[f"{cam[0].upper()}_WAVE"].data, dtype=float))
            disp = (np.asarray(hdul[f"{cam.upper()}_DISP"].data, dtype=float)[rows[best]][None]
                    if f"{cam.upper()}_DISP" in hdul else None)
            curve = width_curves(loglam, disp, config)
            curve = curve[0] if curve is not None else None
            lsf, bad = fit_profile(loglam, flux[best], ivar[best], arm=cam[0],
                                   config=config.decompose,
                                   named=named[np.asarray(named["CAMERA"]).astype(str) == cam[0]],
                                   velocity=vel, width_curve=curve)
            if not bad and np.all(np.isfinite(lsf)):
                lsf = tuple(float(v) for v in lsf)
                out[cam] = (lsf, curve) if curves else lsf
    return out


def mean_seeds(path: Path, config: Config, profiles: dict) -> dict:
    """The lines found in every mean spectrum of the mean output ``path``: {(CAMERA, IMG):
    log10 wavelengths of their centres}, the seeds of the exposure's fibres
    (``fibre_seeds``). Each camera's means are decomposed as the mean mode does, with the
    profile of ``profiles`` (:func:`mean_profiles` with ``curves``); cameras without one
    have no seeds."""
    named = named_lines(config.lines.line_list)
    out = {}
    with open_fits(path) as hdul:
        meta, cams = _mean_meta(hdul, path)
        for cam in sorted(set(cams) & set(profiles)):
            lsf, curve = profiles[cam]
            wave, flux, ivar = _common.camera_arrays(hdul, path, cam, f"{cam[0].upper()}_WAVE")
            loglam = np.log10(wave)
            sel = np.flatnonzero(cams == cam)
            mrows = np.asarray(meta["ROW"])[sel]
            disp = (np.asarray(hdul[f"{cam.upper()}_DISP"].data, dtype=float)[mrows]
                    if f"{cam.upper()}_DISP" in hdul else None)
            velocity = (np.asarray(meta["HELIO_RV"], dtype=float)[sel]
                        if "HELIO_RV" in meta.colnames else None)
            results = decompose_block(loglam, flux[mrows], ivar[mrows], cam[0], config, named,
                                      velocity, lsf=lsf, curves=width_curves(loglam, disp,
                                                                             config),
                                      lsf_curve=curve)
            for r, res in zip(sel, results, strict=True):
                if not res.flag & NOFIT:
                    out[(cam, int(meta["IMG"][r]))] = np.interp(
                        res.centre, np.arange(loglam.size), loglam)
    return out


def _seed_pixels(seeds: dict, cam: str, imgs, loglam):
    """Each fibre's seeds (:func:`mean_seeds`) as pixels of the grid ``loglam``, or None."""
    step = (loglam[-1] - loglam[0]) / (loglam.size - 1)
    return [None if (cam, int(i)) not in seeds
            else (seeds[(cam, int(i))] - loglam[0]) / step for i in imgs]


def decompose_fibres_file(path: Path, config: Config, mean_path: Path | None = None):
    """Decompositions of every sky-fibre spectrum of one extract output.

    Each camera's fibres are resampled onto the mean stage's grid of the arm
    (:func:`skymodelling.stages.mean.arm_grid`, flux-conserving) and decomposed with one
    profile per camera: the one fitted on the mean output ``mean_path`` of the same plate
    and MJD (:func:`mean_profiles`) when given (a single fibre has too few bright lines in
    the blue for a reliable fit), else fitted on the camera's fibres of highest median S/N
    (up to ``FIBRE_PROFILE_TRIES``), else the default profile (FLAG LSF_DEFAULT). Returns
    the table (one row per extract META row, same order), the images per camera (row
    ``ROW`` is the extract image row) and the grids. With ``fibre_seeds`` (and the mean
    output), each fibre's line search starts from the lines of its exposure's mean
    (:func:`mean_seeds`).
    """
    from .mean import arm_grid

    profiles = mean_profiles(mean_path, config, curves=True) if mean_path is not None else {}
    seeds = (mean_seeds(mean_path, config, profiles)
             if mean_path is not None and config.decompose.fibre_seeds else {})

    named = named_lines(config.lines.line_list)
    names = output_names(named)
    with open_fits(path) as hdul:
        try:
            meta = Table.read(hdul["META"], unit_parse_strict="silent", mask_invalid=False)
        except KeyError as exc:
            raise BossFileError(path, "no META HDU") from exc
        meta.convert_bytestring_to_unicode()
        cams = np.asarray(meta["CAMERA"]).astype(str)
        rows, images, grids = [None] * len(meta), {}, {}
        for cam in sorted(set(cams)):
            wave, flux, ivar = _common.camera_arrays(hdul, path, cam)
            loglam = grids.setdefault(cam[0], arm_grid(cam[0], config))
            sel = np.flatnonzero(cams == cam)
            erows = np.asarray(meta["ROW"])[sel]
            f, iv, corr = resample_flux(wave[erows], flux[erows], ivar[erows],
                                        loglam_edges(loglam), correlation=True)
            velocity = (np.asarray(meta["HELIO_RV"], dtype=float)[sel]
                        if "HELIO_RV" in meta.colnames else None)
            # each fibre's own DISP on the grid, when the profile was fitted with the mean's
            lsf, lsf_curve = profiles.get(cam, (None, None))
            curves, natives = None, None
            if f"{cam.upper()}_DISP" in hdul:
                disp = np.asarray(hdul[f"{cam.upper()}_DISP"].data, dtype=float)[erows]
                if lsf is None or lsf_curve is not None:
                    curves = width_curves(loglam, _fibre_disp(wave[erows], disp, loglam),
                                          config)
                lsf, natives = fibre_natives(lsf, wave[erows], disp, config)
            results = decompose_block(loglam, f, iv, cam[0], config, named, velocity,
                                      tries=FIBRE_PROFILE_TRIES, default=True, lsf=lsf,
                                      curves=curves, lsf_curve=lsf_curve,
                                      native_waves=natives,
                                      seeds=_seed_pixels(seeds, cam, np.asarray(meta["IMG"])[sel],
                                                         loglam),
                                      noise_corr=corr)
            image = {k: np.zeros((wave.shape[0], loglam.size), np.float32)
                     for k in ("CONT", "LINES")}
            for r, er, res in zip(sel, erows, results, strict=True):
                image["CONT"][er], image["LINES"][er] = res.CONT, res.LINES
                rows[r] = _result_row(meta, r, FIBRE_KEY_COLUMNS, res, names,
                                      band_names(config.decompose))
            images[cam] = image
    table = Table(rows=rows, names=list(rows[0])) if rows else Table()
    return table, images, {arm: 10.0 ** g for arm, g in grids.items()}


def fibre_natives(lsf, wave, disp, config: Config):
    """(profile, native pixel centres per fibre) for decomposing the sky fibres ``wave``
    (nfib, npix native, A) with DISP ``disp`` (A) on the grid: with ``native_pixels`` each
    fibre's lines are modelled as its resampling made them, and a profile fitted on the
    mean (``lsf``, the pixel boxes in its width) is narrowed to the instrument's
    (:func:`~skymodelling.spectral.profile.native_width_ratio`); else (lsf, None)."""
    if not config.decompose.native_pixels:
        return lsf, None
    wave = np.asarray(wave, dtype=float)
    if lsf is not None:
        ratio = native_width_ratio(np.asarray(disp, dtype=float)
                                   / np.abs(np.gradient(wave, axis=1)))
        lsf = (lsf[0] * ratio, *lsf[1:])
    return lsf, list(wave)


def _fibre_disp(wave, disp, loglam):
    """Each fibre's DISP on ``loglam`` (as :func:`skymodelling.stages.mean.mean_dispersion`
    takes it for the mean; 0 beyond the fibre's range)."""
    from .mean import mean_dispersion

    return np.array([mean_dispersion(w[None], d[None], loglam)
                     for w, d in zip(wave, disp, strict=True)])


def _hdus(table, lines, images, grids, primary, extname=EXTNAME) -> list:
    units = {"LSF_SIGMA": "pix", "LSF_GAMMA": "pix",
             **{c: "10**-17 erg s-1 cm-2" for c in table.colnames if c.endswith(("_FLUX",
                                                                                  "_FLUX_ERR"))}}
    hdus = [primary, table_hdu(table, extname, units)]
    if lines is not None:
        hdus.append(table_hdu(lines, "FITLINES", {"WAVE": "Angstrom",
                                                  "FLUX": "10**-17 erg s-1 cm-2",
                                                  "FLUX_ERR": "10**-17 erg s-1 cm-2",
                                                  "GROUP_FLUX": "10**-17 erg s-1 cm-2",
                                                  "GROUP_FLUX_ERR": "10**-17 erg s-1 cm-2"}))
    for arm in sorted(grids):
        hdu = fits.ImageHDU(grids[arm], name=f"{arm.upper()}_WAVE")
        hdu.header["BUNIT"] = "Angstrom"
        hdus.append(hdu)
    for cam in sorted(images):
        for name, values in images[cam].items():
            hdu = fits.ImageHDU(values.astype(np.float32), name=f"{cam.upper()}_{name}")
            hdu.header["BUNIT"] = FLUX_UNIT
            hdus.append(hdu)
    return hdus


def decompose_plate(task) -> dict:
    """Run the stage on one mean output (a worker task)."""
    source, config, out, strict, force = task

    def work(target, plate, mjd, failures):
        table, lines, images, grids = decompose_file(source, config, failures, strict)
        primary = _common.primary_hdu(STAGE, config, PLATE=plate, MJD=mjd, NDECOMP=len(table),
                                      MEAN=(source.name, "mean output decomposed"))
        write_hdus(target, _hdus(table, lines, images, grids, primary))
        return len(table)

    return _common.plate_task(STAGE, source, out, config, strict, target_of=output_path,
                              inputs={"mean": products.upstream_signature(source)}, work=work,
                              force=force)


def decompose_fibres_plate(task) -> dict:
    """Run ``--spectra fibres`` on one extract output (a worker task)."""
    source, config, out, strict, force = task
    header = fits.getheader(source)
    mean_path = products.MEAN.path(out, int(header["PLATE"]), int(header["MJD"]))
    mean_ok = products.is_complete(mean_path)
    inputs = {"extract": products.upstream_signature(source),
              "mean": products.upstream_signature(mean_path) if mean_ok else None}

    def work(target, plate, mjd, failures):
        # the fibre mode's problems get their own files, beside the mean mode's
        failures.stage = FIBRE_STAGE
        table, images, grids = decompose_fibres_file(source, config,
                                                     mean_path if mean_ok else None)
        primary = _common.primary_hdu(STAGE, config, PLATE=plate, MJD=mjd, NDECOMP=len(table),
                                      SPECTRA=("fibres", "sky-fibre spectra decomposed"),
                                      EXTRACT=(source.name, "extract output decomposed"),
                                      MEAN=(mean_path.name if mean_ok else "",
                                            "mean output giving the profiles"))
        write_hdus(target, _hdus(table, None, images, grids, primary, FIBRE_EXTNAME))
        return len(table)

    return _common.plate_task(STAGE, source, out, config, strict, target_of=fibre_output_path,
                              inputs=inputs, work=work, force=force)


def run_decompose(out, config: Config | None = None, *, spectra: str = "mean", workers: int = 1,
                  strict: bool = False, executor=None,
                  force: bool = False):
    """Decompose every complete mean output under ``out``, or with ``spectra="fibres"``
    every sky-fibre spectrum of every complete extract output; ``spectra="both"`` does the
    means and then the fibres (whose profiles come from the means) and returns the two
    summaries as a list (a single :class:`~skymodelling.stages._common.StageSummary`
    otherwise)."""
    config = config or Config()
    if spectra not in SPECTRA:
        raise SkyModellingError(f"spectra must be one of {', '.join(SPECTRA)}, "
                                f"not {spectra!r}")
    out = Path(out)
    if spectra == "both":
        kw = dict(workers=workers, strict=strict, executor=executor, force=force)
        return [run_decompose(out, config, spectra="mean", **kw),
                run_decompose(out, config, spectra="fibres", **kw)]
    if spectra == "fibres":
        sources = _common.extract_outputs(out)
        named_lines(config.lines.line_list)
        tasks = [(p, config, out, strict, force) for p in sources]
        return _common.run_tasks(STAGE, decompose_fibres_plate, tasks, out, workers, executor,
                                 name=FIBRE_STAGE)
    sources = products.MEAN.files(out)
    if not sources:
        raise SkyModellingError(f"{out}: no complete mean output (run skymodelling mean)")
    named_lines(config.lines.line_list)
    tasks = [(p, config, out, strict, force) for p in sources]
    return _common.run_tasks(STAGE, decompose_plate, tasks, out, workers, executor)


__all__ = ["run_decompose", "decompose_file", "decompose_fibres_file", "decompose_block",
           "named_lines", "output_path", "fibre_output_path"]
