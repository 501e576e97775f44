"""Stage extract: every BOSS sky fibre becomes a flux-calibrated sky spectrum.

For every plugmap fibre with OBJTYPE 'SKY' in every exposure an spPlate lists
(its EXPIDnn cards) and every camera::

    sky  = (spFrame HDU0 + HDU6) * R / C * f        1e-17 erg/s/cm2/A per fibre
    ivar = spFrame HDU1 / (R / C * f)**2

with R = 1e-4 / (native log10 pixel width) and C the calibration (electrons
per 1e-4 dex bin per 1e-17 erg/s/cm2/A): by default one fixed reference
calibration per camera, taken from a good-seeing exposure, interpolated in
topocentric wavelength, rescaled by exposure time and (by default) with the
reference's atmospheric extinction divided out; f the diffuse-light
correction.  See docs/extract.md for the choices and the output format.

The computation (:func:`calibrate_sky`, :func:`frame_metadata`) works on
arrays; :func:`extract_plate` reads one plate's files and writes its output;
:func:`run_extract` finds the plates and runs them, resumably.
"""
from __future__ import annotations

import logging
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..config import Config
from ..errors import BossFileError, SkyModellingError
from ..io import paths, products, sppixmask
from ..io.fitsutil import get_hdu, header_float, header_int, header_str, open_fits, write_hdus
from ..io.plugmap import is_sky, read_plugmap
from ..io.products import (
    HEADER_TO_META,
    META_COLUMNS,
    META_UNITS,
    table_hdu,
)
from ..io.spfluxcalib import read_spfluxcalib
from ..io.spplate import read_spplate
from ..io.traceset import read_traceset
from ..sky.extinction import transmission
from . import _common

log = logging.getLogger(__name__)

STAGE = "extract"
C_KMS = 299792.458
#: Bits this stage adds to MASK, in positions SPPIXMASK leaves unused.
BADCALIB = 1 << 29   # calibration zero, negative or not finite at this pixel
OUTSIDE = 1 << 30    # outside the kept wavelength range of the camera

# ----------------------------------------------------------------- discovery

@dataclass
class PlateTask:
    """One spPlate (plate and MJD) to extract, or a plate folder without one."""

    run2d: str
    plate: int
    mjd: int
    folder: Path
    spplate: Path | None

    @property
    def name(self) -> str:
        return f"{self.plate:04d}-{self.mjd:05d}"


def discover_plates(raw, plates=None) -> list[PlateTask]:
    """Every spPlate under every RUN2D folder of ``raw`` (``RAW/<run2d>/<plate>/``).

    Plate folders without any spPlate are returned with ``spplate=None`` (and
    MJD -1) so that they are reported, not silently skipped.
    """
    raw = Path(raw)
    if not raw.is_dir():
        raise SkyModellingError(f"{raw}: no such directory")
    wanted = None if plates is None else {int(p) for p in plates}
    tasks = []
    for run2d in sorted(p for p in raw.iterdir() if p.is_dir() and p.name != "truth"):
        for folder in sorted(p for p in run2d.iterdir() if p.is_dir() and p.name.isdigit()):
            plate = int(folder.name)
            if wanted is not None and plate not in wanted:
                continue
            spplates = sorted(folder.glob("spPlate-*.fits"))
            for sp in spplates:
                m = re.fullmatch(r"spPlate-(\d+)-(\d+)\.fits", sp.name)
                if m:
                    tasks.append(PlateTask(run2d.name, plate, int(m.group(2)), folder, sp))
            if not spplates:
                tasks.append(PlateTask(run2d.name, plate, -1, folder, None))
    return tasks


# ------------------------------------------------------------- calibration

@dataclass
class ReferenceCalibration:
    """A camera's fixed calibration: C per second of exposure against topocentric wavelength."""

    camera: str
    wave: np.ndarray          # topocentric vacuum A, increasing
    c_per_second: np.ndarray
    path: str
    expid: int
    airmass: float

    def at(self, wave_topo, exptime: float) -> np.ndarray:
        """C for an exposure of ``exptime`` seconds at wavelengths ``wave_topo`` (0 outside)."""
        return np.interp(wave_topo, self.wave, self.c_per_second, left=0.0, right=0.0) * exptime


