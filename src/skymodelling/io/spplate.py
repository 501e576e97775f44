"""spPlate files: the coadd of one plate-MJD (datamodel section 5).

What this package needs from an spPlate is mostly its primary header: the
``EXPIDnn`` cards list the camera-frames that went into the coadd (the only
ones with spCFrames), as ``'{cam}-{expid8}-{flat8}-{arc8}'``.

Trap: IDL writes the card names with an ``i2.2`` format, so frames 100 and
above would all land on one invalid ``EXPID**`` card (each overwriting the
last). :func:`parse_expid_cards` reports such a header as incomplete
(``len(EXPIDs) != NEXP``); callers should then list the spCFrame files.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..errors import BossFileError
from .fitsutil import (
    clean_header,
    get_hdu,
    header_float,
    header_int,
    open_fits,
    read_image,
    write_hdus,
)
from .frames import CALIBRATED_BUNIT
from .paths import CAMERAS, parse_filename
from .plugmap import plugmap_hdu, read_plugmap

__all__ = ["ExposureId", "SpPlate", "SPPLATE_EXTNAMES", "parse_expid_cards", "read_spplate",
           "write_spplate"]

log = logging.getLogger(__name__)

#: EXTNAMEs of HDUs 0-6.
SPPLATE_EXTNAMES = (None, "IVAR", "ANDMASK", "ORMASK", "WAVEDISP", "PLUGMAP", "SKY")

_EXPID_KEY = re.compile(r"^EXPID(\d{2,})$")
_EXPID_VALUE = re.compile(r"^([br][12])-(\d+)-(\d+)-(\d+)$")


@dataclass
class ExposureId:
    """One camera-frame of a coadd: camera, science exposure, its flat and arc."""

    camera: str
    expid: int
    flat: int
    arc: int

    def as_dict(self) -> dict:
        """``{"camera": "b1", "expid": 116475, "flat": 116481, "arc": 116482}``."""
        return {"camera": self.camera, "expid": self.expid, "flat": self.flat, "arc": self.arc}

    @classmethod
    def parse(cls, value: str) -> ExposureId:
        """Parse an EXPIDnn value such as ``'b1-00116475-00116481-00116482'``."""
        m = _EXPID_VALUE.match(str(value).strip())
        if not m:
            raise ValueError(f"not an EXPIDnn value: {value!r}")
        return cls(m[1], int(m[2]), int(m[3]), int(m[4]))


@dataclass
class SpPlate:
    """Header summary (and optionally data) of one spPlate file.

    Attributes
    ----------
    path : pathlib.Path
    header : astropy.io.fits.Header
        Primary header.
    plate, mjd : int
    exposures : list of ExposureId
        From the EXPIDnn cards, in card order.
    nexp : int
        NEXP (camera-frames combined); -1 if absent.
    nexp_per_camera : dict
        ``{"b1": NEXP_B1, ...}`` (counted from ``exposures`` when a card is absent).
    complete : bool
        False when the EXPIDnn cards do not account for all NEXP frames.
    loglam : ndarray or None
        Coadd grid log10(Angstrom), shape (NAXIS1,).
    flux, ivar, andmask, ormask, wavedisp, sky : ndarray or None
        With ``data=True`` only.
    plugmap : astropy.table.Table or None
        With ``data=True`` only.
    """

    path: Path
    header: fits.Header
    plate: int
    mjd: int
    exposures: list[ExposureId]
    nexp: int
    nexp_per_camera: dict[str, int]
    complete: bool
    loglam: np.ndarray | None = None
    flux: np.ndarray | None = None
    ivar: np.ndarray | None = None
    andmask: np.ndarray | None = None
    ormask: np.ndarray | None = None
    wavedisp: np.ndarray | None = None
    plugmap: Table | None = field(default=None, repr=False)
    sky: np.ndarray | None = None

    def expids(self, camera: str | None = None) -> list[int]:
        """Sorted unique science exposure ids (of one camera, or of all)."""
        return sorted({e.expid for e in self.exposures if camera is None or e.camera == camera})


def parse_expid_cards(header) -> tuple[list[ExposureId], bool]:
    """Parse the EXPIDnn cards of an spPlate header.

    Returns
    -------
    exposures : list of ExposureId
        In card order, duplicates removed; values of an overflow ``EXPID**``
        card are included.
    complete : bool
        True when there are exactly NEXP valid EXPIDnn cards (NEXP absent: no
        overflow card seen).

    Examples
    --------
    >>> h = fits.Header([("NEXP", 1), ("EXPID01", "b1-00116475-00116481-00116482")])
    >>> exps, complete = parse_expid_cards(h)
    >>> exps[0].as_dict(), complete
    ({'camera': 'b1', 'expid': 116475, 'flat': 116481, 'arc': 116482}, True)
    """
    exposures: list[ExposureId] = []
    seen = set()
    n_valid = 0
    overflow = False
    for card in header.cards:
        key = card.keyword
        if not key.startswith("EXPID"):
            continue
        if _EXPID_KEY.match(key):
            n_valid += 1
        else:
            overflow = True
        try:
            exp = ExposureId.parse(card.value)
        except ValueError:
            log.warning("ignoring unparsable %s card %r", key, card.value)
            overflow = True
            continue
        ident = (exp.camera, exp.expid)
        if ident not in seen:
            seen.add(ident)
            exposures.append(exp)
    nexp = header_int(header, "NEXP")
    complete = (not overflow) and (nexp < 0 or n_valid == nexp)
    if not complete:
        log.info("spPlate header lists %d EXPIDnn card(s) for NEXP=%d%s", n_valid, nexp,
                 " and has an invalid EXPID card (IDL i2.2 overflow)" if overflow else "")
    return exposures, complete


def coadd_loglam(header) -> np.ndarray | None:
    """The spPlate wavelength grid: ``COEFF0 + j * COEFF1`` (or CRVAL1/CD1_1/CRPIX1).

    Returns None when NAXIS1 or the grid keywords are absent.
    """
    npix = header_int(header, "NAXIS1")
    if npix <= 0:
        return None
    c0, c1 = header_float(header, "COEFF0", ()), header_float(header, "COEFF1", ())
    if np.isfinite(c0) and np.isfinite(c1):
        return c0 + c1 * np.arange(npix, dtype=np.float64)
    c0, c1 = header_float(header, "CRVAL1", ()), header_float(header, "CD1_1", ())
    if not np.isfinite(c1):
        c1 = header_float(header, "CDELT1", ())
    if np.isfinite(c0) and np.isfinite(c1):
        crpix = header_float(header, "CRPIX1", ())
        crpix = 1.0 if not np.isfinite(crpix) else crpix
        return c0 + c1 * (np.arange(npix, dtype=np.float64) + 1.0 - crpix)
    return None


def read_spplate(path, *, data: bool = False) -> SpPlate:
    """Read an spPlate: the primary header only, or everything with ``data=True``.

    Parameters
    ----------
    path : path-like
    data : bool
        Also read flux, ivar, masks, dispersion, plugmap and sky.

    Raises
    ------
    BossFileError
        Missing, corrupt or truncated file, or (``data=True``) an HDU missing.
    """
    path = Path(path)
    with open_fits(path) as hdul:
        hdu0 = get_hdu(hdul, 0, path, "flux", "image")
        header = hdu0.header.copy()
        arrays = {}
        if data:
            arrays["flux"] = read_image(hdu0, dtype=np.float32)
            for index, name, dtype in ((1, "ivar", np.float32), (2, "andmask", np.int32),
                                       (3, "ormask", np.int32), (4, "wavedisp", np.float32),
                                       (6, "sky", np.float32)):
                hdu = get_hdu(hdul, index, path, name, "image")
                arrays[name] = read_image(hdu, dtype=dtype)
                if arrays[name].shape != arrays["flux"].shape:
                    raise BossFileError(path, f"HDU {index} ({name}) has shape "
                                              f"{arrays[name].shape}, flux has "
                                              f"{arrays['flux'].shape}")
            arrays["plugmap"] = read_plugmap(get_hdu(hdul, 5, path, "plugmap", "table"),
                                             path=path)
    exposures, complete = parse_expid_cards(header)
    parsed = parse_filename(path) or {}
    plate = header_int(header, "PLATEID")
    mjd = header_int(header, "MJD")
    if plate < 0:
        plate = parsed.get("plate", -1)
    if mjd < 0:
        mjd = parsed.get("mjd", -1)
    per_camera = {}
    for cam in CAMERAS:
        n = header_int(header, f"NEXP_{cam.upper()}")
        per_camera[cam] = n if n >= 0 else sum(e.camera == cam for e in exposures)
    return SpPlate(path=path, header=header, plate=plate, mjd=mjd, exposures=exposures,
                   nexp=header_int(header, "NEXP"), nexp_per_camera=per_camera,
                   complete=complete, loglam=coadd_loglam(header), **arrays)


def write_spplate(path, header, flux, ivar, andmask, ormask, wavedisp, plugmap, sky) -> Path:
    """Write an spPlate (HDU0 flux, IVAR, ANDMASK, ORMASK, WAVEDISP, PLUGMAP, SKY), atomically.

    Parameters
    ----------
    path : path-like
    header : astropy.io.fits.Header or mapping
        PLATEID, MJD, NEXP, NEXP_B1.., EXPIDnn, COEFF0/COEFF1, ...
    flux, ivar, wavedisp, sky : array_like (nfiber, npix)
        Written as float32.
    andmask, ormask : array_like (nfiber, npix)
        Written as int32.
    plugmap : astropy.table.Table
        ``nfiber`` rows.
    """
    flux = np.asarray(flux, dtype=np.float32)
    if flux.ndim != 2:
        raise ValueError(f"flux must be 2-D (nfiber, npix), got shape {flux.shape}")
    images = {"ivar": (ivar, np.float32), "andmask": (andmask, np.int32),
              "ormask": (ormask, np.int32), "wavedisp": (wavedisp, np.float32),
              "sky": (sky, np.float32)}
    out = {}
    for name, (array, dtype) in images.items():
        out[name] = np.asarray(array).astype(dtype, copy=False)
        if out[name].shape != flux.shape:
            raise ValueError(f"{name} has shape {out[name].shape}, flux has {flux.shape}")
    if len(plugmap) != flux.shape[0]:
        raise ValueError(f"plugmap has {len(plugmap)} rows, flux has {flux.shape[0]}")
    hdr = clean_header(header)
    hdr["BUNIT"] = CALIBRATED_BUNIT
    names = SPPLATE_EXTNAMES
    hdus = [
        fits.PrimaryHDU(flux, header=hdr),
        fits.ImageHDU(out["ivar"], name=names[1]),
        fits.ImageHDU(out["andmask"], name=names[2]),
        fits.ImageHDU(out["ormask"], name=names[3]),
        fits.ImageHDU(out["wavedisp"], name=names[4]),
        plugmap_hdu(plugmap, extname=names[5]),
        fits.ImageHDU(out["sky"], name=names[6]),
    ]
    return write_hdus(path, hdus)
