"""Stage decompose: emission lines and continuum of every mean sky spectrum.

For every complete mean output, each mean spectrum (one exposure and camera on the
1e-4 dex grid) is split into a smooth continuum and emission lines by
:func:`skymodelling.spectral.decompose.decompose_spectrum`. The line profile is
fitted once per camera and file, on its spectrum of highest median S/N
(:func:`skymodelling.spectral.decompose.fit_profile`), and fixed for the others.

Output: ``OUT/decompose/<plate4>/decomp-<plate4>-<mjd5>.fits`` (docs/decompose.md).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..config import Config
from ..errors import BossFileError, SkyModellingError
from ..io.fitsutil import open_fits, write_hdus
from ..spectral.decompose import NOFIT, decompose_spectrum, fit_profile
from ..spectral.features import load_features
from ..spectral.resample import COADD_DLOGLAM
from . import _common
from .extract import FLUX_UNIT, table_hdu

log = logging.getLogger(__name__)

STAGE = "decompose"
EXTNAME = "DECOMPMETA"
KEY_COLUMNS = ("PLATE", "MJD", "IMG", "CAMERA", "ROW")
#: Named lines that are sums of fitted components (blends at BOSS resolution).
COMBINED = {"NAD": ("NAD1", "NAD2"), "NA5686": ("NA5683", "NA5688")}


def output_path(out, plate: int, mjd: int) -> Path:
    """Where the decompose stage writes plate ``plate`` observed on ``mjd``."""
    return Path(out) / STAGE / f"{plate:04d}" / f"decomp-{plate:04d}-{mjd:05d}.fits"


def named_lines(line_list=None) -> Table:
    """The named single lines fitted (NAME, CAMERA, WAVE): the ``line`` features of the
    lines stage's list that are neither sums of others nor band windows."""
    feats = load_features(line_list)
    feats = feats[np.asarray(feats["KIND"]).astype(str) == "line"]
    notes = np.char.lower(np.asarray(feats["NOTE"]).astype(str))
    keep = (np.char.find(notes, "together") < 0) & (np.char.find(notes, "window") < 0)
    keep &= ~np.isin(np.asarray(feats["NAME"]).astype(str), list(COMBINED))
    return feats[keep]


def output_names(named: Table) -> list[str]:
    """Names of the flux columns of DECOMPMETA (single lines, then the sums)."""
    single = list(np.asarray(named["NAME"]).astype(str))
    return single + [k for k, parts in COMBINED.items() if set(parts) <= set(single)]


def decompose_block(loglam, flux, ivar, arm: str, config: Config, named: Table,
                    velocity=None):
    """Decompose the rows of one camera (2-D arrays); the profile is fitted on the best row.

    ``velocity``: the heliocentric correction (km/s) of each row (MEANMETA ``HELIO_RV``),
    used to place the named lines on the heliocentric grid; None: 0.
    """
    cfg = config.decompose
    sel = named[np.asarray(named["CAMERA"]).astype(str) == arm]
    vel = np.zeros(len(flux)) if velocity is None else np.asarray(velocity, dtype=float)
    vel = np.where(np.isfinite(vel), vel, 0.0)
    snr = np.array([np.median((f * np.sqrt(iv))[iv > 0]) if np.any(iv > 0) else 0.0
                    for f, iv in zip(flux, ivar, strict=True)])
    lsf = None
    if cfg.lsf_sigma is None:
        best = int(np.argmax(snr))
        lsf, bad = fit_profile(loglam, flux[best], ivar[best], arm=arm, config=cfg, named=sel,
                               velocity=float(vel[best]))
        if bad or not np.all(np.isfinite(lsf)):
            lsf = None
    return [decompose_spectrum(loglam, f, iv, arm=arm, config=cfg, named=sel, lsf=lsf,
                               velocity=float(v))
            for f, iv, v in zip(flux, ivar, vel, strict=True)]


