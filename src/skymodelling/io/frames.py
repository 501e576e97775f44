"""spFrame and spCFrame files: one camera, one exposure, 500 fibres.

Both products share the HDU order (datamodel sections 2-3)::

    0 flux   1 ivar   2 mask   3 wavelength   4 dispersion
    5 plugmap   6 sky   7 x (trace position)   8 superflat

In an spFrame, HDU0 is sky-subtracted flat-fielded electrons per native pixel
and HDUs 3-4 are trace sets (log10 vacuum Angstrom; LSF sigma in native
pixels); the file has no EXTNAMEs. In an spCFrame, HDU0 is flux-calibrated
(1e-17 erg/s/cm^2/A), HDU3 is a per-pixel log10-wavelength image and HDU4 a
sigma image in coadd (1e-4 dex) pixels; HDUs 1-8 carry EXTNAMEs.

Readers read HDUs by index and only those needed; with ``rows`` an
uncompressed file has only the requested fibre rows read from disk.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..errors import BossFileError
from .fitsutil import (
    clean_header,
    get_hdu,
    header_int,
    header_str,
    image_shape,
    normalize_rows,
    open_fits,
    read_image,
    write_hdus,
)
from .paths import parse_filename
from .plugmap import plugmap_hdu, read_plugmap
from .traceset import TraceSet, read_traceset, traceset_hdu

__all__ = [
    "Frame",
    "HDU_NAMES",
    "SPCFRAME_EXTNAMES",
    "CALIBRATED_BUNIT",
    "read_spframe",
    "read_spcframe",
    "read_frame",
    "write_spframe",
    "write_spcframe",
]

log = logging.getLogger(__name__)

#: What each HDU holds, by index.
HDU_NAMES = ("flux", "ivar", "mask", "wavelength", "dispersion", "plugmap", "sky", "x",
             "superflat")
#: EXTNAMEs of an spCFrame (HDU0 has none).
SPCFRAME_EXTNAMES = (None, "IVAR", "MASK", "WAVELENGTH", "WAVEDISP", "PLUGMAP", "SKY", "X",
                     "SUPERFLAT")
#: BUNIT of calibrated flux (spCFrame and spPlate HDU0).
CALIBRATED_BUNIT = "1E-17 erg/cm^2/s/Ang"


@dataclass
class Frame:
    """The fibre rows read from one spFrame or spCFrame.

    Attributes
    ----------
    product : {"spFrame", "spCFrame"}
    path : pathlib.Path
    header : astropy.io.fits.Header
        Primary header.
    rows : ndarray of int
        0-based rows of the file that were read.
    fiberid : ndarray of int
        Plugmap FIBERID of those rows.
    flux, ivar : ndarray, float32, (nrow, npix)
    mask : ndarray, int32, (nrow, npix)
        SPPIXMASK bits.
    loglam : ndarray, float64, (nrow, npix)
        log10(vacuum, heliocentric Angstrom).
    dispersion : ndarray, (nrow, npix)
        LSF sigma: native pixels (spFrame, float64) or coadd 1e-4 dex pixels
        (spCFrame, float32 as stored).
    plugmap : astropy.table.Table
        Plugmap rows of ``rows``.
    sky : ndarray, float32, (nrow, npix) or None
        Sky subtracted from ``flux`` (None when not read).
    wave_traceset, disp_traceset : TraceSet or None
        spFrame only: HDU3 and HDU4 for all fibres of the file.
    camera : str
    expid, plate, mjd : int
        From CAMERAS, EXPOSURE, PLATEID, MJD (-1 when absent).
    """

    product: str
    path: Path
    header: fits.Header
    rows: np.ndarray
    fiberid: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray
    loglam: np.ndarray
    dispersion: np.ndarray
    plugmap: Table
    sky: np.ndarray | None = None
    wave_traceset: TraceSet | None = None
    disp_traceset: TraceSet | None = None
    camera: str = ""
    expid: int = -1
    plate: int = -1
    mjd: int = -1

    @property
    def nrow(self) -> int:
        """Number of fibre rows read."""
        return self.flux.shape[0]

    @property
    def npix(self) -> int:
        """Pixels per fibre."""
        return self.flux.shape[1]

    @property
    def exptime(self) -> float:
        """EXPTIME in seconds (NaN when absent)."""
        value = self.header.get("EXPTIME")
        return float(value) if value is not None else float("nan")


# --------------------------------------------------------------------- reading

def _frame_geometry(hdul, path):
    """Check HDU0 and the plugmap; return (nfiber, npix)."""
    shape = image_shape(get_hdu(hdul, 0, path, "flux", "image"))
    if len(shape) != 2:
        raise BossFileError(path, f"HDU 0 (flux) has shape {shape}, expected (nfiber, npix)")
    plug = get_hdu(hdul, 5, path, "plugmap", "table")
    nplug = int(plug.header.get("NAXIS2", 0))
    if nplug != shape[0]:
        raise BossFileError(path, f"HDU 0 (flux) has {shape[0]} fibre rows but the plugmap "
                                  f"(HDU 5) has {nplug}")
    return shape


def _image(hdul, index, path, shape, rows, dtype=None):
    hdu = get_hdu(hdul, index, path, HDU_NAMES[index], "image")
    got = image_shape(hdu)
    if got != tuple(shape):
        raise BossFileError(path, f"HDU {index} ({HDU_NAMES[index]}) has shape {got}, "
                                  f"expected {tuple(shape)} like the flux")
    return read_image(hdu, rows, dtype)


def _traceset(hdul, index, path, nfiber):
    hdu = get_hdu(hdul, index, path, f"{HDU_NAMES[index]} trace set", "table")
    ts = read_traceset(hdu, path)
    if ts.nfiber != nfiber:
        raise BossFileError(path, f"HDU {index} ({HDU_NAMES[index]} trace set) has "
                                  f"{ts.nfiber} fibres, expected {nfiber}")
    return ts


def _identity(path, header):
    camera = header_str(header, "CAMERAS")
    parsed = parse_filename(path) or {}
    if not camera:
        camera = parsed.get("camera", "")
    expid = header_int(header, "EXPOSURE")
    if expid < 0:
        expid = parsed.get("expid", -1)
    return dict(camera=camera, expid=expid, plate=header_int(header, "PLATEID"),
                mjd=header_int(header, "MJD"))


def _read(path, rows, with_sky, product):
    path = Path(path)
    with open_fits(path) as hdul:
        nfiber, npix = _frame_geometry(hdul, path)
        sel = normalize_rows(rows, nfiber, path)
        header = hdul[0].header.copy()
        flux = _image(hdul, 0, path, (nfiber, npix), sel, np.float32)
        ivar = _image(hdul, 1, path, (nfiber, npix), sel, np.float32)
        mask = _image(hdul, 2, path, (nfiber, npix), sel, np.int32)
        wave_ts = disp_ts = None
        if product == "spFrame":
            wave_ts = _traceset(hdul, 3, path, nfiber)
            disp_ts = _traceset(hdul, 4, path, nfiber)
            loglam = wave_ts.evaluate(npix, sel)
            dispersion = disp_ts.evaluate(npix, sel)
        else:
            loglam = _image(hdul, 3, path, (nfiber, npix), sel, np.float64)
            dispersion = _image(hdul, 4, path, (nfiber, npix), sel)
        plugmap = read_plugmap(hdul[5], sel, path)
        sky = _image(hdul, 6, path, (nfiber, npix), sel, np.float32) if with_sky else None
    log.debug("read %s rows of %s", "all" if sel is None else len(sel), path)
    return Frame(
        product=product, path=path, header=header,
        rows=np.arange(nfiber) if sel is None else sel,
        fiberid=np.asarray(plugmap["FIBERID"]).astype(np.int64),
        flux=flux, ivar=ivar, mask=mask, loglam=loglam, dispersion=dispersion,
        plugmap=plugmap, sky=sky, wave_traceset=wave_ts, disp_traceset=disp_ts,
        **_identity(path, header))


def read_spframe(path, rows=None, *, with_sky: bool = True) -> Frame:
    """Read an spFrame (uncalibrated, trace-set wavelengths).

    Parameters
    ----------
    path : path-like
        ``spFrame-{cam}-{expid8}.fits[.gz]``.
    rows : int array, bool mask or slice, optional
        0-based fibre rows to read (row = FIBERID - 1 - offset); default all.
    with_sky : bool
        Also read the sky model (HDU6).

    Returns
    -------
    Frame
        ``loglam`` and ``dispersion`` are the HDU3/HDU4 trace sets evaluated
        at pixels 0..npix-1.

    Raises
    ------
    BossFileError
        Missing, corrupt or truncated file; HDU missing, of the wrong type or shape.
    """
    return _read(path, rows, with_sky, "spFrame")


def read_spcframe(path, rows=None, *, with_sky: bool = True) -> Frame:
    """Read an spCFrame (flux-calibrated, per-pixel wavelength image).

    Same parameters as :func:`read_spframe`; ``loglam`` is HDU3 and
    ``dispersion`` HDU4 (sigma in 1e-4 dex pixels).
    """
    return _read(path, rows, with_sky, "spCFrame")


def read_frame(path, rows=None, *, with_sky: bool = True) -> Frame:
    """Read an spFrame or spCFrame, telling them apart by content.

    HDU3 a one-row table: spFrame; HDU3 an image: spCFrame.
    """
    path = Path(path)
    with open_fits(path) as hdul:
        hdu3 = get_hdu(hdul, 3, path, "wavelength")
        is_table = isinstance(hdu3, fits.BinTableHDU) and int(hdu3.header.get("NAXIS2", 0)) == 1
        is_image = isinstance(hdu3, (fits.ImageHDU, fits.PrimaryHDU))
    if is_table:
        return read_spframe(path, rows, with_sky=with_sky)
    if is_image:
        return read_spcframe(path, rows, with_sky=with_sky)
    raise BossFileError(path, "HDU 3 is neither a one-row trace-set table (spFrame) nor a "
                              "wavelength image (spCFrame)")


# --------------------------------------------------------------------- writing

def _as_image(name, array, dtype, shape=None):
    a = np.asarray(array, dtype=dtype)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (nfiber, npix), got shape {a.shape}")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name} has shape {a.shape}, expected {tuple(shape)}")
    return a


def _common_images(flux, ivar, mask, sky, x, superflat):
    flux = _as_image("flux", flux, np.float32)
    shape = flux.shape
    ivar = _as_image("ivar", ivar, np.float32, shape)
    mask = _as_image("mask", np.asarray(mask).astype(np.int32, copy=False), np.int32, shape)
    sky = _as_image("sky", sky, np.float32, shape)
    x = np.zeros(shape, np.float32) if x is None else _as_image("x", x, np.float32, shape)
    superflat = (np.ones(shape, np.float32) if superflat is None
                 else _as_image("superflat", superflat, np.float32, shape))
    return flux, ivar, mask, sky, x, superflat


def _check_plugmap(plugmap, nfiber):
    if len(plugmap) != nfiber:
        raise ValueError(f"plugmap has {len(plugmap)} rows, images have {nfiber} fibres")
    for col in ("OBJTYPE", "FIBERID"):
        if col not in plugmap.colnames if isinstance(plugmap, Table) else col not in plugmap:
            raise ValueError(f"plugmap lacks column {col}")


def write_spframe(path, header, flux, ivar, mask, wave_traceset: TraceSet,
                  disp_traceset: TraceSet, plugmap, sky, x=None, superflat=None) -> Path:
    """Write an spFrame (no EXTNAMEs, trace sets in HDU3/HDU4), atomically.

    Parameters
    ----------
    path : path-like
        Output name; ``.fits.gz`` is compressed.
    header : astropy.io.fits.Header or mapping
        Primary-header keywords (PLATEID, MJD, EXPOSURE, CAMERAS, EXPTIME, ...).
    flux, ivar, sky, x, superflat : array_like (nfiber, npix)
        Written as float32; ``x`` defaults to zeros, ``superflat`` to ones.
    mask : array_like (nfiber, npix)
        Written as int32.
    wave_traceset, disp_traceset : TraceSet
        Each with ``nfiber`` traces.
    plugmap : astropy.table.Table
        ``nfiber`` rows, at least OBJTYPE and FIBERID.

    Returns
    -------
    pathlib.Path
    """
    flux, ivar, mask, sky, x, superflat = _common_images(flux, ivar, mask, sky, x, superflat)
    nfiber = flux.shape[0]
    for name, ts in (("wave_traceset", wave_traceset), ("disp_traceset", disp_traceset)):
        if ts.nfiber != nfiber:
            raise ValueError(f"{name} has {ts.nfiber} fibres, images have {nfiber}")
    _check_plugmap(plugmap, nfiber)
    hdr = clean_header(header)
    hdr.remove("BUNIT", ignore_missing=True)
    hdus = [
        fits.PrimaryHDU(flux, header=hdr),
        fits.ImageHDU(ivar),
        fits.ImageHDU(mask),
        traceset_hdu(wave_traceset),
        traceset_hdu(disp_traceset),
        plugmap_hdu(plugmap, extname=None),
        fits.ImageHDU(sky),
        fits.ImageHDU(x),
        fits.ImageHDU(superflat),
    ]
    return write_hdus(path, hdus)


def write_spcframe(path, header, flux, ivar, mask, loglam, dispersion, plugmap, sky,
                   x=None, superflat=None) -> Path:
    """Write an spCFrame (EXTNAMEs on HDUs 1-8, BUNIT in HDU0), atomically.

    Parameters are as for :func:`write_spframe`, except ``loglam`` (log10
    Angstrom per pixel) and ``dispersion`` (sigma in 1e-4 dex pixels) are
    (nfiber, npix) images. Images are float32 except ``loglam``, which is
    kept float64 (the pipeline's wavelengths are double precision; float32
    would quantise log10(lambda) to ~5e-7 dex).
    """
    flux, ivar, mask, sky, x, superflat = _common_images(flux, ivar, mask, sky, x, superflat)
    shape = flux.shape
    loglam = _as_image("loglam", loglam, np.float64, shape)
    dispersion = _as_image("dispersion", dispersion, np.float32, shape)
    _check_plugmap(plugmap, shape[0])
    hdr = clean_header(header)
    hdr["BUNIT"] = CALIBRATED_BUNIT
    names = SPCFRAME_EXTNAMES
    hdus = [
        fits.PrimaryHDU(flux, header=hdr),
        fits.ImageHDU(ivar, name=names[1]),
        fits.ImageHDU(mask, name=names[2]),
        fits.ImageHDU(loglam, name=names[3]),
        fits.ImageHDU(dispersion, name=names[4]),
        plugmap_hdu(plugmap, extname=names[5]),
        fits.ImageHDU(sky, name=names[6]),
        fits.ImageHDU(x, name=names[7]),
        fits.ImageHDU(superflat, name=names[8]),
    ]
    return write_hdus(path, hdus)