def load_reference(raw, config: Config) -> dict[str, ReferenceCalibration]:
    """Read the reference exposure's calibration for each camera.

    The reference spFluxcalib is combined over 9 fibres spread along the slit
    (median, after interpolation onto the central fibre's wavelengths, which
    are converted to topocentric with the reference's HELIO_RV).

    Raises
    ------
    SkyModellingError
        The reference files are missing or unusable (names them).
    """
    cfg = config.extract
    raw = Path(raw)
    refs = {}
    for camera in paths.CAMERAS:
        name = paths.spfluxcalib_name(camera, cfg.reference_expid)
        hits = sorted(raw.glob(f"*/{cfg.reference_plate:04d}/{name[:-3]}*"))
        if not hits:
            raise SkyModellingError(
                f"{raw}/*/{cfg.reference_plate:04d}/{name}: reference calibration not found "
                f"(plate {cfg.reference_plate}, exposure {cfg.reference_expid}); give another "
                "with --reference-plate/--reference-expid or use --calibration exposure")
        calib_path = hits[0]
        frame_path = paths.find_frame(calib_path.parent, "spFrame", camera, cfg.reference_expid)
        if frame_path is None:
            raise SkyModellingError(f"{calib_path.parent}: no spFrame for the reference "
                                    f"exposure {cfg.reference_expid} camera {camera}")
        calib, _ = read_spfluxcalib(calib_path)
        with open_fits(frame_path) as hdul:
            header = hdul[0].header.copy()
            wave_ts = read_traceset(get_hdu(hdul, 3, frame_path, "wavelength trace set",
                                            "table"), frame_path)
        exptime = header_float(header, "EXPTIME")
        airmass = header_float(header, "AIRMASS")
        helio = 1.0 + header_float(header, "HELIO_RV", missing=()) / C_KMS
        if not (np.isfinite(exptime) and exptime > 0):
            raise SkyModellingError(f"{frame_path}: reference EXPTIME missing or not positive")
        if not np.isfinite(helio):
            helio = 1.0
        rows = np.linspace(50, calib.shape[0] - 51, 9).astype(int)
        loglam = wave_ts.evaluate(calib.shape[1], rows)
        wave = 10.0 ** loglam * helio
        grid = wave[len(rows) // 2]
        # each fibre from its calibrated (positive) samples only: never blend C with
        # the zeros beyond WAVEMIN/WAVEMAX
        stack = np.array([np.interp(grid, w[c > 0], c[c > 0], left=np.nan, right=np.nan)
                          if np.any(c > 0) else np.full(grid.shape, np.nan)
                          for w, c in zip(wave, calib[rows], strict=True)])
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns beyond the band
            c_ref = np.nanmedian(np.where(stack > 0, stack, np.nan), axis=0)
        if not np.any(np.isfinite(c_ref)):
            raise SkyModellingError(f"{calib_path}: reference calibration is zero or NaN")
        # keep the calibrated span only: interpolating across its edge would blend
        # C with the zeros beyond and inflate the flux of the edge pixels
        span = np.flatnonzero(np.isfinite(c_ref) & (c_ref > 0))
        grid, c_ref = grid[span[0]:span[-1] + 1], np.nan_to_num(c_ref[span[0]:span[-1] + 1])
        if cfg.remove_reference_extinction:
            if not np.isfinite(airmass):
                raise SkyModellingError(f"{frame_path}: reference AIRMASS missing; cannot "
                                        "remove its extinction")
            c_ref = c_ref / transmission(grid, airmass)
        refs[camera] = ReferenceCalibration(camera, grid, c_ref / exptime, str(calib_path),
                                            cfg.reference_expid, airmass)
    return refs


def calibrate_sky(flux, sky, ivar, mask, dloglam, calib, *, scale: float = 1.0,
                  bad_bits: int = 0):
    """Calibrated sky, its inverse variance and the pixels to mask.

    Parameters
    ----------
    flux, sky, ivar : ndarray (nrow, npix)
        spFrame HDU0, HDU6 (flat-fielded electrons) and HDU1.
    mask : ndarray of int (nrow, npix)
        SPPIXMASK bits.
    dloglam : ndarray (nrow, npix)
        Native log10 pixel width.
    calib : ndarray (nrow, npix)
        C, electrons per 1e-4 dex bin per 1e-17 erg/s/cm2/A.
    scale : float
        Extra factor (the diffuse correction f).
    bad_bits : int
        SPPIXMASK bits that mask a pixel.

    Returns
    -------
    sky_flux, sky_ivar : ndarray (float32)
        1e-17 erg/s/cm2/A and its inverse variance; ivar is 0 where masked.
    out_mask : ndarray (int32)
        ``mask`` plus BADCALIB where C is unusable.

    Examples
    --------
    >>> one = np.ones((1, 3))
    >>> f, iv, m = calibrate_sky(one, one, one, np.zeros((1, 3), int), 1e-4 * one, 2 * one)
    >>> f.tolist(), iv.tolist()
    ([[1.0, 1.0, 1.0]], [[4.0, 4.0, 4.0]])
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        conv = (1e-4 / dloglam) / calib * scale
    badcal = ~(np.isfinite(conv) & (calib > 0))
    conv = np.where(badcal, 0.0, conv)
    sky_flux = (flux.astype(np.float64) + sky) * conv
    with np.errstate(divide="ignore", invalid="ignore"):
        sky_ivar = np.where(badcal, 0.0, ivar / conv**2)
    out_mask = np.asarray(mask, dtype=np.int32) | np.where(badcal, BADCALIB, 0).astype(np.int32)
    bad = ((out_mask & bad_bits) != 0) | badcal | ~np.isfinite(sky_flux) | ~(sky_ivar > 0)
    sky_flux = np.where(np.isfinite(sky_flux), sky_flux, 0.0)
    sky_ivar = np.where(bad, 0.0, sky_ivar)
    return sky_flux.astype(np.float32), sky_ivar.astype(np.float32), out_mask


def frame_metadata(header, plugmap, camera: str, run2d: str) -> dict:
    """Raw metadata columns for the rows of ``plugmap`` of one frame.

    Header values are shared by all rows. Missing keywords are NaN (floats)
    or -1 (integers); 0.0 in AIRMASS, SEEING*, RMSOFF* and REDDEN* means
    'unavailable' in BOSS headers and becomes NaN too.
    """
    n = len(plugmap)
    cols = {}
    for name, dtype, _unit, source in META_COLUMNS:
        kind, _, key = source.partition(":")
        if kind == "plug":
            value = np.asarray(plugmap[key]) if key in plugmap.colnames else None
            if value is not None and value.dtype.kind in "SU":
                value = np.char.strip(value.astype(str))
            if value is None:
                value = np.full(n, -1 if dtype[0] == "i" else ("" if dtype[0] == "U" else np.nan))
            cols[name] = np.asarray(value).astype(dtype)
            continue
        if kind == "camera":
            value = camera
        elif kind == "run2d":
            value = run2d
        elif kind == "row":
            value = -1
        elif dtype[0] == "i":
            value = header_int(header, key)
        elif dtype[0] == "U":
            value = header_str(header, key)
        else:
            value = header_float(header, key, missing=(0.0,) if kind == "hdr0" else ())
            value *= HEADER_TO_META.get(name, 1.0)   # mph -> km/h, inHg -> hPa
        cols[name] = np.full(n, value, dtype=dtype)
    return cols


# -------------------------------------------------------------- one plate

@dataclass
class _CameraBlock:
    """The sky spectra of one camera of a plate, before trimming."""

    meta: list = field(default_factory=list)
    wave: list = field(default_factory=list)
    flux: list = field(default_factory=list)
    ivar: list = field(default_factory=list)
    mask: list = field(default_factory=list)
    disp: list = field(default_factory=list)


def output_path(out, plate: int, mjd: int) -> Path:
    """Where extract writes plate ``plate`` observed on ``mjd``."""
    return products.SKY.path(out, plate, mjd)


def _exposures_of(task: PlateTask, failures: _common.FailureLog):
    sp = read_spplate(task.spplate)
    exposures = [(e.camera, e.expid) for e in sp.exposures]
    if not sp.complete:
        # EXPIDnn overflow (more than 99 frames): every spCFrame of this MJD counts
        failures.add(f"spPlate lists {len(sp.exposures)} of NEXP={sp.nexp} frames (EXPID "
                     "card overflow); using the spCFrame files of this MJD instead",
                     file=task.spplate)
        exposures = []
        for f in sorted(task.folder.glob("spCFrame-*.fits*")):
            parsed = paths.parse_filename(f.name) or {}
            if "camera" in parsed and header_int(fits.getheader(f), "MJD") == task.mjd:
                exposures.append((parsed["camera"], parsed["expid"]))
    return sorted(set(exposures))


def _exposure_calibration(task, camera, expid, rows, npix, hint="") -> np.ndarray:
    """The exposure's own spFluxcalib C at ``rows`` (float64, the spFrame's pixels)."""
    calib_path = paths.find_frame(task.folder, "spFluxcalib", camera, expid)
    if calib_path is None:
        raise BossFileError(task.folder / paths.spfluxcalib_name(camera, expid),
                            "no such file" + hint)
    calib, _ = read_spfluxcalib(calib_path, rows=rows)
    if calib.shape[1] < npix:
        raise BossFileError(calib_path, f"calibration has {calib.shape[1]} pixels, the "
                            f"spFrame {npix}")
    calib = calib[:, :npix].astype(np.float64)
    if not np.any(np.isfinite(calib) & (calib > 0)):
        raise BossFileError(calib_path, "calibration is zero or NaN everywhere")
    return calib


#: Vacuum wavelength windows (A) of the telluric O2 and H2O bands that the BOSS flux
#: calibration carries: H2O 0.65 um, O2 B with H2O 0.72 um (adjacent: one window), O2 A,
#: H2O 0.82 um, H2O 0.94 um.
#: They enclose the bands of the real spFluxcalib vectors (the calibration of the spec
#: files of plate 7338 departs from a smooth curve at 6860-6960, 7150-7350, 7590-7700,
#: 8100-8400 and 8900-9900 A) and of the simulator's telluric model.
TELLURIC_WINDOWS = ((6350.0, 6620.0), (6840.0, 7480.0), (7545.0, 7730.0), (7870.0, 8490.0),
                    (8780.0, 10050.0))
#: Width (A) of the band outside each window edge whose median fixes the baseline.
TELLURIC_EDGE = 25.0


def telluric_ratio(wave, ratio, windows=TELLURIC_WINDOWS, edge: float = TELLURIC_EDGE):
    """The telluric part of the ratio of two calibration vectors, 1 outside the bands.

    Within each of ``windows`` the ratio (one exposure's calibration over the
    reference's, on the same pixels) is divided by the straight line through its
    medians over ``edge`` A on either side (at the median wavelengths of those
    pixels): what is left is the ratio of the two exposures' telluric transmissions
    at the calibration's resolution, while the smooth parts (aperture losses,
    extinction, exposure time, throughput) cancel.
    Windows without valid pixels on both sides, and unusable pixels (ratio not
    finite or not positive), give 1.

    Parameters
    ----------
    wave : ndarray (nrow, npix)
        Wavelength of every pixel (A), increasing along each row.
    ratio : ndarray (nrow, npix)

    Returns
    -------
    ndarray (nrow, npix)

    Examples
    --------
    >>> w = np.linspace(7400.0, 7800.0, 401)[None, :]
    >>> band = np.where(np.abs(w - 7620.0) < 30.0, 0.5, 1.0)
    >>> t = telluric_ratio(w, 2.0 * (1.0 + (w - 7600.0) / 1e4) * band)
    >>> bool(np.allclose(t, band))
    True
    """
    wave = np.asarray(wave, dtype=float)
    ratio = np.asarray(ratio, dtype=float)
    valid = np.isfinite(ratio) & (ratio > 0)
    out = np.ones_like(ratio)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # rows with no pixels at an edge
        for lo, hi in windows:
            left = valid & (wave >= lo - edge) & (wave < lo)
            right = valid & (wave > hi) & (wave <= hi + edge)
            if not (left.any() and right.any()):
                continue
            q_lo = np.nanmedian(np.where(left, ratio, np.nan), axis=1, keepdims=True)
            q_hi = np.nanmedian(np.where(right, ratio, np.nan), axis=1, keepdims=True)
            w_lo = np.nanmedian(np.where(left, wave, np.nan), axis=1, keepdims=True)
            w_hi = np.nanmedian(np.where(right, wave, np.nan), axis=1, keepdims=True)
            base = q_lo + (q_hi - q_lo) * (wave - w_lo) / (w_hi - w_lo)
            inside = valid & (wave >= lo) & (wave <= hi) & np.isfinite(base)
            out = np.where(inside, ratio / np.where(inside, base, 1.0), out)
    return out


def _read_camera_exposure(task, camera, expid, config, refs):
    """Read and calibrate the sky fibres of one frame; returns a dict of arrays."""
    cfg = config.extract
    frame_path = paths.find_frame(task.folder, "spFrame", camera, expid)
    if frame_path is None:
        raise BossFileError(task.folder / paths.spframe_name(camera, expid), "no such file")
    cframe_path = paths.find_frame(task.folder, "spCFrame", camera, expid)
    if cframe_path is None:
        raise BossFileError(task.folder / paths.spcframe_name(camera, expid),
                            "no such file (needed for the COMBINEREJ mask)")
    with open_fits(frame_path) as hdul:
        header = hdul[0].header.copy()
        plugmap = read_plugmap(get_hdu(hdul, 5, frame_path, "plugmap", "table"),
                               path=frame_path)
        rows = np.flatnonzero(is_sky(plugmap))
        if rows.size == 0:
            return None
        images = {}
        for index, name in ((0, "flux"), (1, "ivar"), (2, "mask"), (6, "sky")):
            hdu = get_hdu(hdul, index, frame_path, name, "image")
            data = hdu.data
            if data is None or data.ndim != 2 or data.shape[0] != len(plugmap):
                raise BossFileError(frame_path, f"HDU {index} ({name}) has shape "
                                    f"{getattr(data, 'shape', None)}, expected "
                                    f"({len(plugmap)}, npix)")
            images[name] = np.asarray(data[rows], dtype=data.dtype.newbyteorder("="))
        wave_ts = read_traceset(get_hdu(hdul, 3, frame_path, "wavelength trace set", "table"),
                                frame_path)
        disp_ts = read_traceset(get_hdu(hdul, 4, frame_path, "dispersion trace set", "table"),
                                frame_path)
    npix = images["flux"].shape[1]
    with open_fits(cframe_path) as hdul:
        hdu = get_hdu(hdul, 2, cframe_path, "mask", "image")
        if hdu.data is None or hdu.data.shape[0] != len(plugmap) or hdu.data.shape[1] < npix:
            raise BossFileError(cframe_path, f"HDU 2 (mask) has shape "
                                f"{getattr(hdu.data, 'shape', None)}, expected "
                                f"({len(plugmap)}, >= {npix})")
        cmask = np.asarray(hdu.section[rows, :npix] if hasattr(hdu, "section") else
                           hdu.data[rows, :npix]).astype(np.int32)
    plugmap = plugmap[rows]
    loglam = wave_ts.evaluate(npix, rows)
    dloglam = wave_ts.native_dloglam(npix, rows)
    sigma_pix = disp_ts.evaluate(npix, rows)
    wave = 10.0**loglam
    exptime = header_float(header, "EXPTIME")
    if cfg.calibration == "fixed":
        if not (np.isfinite(exptime) and exptime > 0):
            raise BossFileError(frame_path, "EXPTIME missing or not positive")
        helio = header_float(header, "HELIO_RV", missing=())
        wave_topo = wave * (1.0 + (helio if np.isfinite(helio) else 0.0) / C_KMS)
        calib = refs[camera].at(wave_topo, exptime)
        if cfg.telluric_from_exposure:
            own = _exposure_calibration(task, camera, expid, rows, npix,
                                        "; or set extract.telluric_from_exposure false")
            with np.errstate(divide="ignore", invalid="ignore"):   # C = 0 beyond its range
                calib = calib * telluric_ratio(wave, own / calib)
        scale = cfg.diffuse_correction
    else:
        calib = _exposure_calibration(task, camera, expid, rows, npix)
        scale = 1.0
    flux, ivar, mask = calibrate_sky(
        images["flux"], images["sky"], images["ivar"], images["mask"] | cmask, dloglam,
        calib, scale=scale, bad_bits=sppixmask.bitmask(cfg.mask_bits))
    disp = sigma_pix * wave * np.log(10.0) * dloglam
    meta = frame_metadata(header, plugmap, camera, task.run2d)
    return dict(meta=meta, wave=wave, flux=flux, ivar=ivar, mask=mask,
                disp=disp.astype(np.float32))


def _trim(block: _CameraBlock, lo: float, hi: float):
    """Stack a camera's spectra on a common pixel window covering [lo, hi] A."""
    wave = np.concatenate(block.wave)
    inside = (wave >= lo) & (wave <= hi)
    cols = np.flatnonzero(inside.any(axis=0))
    if cols.size == 0:
        return None
    window = slice(cols[0], cols[-1] + 1)
    outside = ~inside[:, window]
    mask = np.concatenate(block.mask)[:, window] | np.where(outside, OUTSIDE, 0).astype(np.int32)
    ivar = np.where(outside, 0.0, np.concatenate(block.ivar)[:, window]).astype(np.float32)
    return dict(WAVE=wave[:, window], FLUX=np.concatenate(block.flux)[:, window], IVAR=ivar,
                MASK=mask, DISP=np.concatenate(block.disp)[:, window])


