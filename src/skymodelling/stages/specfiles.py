"""Extract from spec files: each exposure's sky at a fibre becomes an extract-format spectrum.

Users who have only ``spec-PLATE-MJD-FIBER.fits`` files (what most people download from the
SDSS archive) get the same output as ``skymodelling extract``
(``OUT/extract/<plate4>/sky-<plate4>-<mjd5>.fits`` with the same HDUs, units and completion
marker), so ``skymodelling lines/mean/decompose OUT`` and ``run --from enrich`` work on it.
Instead of the sky fibres of every frame, the "fibres" of an exposure and camera are the
spec files of that plate and MJD: each contributes its per-exposure ``sky`` (the pipeline's
sky model at that fibre) on the exposure's native pixels, as extract writes a frame's (rows
padded to the camera's longest exposure with masked pixels; the mean stage and
``decompose --spectra fibres`` resample them onto the arm's grid, and the latter models the
lines on these pixels). See docs/specfile.md.

:func:`exposure_native` is the pure computation of a row, :func:`exposure_on_grid` the same
resampled onto a grid (what the mean of one such fibre is); :func:`specfile_rows` turns one
:class:`~skymodelling.io.specfile.SpecFile` into META rows and arrays;
:func:`run_extract_specfiles` finds, groups, writes and marks.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack

from ..config import Config
from ..errors import BossFileError, SkyModellingError
from ..io import sppixmask
from ..io.fitsutil import write_hdus
from ..io.products import META_UNITS, table_hdu
from ..io.products import SKY_ARRAY_UNITS as _ARRAY_UNITS
from ..io.specfile import SpecExposure, SpecFile, find_specfiles, read_specfile
from ..spectral.resample import loglam_edges, pixel_edges, resample_flux
from . import _common
from .extract import BADCALIB, OUTSIDE, STAGE, frame_metadata, output_path

log = logging.getLogger(__name__)

#: CALIB card of the outputs: the spec files' own (per-exposure) flux calibration.
CALIB = "specfile"

#: SOURCE card of the outputs (the mean stage reads it to explain ``min_fibers``).
SOURCE = "specfiles"

#: SPPIXMASK bits of extract's ``mask_bits`` that do not mask a spec file's sky: COMBINEREJ
#: marks the pixels of an exposure that the coadd of the *object* rejected, which at bright
#: sky lines is most of their cores (the object's sky-subtraction residuals make them
#: outliers), while the exposure's ``sky`` there, the pipeline's sky model, is as good as
#: anywhere (in the shared real files it is set within 1.5 A of [OI] 6300 in 29 of the 71
#: red exposures, of Na D in 21 of the 71 blue ones, on 1.3 % of all pixels, median per
#: exposure; until extract algorithm 5 it masked them).
SPEC_IGNORED_BITS = ("COMBINEREJ",)


def exposure_native(exposure: SpecExposure, *, bad_bits: int = 0) -> dict:
    """One exposure's sky on its native pixels, as an extract row (pure).

    Returns ``WAVE`` (A, float64), ``FLUX`` (1e-17 erg/s/cm2/A, float32, 0 where masked),
    ``IVAR`` (float32, 0 where masked: ``bad_bits`` of SPPIXMASK, ``calib`` not positive,
    ``sky`` not finite, ``ivar`` not positive), ``MASK`` (int32, SPPIXMASK plus BADCALIB),
    ``DISP`` (A, float32).

    Examples
    --------
    >>> from astropy.io import fits
    >>> ll = 3.6 + 1.1e-4 * np.arange(5)
    >>> e = SpecExposure("B1-1", "b1", 1, fits.Header(), ll, np.full(5, 2.0), np.ones(5),
    ...                  np.zeros(5, np.int32), np.ones(5), np.array([1, 1, 0, 1, 1.0]))
    >>> r = exposure_native(e)
    >>> r["IVAR"].tolist(), int(r["MASK"][2]) == BADCALIB
    ([1.0, 1.0, 0.0, 1.0, 1.0], True)
    """
    mask = np.asarray(exposure.mask, dtype=np.int32)
    badcal = ~(np.isfinite(exposure.calib) & (exposure.calib > 0))
    mask = mask | np.where(badcal, BADCALIB, 0).astype(np.int32)
    bad = ((mask & bad_bits) != 0) | badcal | ~np.isfinite(exposure.sky) | ~(exposure.ivar > 0)
    return {"WAVE": exposure.wave.astype(np.float64),
            "FLUX": np.where(bad, 0.0, exposure.sky).astype(np.float32),
            "IVAR": np.where(bad, 0.0, exposure.ivar).astype(np.float32), "MASK": mask,
            "DISP": exposure.disp.astype(np.float32)}


def _padded(arrays: list[dict]) -> dict:
    """Rows of one camera padded to the longest: WAVE continued with the last step in
    log10, FLUX and IVAR 0, MASK OUTSIDE, DISP the end value."""
    n = max(a["WAVE"].size for a in arrays)
    out = {k: [] for k in ("WAVE", "FLUX", "IVAR", "MASK", "DISP")}
    for a in arrays:
        k = n - a["WAVE"].size
        ll = np.log10(a["WAVE"])
        step = ll[-1] - ll[-2]
        out["WAVE"].append(np.concatenate([a["WAVE"], 10.0 ** (ll[-1] + step
                                                                * np.arange(1, k + 1))]))
        out["FLUX"].append(np.pad(a["FLUX"], (0, k)))
        out["IVAR"].append(np.pad(a["IVAR"], (0, k)))
        out["MASK"].append(np.pad(a["MASK"], (0, k), constant_values=OUTSIDE))
        out["DISP"].append(np.pad(a["DISP"], (0, k), mode="edge"))
    return {key: np.array(v) for key, v in out.items()}


def exposure_on_grid(exposure: SpecExposure, loglam, *, bad_bits: int = 0) -> dict:
    """One exposure's sky resampled onto the grid ``loglam`` (pure).

    Parameters
    ----------
    exposure : SpecExposure
        Native pixels of one exposure and camera of a spec file.
    loglam : ndarray (nout,)
        log10 centres of the output grid (uniform).
    bad_bits : int
        SPPIXMASK bits that mask a pixel (extract's ``mask_bits``).

    Returns
    -------
    dict
        ``WAVE`` (A, float64), ``FLUX`` (1e-17 erg/s/cm2/A, float32), ``IVAR`` (float32, 0
        where masked), ``MASK`` (int32: OR of the SPPIXMASK bits of the native pixels a grid
        pixel overlaps, BADCALIB where ``calib`` is not positive, OUTSIDE beyond the
        exposure's pixels), ``DISP`` (A, float32: the line-spread sigma at the grid centres,
        nearest value beyond the exposure's pixels), ``CORR`` (float32 (2, npix): the
        noise correlation of each grid pixel with the next and the one after, which share
        native pixels; ``resample_flux(..., correlation=True)``).

    Examples
    --------
    >>> from astropy.io import fits
    >>> ll = 3.6 + 1.1e-4 * np.arange(200)
    >>> e = SpecExposure("B1-1", "b1", 1, fits.Header(), ll, np.full(200, 2.0),
    ...                  np.ones(200), np.zeros(200, np.int32), np.ones(200), np.ones(200))
    >>> g = exposure_on_grid(e, 3.601 + 1e-4 * np.arange(100))
    >>> float(g["FLUX"][50]), float(g["IVAR"][50]) > 1, int(g["MASK"][50])
    (2.0, True, 0)
    """
    loglam = np.asarray(loglam, dtype=float)
    native = exposure_native(exposure, bad_bits=bad_bits)
    wave, mask = native["WAVE"], native["MASK"]
    out_edges = loglam_edges(loglam)
    flux, ivar_out, corr = resample_flux(wave, native["FLUX"], native["IVAR"], out_edges,
                                         correlation=True)
    # MASK: OR of the bits of every native pixel a grid bin overlaps
    edges = pixel_edges(wave)
    lo, hi = out_edges[:-1], out_edges[1:]
    first = np.clip(np.searchsorted(edges, lo, side="right") - 1, 0, wave.size - 1)
    last = np.clip(np.searchsorted(edges, hi, side="left") - 1, 0, wave.size - 1)
    out_mask = np.zeros(loglam.size, dtype=np.int32)
    for t in range(int(np.max(last - first, initial=0)) + 1):
        k = first + t
        out_mask |= np.where(k <= last, mask[np.minimum(k, wave.size - 1)], 0)
    outside = (lo < edges[0]) | (hi > edges[-1])
    out_mask = np.where(outside, OUTSIDE, out_mask).astype(np.int32)
    disp = np.interp(10.0 ** loglam, wave, exposure.disp)
    return {"WAVE": 10.0 ** loglam, "FLUX": flux.astype(np.float32),
            "IVAR": np.where(outside, 0.0, ivar_out).astype(np.float32), "MASK": out_mask,
            "DISP": disp.astype(np.float32),
            "CORR": np.where(outside[None, :], 0.0, corr).astype(np.float32)}


def _plug_row(spec: SpecFile) -> Table:
    """A one-row plug map of the spec file's fibre (spAll values) for frame_metadata."""
    s = spec.spall
    fib = spec.fiberid
    return Table({"FIBERID": [fib], "SPECTROGRAPHID": [1 if 0 < fib <= 500 else 2],
                  "XFOCAL": [float(s.get("XFOCAL", np.nan))],
                  "YFOCAL": [float(s.get("YFOCAL", np.nan))],
                  "RA": [float(s.get("PLUG_RA", np.nan))],
                  "DEC": [float(s.get("PLUG_DEC", np.nan))],
                  "OBJTYPE": [str(s.get("OBJTYPE", ""))]})


def specfile_rows(spec: SpecFile, config: Config) -> dict[str, tuple[list, list]]:
    """META rows and native arrays of every exposure of one spec file, by camera.

    Returns ``{camera: (metas, arrays)}``: one META dict (:func:`frame_metadata`, from the
    exposure's header and the spec file's spAll row) and one :func:`exposure_native` dict
    per exposure of the camera.
    """
    bad_bits = sppixmask.bitmask([b for b in config.extract.mask_bits
                                  if b not in SPEC_IGNORED_BITS])
    run2d = str(spec.header.get("RUN2D", "")).strip()
    plug = _plug_row(spec)
    out: dict[str, tuple[list, list]] = {}
    for exposure in spec.exposures:
        meta = frame_metadata(exposure.header, plug, exposure.camera, run2d)
        meta["IMG"] = np.full(1, exposure.expid, dtype=np.int32)
        if meta["PLATE"][0] < 0:
            meta["PLATE"] = np.full(1, spec.plate, dtype=np.int32)
        if meta["MJD"][0] < 0:
            meta["MJD"] = np.full(1, spec.mjd, dtype=np.int32)
        metas, arrays = out.setdefault(exposure.camera, ([], []))
        metas.append(meta)
        arrays.append(exposure_native(exposure, bad_bits=bad_bits))
    return out


def group_specfiles(paths) -> dict[tuple[int, int], list[Path]]:
    """Spec files by (plate, MJD) of their names (the output files)."""
    from ..io.specfile import parse_specfile_name

    groups: dict[tuple[int, int], list[Path]] = {}
    for p in paths:
        plate, mjd, _fib = parse_specfile_name(Path(p).name)
        groups.setdefault((plate, mjd), []).append(Path(p))
    return groups


def _hdus(blocks: dict, config: Config, plate: int, mjd: int, run2d: str, nfiles: int):
    metas, images = [], []
    for camera in sorted(blocks):
        rows, arrays = blocks[camera]
        meta = Table({k: np.concatenate([m[k] for m in rows]) for k in rows[0]})
        meta["ROW"] = np.arange(len(meta), dtype=np.int32)
        metas.append(meta)
        padded = _padded(arrays)
        for name in ("WAVE", "FLUX", "IVAR", "MASK", "DISP"):
            hdu = fits.ImageHDU(padded[name], name=f"{camera.upper()}_{name}")
            if _ARRAY_UNITS[name]:
                hdu.header["BUNIT"] = _ARRAY_UNITS[name]
            images.append(hdu)
    meta = vstack(metas, join_type="exact")
    primary = _common.primary_hdu(
        STAGE, config, PLATE=plate, MJD=mjd, RUN2D=run2d, NSPEC=len(meta),
        CALIB=(CALIB, "spec files' per-exposure calibration"), REFEXPID=-1,
        SOURCE=(SOURCE, "made from spec-PLATE-MJD-FIBER files"),
        NSPECFIL=(nfiles, "spec files read"))
    return [primary, table_hdu(meta, "META", META_UNITS), *images], len(meta)


def extract_specfile_group(task) -> dict:
    """Write the extract-format output of the spec files of one plate and MJD (a task)."""
    (plate, mjd), files, config, out, strict, force = task
    from . import keys

    def work(target, plate, mjd, failures):
        blocks: dict[str, tuple[list, list]] = {}
        run2d, nfiles = "", 0
        for path in files:
            try:
                spec = read_specfile(path)
                got = specfile_rows(spec, config)
            except BossFileError as exc:
                if strict:
                    raise
                failures.add(exc.reason, file=exc.path)
                continue
            nfiles += 1
            run2d = run2d or str(spec.header.get("RUN2D", "")).strip()
            for camera, (metas, arrays) in got.items():
                b = blocks.setdefault(camera, ([], []))
                b[0].extend(metas)
                b[1].extend(arrays)
        if not blocks:
            raise BossFileError(files[0].parent, "no readable spec file")
        hdus, n = _hdus(blocks, config, plate, mjd, run2d, nfiles)
        write_hdus(target, hdus)
        return n

    return _common.run_task(STAGE, plate, mjd, out, config, strict,
                            target=output_path(out, plate, mjd),
                            inputs={"specfiles": keys.files_signature(files)}, work=work,
                            force=force, source=files[0].parent)


def run_extract_specfiles(spec_dir, out, config: Config | None = None, *, workers: int = 1,
                          strict: bool = False, executor=None,
                          force: bool = False) -> _common.StageSummary:
    """Extract-format outputs from every spec file under ``spec_dir`` (docs/specfile.md).

    Parameters
    ----------
    spec_dir : path-like
        A folder with ``spec-PLATE-MJD-FIBER.fits[.gz]`` files (searched recursively).
    out : path-like
        Output folder (``OUT/extract/<plate4>/sky-<plate4>-<mjd5>.fits``).
    config : Config, optional
        Uses extract's ``mask_bits`` and wavelength ranges.
    workers, strict, executor, force
        As for :func:`skymodelling.stages.extract.run_extract`.

    Examples
    --------
    >>> run_extract_specfiles("/work/shared/realsky", "OUT")   # doctest: +SKIP
    """
    config = config or Config()
    spec_dir, out = Path(spec_dir), Path(out)
    if not spec_dir.is_dir():
        raise SkyModellingError(f"{spec_dir}: no such directory (give the folder holding "
                                "the spec-PLATE-MJD-FIBER.fits files)")
    files = find_specfiles(spec_dir)
    if not files:
        raise SkyModellingError(f"{spec_dir}: no spec-PLATE-MJD-FIBER.fits file found")
    out.mkdir(parents=True, exist_ok=True)
    groups = group_specfiles(files)
    tasks = [(key, paths, config, out, strict, force) for key, paths in sorted(groups.items())]
    return _common.run_tasks(STAGE, extract_specfile_group, tasks, out, workers, executor)


__all__ = ["run_extract_specfiles", "exposure_native", "exposure_on_grid", "specfile_rows",
           "group_specfiles", "extract_specfile_group", "CALIB"]