def decompose_file(path: Path, config: Config, failures: _common.FailureLog,
                   strict: bool = False):
    """Decompositions of every mean spectrum of one mean output.

    Returns the DECOMPMETA table, the line table, the images per camera and the grids.
    """
    named = named_lines(config.lines.line_list)
    names = output_names(named)
    with open_fits(path) as hdul:
        try:
            meta = Table.read(hdul["MEANMETA"], unit_parse_strict="silent", mask_invalid=False)
        except KeyError as exc:
            raise BossFileError(path, "no MEANMETA HDU") from exc
        meta.convert_bytestring_to_unicode()
        cams = np.asarray(meta["CAMERA"]).astype(str)
        rows, line_rows, images, grids = [], [], {}, {}
        for cam in sorted(set(cams)):
            try:
                wave = np.asarray(hdul[f"{cam[0].upper()}_WAVE"].data, dtype=float)
                flux = np.asarray(hdul[f"{cam.upper()}_FLUX"].data, dtype=float)
                ivar = np.asarray(hdul[f"{cam.upper()}_IVAR"].data, dtype=float)
            except KeyError as exc:
                raise BossFileError(path, f"no {exc.args[0]} HDU for camera {cam}") from exc
            loglam = np.log10(wave)
            grids[cam[0]] = wave
            sel = np.flatnonzero(cams == cam)
            mrows = np.asarray(meta["ROW"])[sel]
            velocity = (np.asarray(meta["HELIO_RV"], dtype=float)[sel]
                        if "HELIO_RV" in meta.colnames else None)
            results = decompose_block(loglam, flux[mrows], ivar[mrows], cam[0], config, named,
                                      velocity)
            images[cam] = {k: np.array([getattr(r, k) for r in results])
                           for k in ("CONT", "LINES", "CONT_SMOOTH")}
            for r, res in zip(sel, results, strict=True):
                row = {k: meta[k][r] for k in KEY_COLUMNS}
                row.update(RCHI2=res.rchi2, FLAG=res.flag, LSF_SIGMA=res.lsf[0],
                           LSF_ETA=res.lsf[1], LSF_GAMMA=res.lsf[2], NLINES=res.flux.size,
                           NFOUND=int(res.found.sum()))
                for name in names:
                    f, e = res.named_flux(COMBINED.get(name, (name,)))
                    row[f"{name}_FLUX"], row[f"{name}_FLUX_ERR"] = f, e
                rows.append(row)
                if res.flag & NOFIT:
                    reason = "too few good pixels: not decomposed"
                    if strict:
                        raise SkyModellingError(f"{path}: exposure {row['IMG']} {cam}: {reason}")
                    failures.add(reason, expid=int(row["IMG"]), camera=cam, file=path)
                n = res.flux.size
                line_rows.append({
                    "IMG": np.full(n, row["IMG"], dtype=np.int32),
                    "CAMERA": np.full(n, cam, dtype="U3"),
                    "ROW": np.full(n, int(meta["ROW"][r]), dtype=np.int32),
                    "WAVE": 10.0 ** (loglam[0] + COADD_DLOGLAM * np.asarray(res.centre)),
                    "FLUX": np.asarray(res.flux, dtype=float),
                    "FLUX_ERR": np.asarray(res.flux_err, dtype=float),
                    "FOUND": np.asarray(res.found, dtype=bool),
                    "NAME": np.asarray(res.name).astype("U16")})
    table = Table(rows=rows, names=list(rows[0]) if rows else None) if rows else Table()
    columns = ("IMG", "CAMERA", "ROW", "WAVE", "FLUX", "FLUX_ERR", "FOUND", "NAME")
    dtypes = (np.int32, "U3", np.int32, float, float, float, bool, "U16")
    lines = Table({c: np.concatenate([d[c] for d in line_rows]) if line_rows
                   else np.zeros(0, dtype=t) for c, t in zip(columns, dtypes, strict=True)})
    return table, lines, images, grids


def _hdus(table, lines, images, grids, primary) -> list:
    units = {"LSF_SIGMA": "pix", "LSF_GAMMA": "pix",
             **{c: "10**-17 erg s-1 cm-2" for c in table.colnames if c.endswith(("_FLUX",
                                                                                  "_FLUX_ERR"))}}
    hdus = [primary, table_hdu(table, EXTNAME, units),
            table_hdu(lines, "FITLINES", {"WAVE": "Angstrom", "FLUX": "10**-17 erg s-1 cm-2",
                                          "FLUX_ERR": "10**-17 erg s-1 cm-2"})]
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
    from .lines import input_signature

    source, config, out, strict = task

    def work(target, plate, mjd, failures):
        table, lines, images, grids = decompose_file(source, config, failures, strict)
        primary = _common.primary_hdu(STAGE, config, PLATE=plate, MJD=mjd, NDECOMP=len(table),
                                      MEAN=(source.name, "mean output decomposed"))
        write_hdus(target, _hdus(table, lines, images, grids, primary))
        return len(table)

    return _common.plate_task(STAGE, source, out, config, strict, target_of=output_path,
                              inputs={"mean": input_signature(source)}, work=work)


def run_decompose(out, config: Config | None = None, *, spectra: str = "mean", workers: int = 1,
                  strict: bool = False, executor=None) -> _common.StageSummary:
    """Decompose every complete mean output under ``out`` (``spectra``: only ``mean``)."""
    config = config or Config()
    if spectra != "mean":
        raise SkyModellingError(f"spectra must be 'mean' (the only kind supported), "
                                f"not {spectra!r}")
    t0 = time.perf_counter()
    out = Path(out)
    _common.remove_stale_parts(out / STAGE)
    sources = [p for p in sorted((out / "mean").glob("*/mean-*.fits"))
               if _common.marker_path(p).is_file()]
    if not sources:
        raise SkyModellingError(f"{out}: no complete mean output (run skymodelling mean)")
    named_lines(config.lines.line_list)
    summary = _common.StageSummary(STAGE, n_tasks=len(sources))
    tasks = [(p, config, out, strict) for p in sources]
    for res in _common.map_tasks(decompose_plate, tasks, workers, desc=STAGE,
                                 executor=executor):
        summary.add(res)
    summary.finish(out, t0)
    return summary


__all__ = ["run_decompose", "decompose_file", "decompose_block", "named_lines", "output_path"]