_ARRAY_UNITS = products.SKY_ARRAY_UNITS


#: The raw files of a plate folder that extract may read.
RAW_PATTERNS = ("spFrame-*.fits*", "spCFrame-*.fits*", "spFluxcalib-*.fits*")


def input_signature(task: PlateTask, refs) -> dict:
    """What an extract output is made from: its spPlate and the plate folder's frames (size,
    modification time, hash of the headers: a repaired, replaced or added file redoes the
    plate) and the content of the reference calibration (fixed calibration)."""
    from . import keys

    frames = [p for pattern in RAW_PATTERNS for p in task.folder.glob(pattern)]
    ref = None
    if refs:
        import hashlib

        h = hashlib.sha256()
        for camera in sorted(refs):
            h.update(np.ascontiguousarray(refs[camera].wave).tobytes())
            h.update(np.ascontiguousarray(refs[camera].c_per_second).tobytes())
        ref = h.hexdigest()[:16]
    return {"spplate": keys.file_signature(task.spplate), "frames": keys.files_signature(frames),
            "reference": ref}


def extract_plate(task_and_config) -> dict:
    """Extract one plate-MJD (a task for a worker); returns a small summary dict."""
    task, config, refs, out, strict, force = task_and_config
    if task.spplate is None:
        return _common.task_failure(STAGE, task.plate, task.mjd, out,
                                    "plate folder holds no spPlate file", file=task.folder,
                                    strict=strict)

    def work(target, plate, mjd, failures):
        exposures = _exposures_of(task, failures)
        blocks = {cam: _CameraBlock() for cam in paths.CAMERAS}
        for camera, expid in exposures:
            try:
                got = _read_camera_exposure(task, camera, expid, config, refs)
            except BossFileError as exc:
                if strict:
                    raise
                failures.add(exc.reason, expid=expid, camera=camera, file=exc.path)
                continue
            if got is None:
                failures.add("no OBJTYPE 'SKY' fibre in the plugmap", expid=expid,
                             camera=camera)
                continue
            block = blocks[camera]
            block.meta.append(got["meta"])
            for name in ("wave", "flux", "ivar", "mask", "disp"):
                getattr(block, name).append(got[name])
        hdus, metas = [], []
        for camera in paths.CAMERAS:
            block = blocks[camera]
            if not block.meta:
                continue
            arrays = _trim(block, *config.extract.wave_range(camera))
            if arrays is None:
                failures.add("no pixel inside the kept wavelength range", camera=camera)
                continue
            meta = Table({k: np.concatenate([m[k] for m in block.meta]) for k in block.meta[0]})
            meta["ROW"] = np.arange(len(meta), dtype=np.int32)
            metas.append(meta)
            for name, arr in arrays.items():
                hdu = fits.ImageHDU(arr, name=f"{camera.upper()}_{name}")
                if _ARRAY_UNITS[name]:
                    hdu.header["BUNIT"] = _ARRAY_UNITS[name]
                hdus.append(hdu)
        meta = _meta_table(metas)
        primary = _common.primary_hdu(
            STAGE, config, PLATE=plate, MJD=mjd, RUN2D=task.run2d, NSPEC=len(meta),
            CALIB=config.extract.calibration,
            REFEXPID=(config.extract.reference_expid if config.extract.calibration == "fixed"
                      else -1))
        write_hdus(target, [primary, table_hdu(meta, products.SKY.table, META_UNITS), *hdus])
        return len(meta)

    return _common.run_task(STAGE, task.plate, task.mjd, out, config, strict,
                            target=output_path(out, task.plate, task.mjd),
                            inputs=input_signature(task, refs), work=work, force=force,
                            source=task.folder)


def _meta_table(metas: list[Table]) -> Table:
    if metas:
        from astropy.table import vstack

        meta = vstack(metas, join_type="exact")
    else:
        meta = Table({name: np.zeros(0, dtype=dtype) for name, dtype, _, _ in META_COLUMNS})
    return meta




# --------------------------------------------------------------- the stage

#: platelist columns kept in ``OUT/platelist.fits`` for the merge stage's quality cuts.
PLATELIST_COLUMNS = ("PLATE", "MJD", "RUN2D", "PLATEQUALITY", "PLATESN2", "QUALCOMMENTS",
                     "PROGRAMNAME", "SURVEY")


def copy_platelist(raw, out) -> Path | None:
    """Keep the plate list's quality columns in ``OUT/platelist.fits`` (None if RAW has none)."""
    from ..io.platelist import read_platelist, write_platelist

    path = paths.find_platelist(raw)
    if path is None:
        log.warning("%s: no platelist.fits; merge cannot apply PLATEQUALITY", raw)
        return None
    table = read_platelist(path)
    keep = [c for c in PLATELIST_COLUMNS if c in table.colnames]
    target = Path(out) / "platelist.fits"
    write_platelist(target, table[keep])
    return target


def run_extract(raw, out, config: Config | None = None, *, workers: int = 1, plates=None,
                strict: bool = False, executor=None,
                force: bool = False) -> _common.StageSummary:
    """Extract every sky fibre of every coadded exposure under ``raw`` into ``out``.

    Parameters
    ----------
    raw : path-like
        A BOSS reduction tree (``RAW/<run2d>/<plate>/...``).
    out : path-like
        Output folder (``OUT/extract/<plate>/sky-<plate>-<mjd>.fits``).
    config : Config, optional
    workers : int
        Processes (one plate-MJD per task).
    plates : iterable of int, optional
        Only these plates.
    strict : bool
        Stop at the first problem instead of recording it in ``OUT/failures``.
    force : bool
        Redo every plate, even those whose output is complete and current.
    """
    config = config or Config()
    t0 = time.perf_counter()
    out = Path(out)
    tasks = discover_plates(raw, plates)
    if not tasks and plates is None:
        raise SkyModellingError(f"{raw}: no plate folder found (expected RAW/<run2d>/<plate>/)")
    _common.check_plates(plates, [t.plate for t in tasks], raw)
    out.mkdir(parents=True, exist_ok=True)
    _common.remove_stale_parts(out / STAGE)
    refs = load_reference(raw, config) if config.extract.calibration == "fixed" else None
    copy_platelist(raw, out)
    summary = _common.StageSummary(STAGE, n_tasks=len(tasks))
    args = [(t, config, refs, out, strict, force) for t in tasks]
    for res in _common.map_tasks(extract_plate, args, workers, desc=STAGE,
                                 executor=executor):
        summary.add(res)
    summary.finish(out, t0)
    return summary
