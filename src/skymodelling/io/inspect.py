"""Describe a BOSS file in a few lines (for ``skymodelling inspect`` and for logs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from ..errors import BossFileError
from .fitsutil import get_hdu, header_float, header_int, header_str, image_shape, open_fits
from .frames import read_frame
from .paths import parse_filename
from .platelist import read_platelist
from .plugmap import is_sky
from .spfluxcalib import read_spfluxcalib
from .spplate import read_spplate

__all__ = ["describe_file", "format_description", "guess_product"]


def guess_product(path) -> str:
    """The product of a file: from its name when BOSS-like, else from its content.

    Raises
    ------
    BossFileError
        Missing file, or a file that looks like none of the products.
    """
    path = Path(path)
    if not path.is_file():
        raise BossFileError(path, "no such file")
    parsed = parse_filename(path)
    if parsed:
        return parsed["product"]
    with open_fits(path) as hdul:
        h0 = get_hdu(hdul, 0, path, "primary")
        hdr = h0.header
        n = _count_hdus(hdul, 9)
        if n >= 2 and isinstance(hdul[1], fits.BinTableHDU) and hdr.get("NAXIS", 0) == 0:
            if {"PLATE", "MJD"} <= set(hdul[1].columns.names):
                return "platelist"
        if "NEXP" in hdr and any(k.startswith("EXPID") for k in hdr):
            return "spPlate"
        if n >= 6 and isinstance(hdul[5], fits.BinTableHDU):
            hdu3 = hdul[3]
            if isinstance(hdu3, fits.BinTableHDU):
                return "spFrame"
            if isinstance(hdu3, fits.ImageHDU):
                return "spCFrame"
        if "WAVEMIN" in hdr and len(image_shape(h0)) == 2:
            return "spFluxcalib"
        looked = (f"{n} HDU(s), HDU0 {type(h0).__name__} {image_shape(h0)}, "
                  f"EXTNAMEs {[hdul[i].name for i in range(n)]}")
    raise BossFileError(path, f"not a recognised BOSS product (name {path.name!r}; {looked})")


def _count_hdus(hdul, limit: int) -> int:
    """len(hdul) without reading more than ``limit`` headers."""
    for i in range(limit):
        try:
            hdul[i]
        except IndexError:
            return i
    return limit


def describe_file(path) -> dict:
    """A dictionary summarising a BOSS file.

    Keys depend on the product (always ``product`` and ``path``):

    * spPlate: plate, mjd, nexp, nexp_per_camera, complete, exposures (list of dicts)
    * spFrame / spCFrame: camera, exposure, plate, mjd, n_fibers, n_sky_fibers,
      wavelength_range_A, exptime
    * spFluxcalib: camera, exposure, shape, WAVEMIN, WAVEMAX
    * platelist: n_plates, n_bad, mjd_range, run2d

    Raises
    ------
    BossFileError
        Missing, unreadable or unrecognised file.
    """
    path = Path(path)
    product = guess_product(path)
    info: dict = {"product": product, "path": str(path)}
    if product == "spPlate":
        sp = read_spplate(path)
        info.update(plate=sp.plate, mjd=sp.mjd, nexp=sp.nexp,
                    nexp_per_camera=dict(sp.nexp_per_camera), complete=sp.complete,
                    exposures=[e.as_dict() for e in sp.exposures])
    elif product in ("spFrame", "spCFrame"):
        frame = read_frame(path, with_sky=False)  # by content: the name may mislead
        info["product"] = frame.product
        loglam = frame.loglam
        if frame.product == "spCFrame" and np.any(frame.ivar > 0):
            loglam = loglam[frame.ivar > 0]
        info.update(camera=frame.camera, exposure=frame.expid, plate=frame.plate,
                    mjd=frame.mjd, n_fibers=int(frame.nrow),
                    n_sky_fibers=int(np.count_nonzero(is_sky(frame.plugmap))),
                    wavelength_range_A=[float(10 ** np.min(loglam)),
                                        float(10 ** np.max(loglam))],
                    exptime=header_float(frame.header, "EXPTIME"))
    elif product == "spFluxcalib":
        calib, header = read_spfluxcalib(path)
        parsed = parse_filename(path) or {}
        camera = header_str(header, "CAMERAS") or parsed.get("camera", "")
        expid = header_int(header, "EXPOSURE")
        info.update(camera=camera, exposure=expid if expid >= 0 else parsed.get("expid", -1),
                    shape=list(calib.shape), WAVEMIN=header_float(header, "WAVEMIN"),
                    WAVEMAX=header_float(header, "WAVEMAX"))
    elif product == "platelist":
        table = read_platelist(path)
        n_bad = (int(np.count_nonzero(np.asarray(table["PLATEQUALITY"]) == "bad"))
                 if "PLATEQUALITY" in table.colnames else None)
        mjd = np.asarray(table["MJD"]) if "MJD" in table.colnames else np.array([])
        info.update(n_plates=len(table), n_bad=n_bad,
                    mjd_range=[int(mjd.min()), int(mjd.max())] if mjd.size else None,
                    run2d=sorted(set(np.asarray(table["RUN2D"]).tolist()))
                    if "RUN2D" in table.colnames else [])
    else:
        raise BossFileError(path, f"describing {product} files is not supported")
    return info


def format_description(info: dict) -> str:
    """A few human-readable lines from :func:`describe_file` output."""
    product = info.get("product", "?")
    lines = [f"{info.get('path', '?')}: {product}"]
    if product == "spPlate":
        per_cam = ", ".join(f"{k} {v}" for k, v in info["nexp_per_camera"].items())
        lines.append(f"  plate {info['plate']}  MJD {info['mjd']}  NEXP {info['nexp']} "
                     f"({per_cam})")
        expids = sorted({e["expid"] for e in info["exposures"]})
        lines.append(f"  {len(info['exposures'])} camera-frames, exposures "
                     f"{', '.join(map(str, expids))}")
        if not info["complete"]:
            lines.append("  WARNING: EXPIDnn cards do not list all NEXP frames "
                         "(list the spCFrame files instead)")
    elif product in ("spFrame", "spCFrame"):
        lo, hi = info["wavelength_range_A"]
        lines.append(f"  camera {info['camera']}  exposure {info['exposure']}  plate "
                     f"{info['plate']}  MJD {info['mjd']}  EXPTIME {info['exptime']:g} s")
        lines.append(f"  {info['n_fibers']} fibres ({info['n_sky_fibers']} sky), "
                     f"{lo:.1f}-{hi:.1f} A")
    elif product == "spFluxcalib":
        lines.append(f"  camera {info['camera']}  exposure {info['exposure']}  shape "
                     f"{tuple(info['shape'])}  WAVEMIN-WAVEMAX {info['WAVEMIN']:g}-"
                     f"{info['WAVEMAX']:g} A")
    elif product == "platelist":
        lines.append(f"  {info['n_plates']} plate-MJDs ({info['n_bad']} bad), MJD "
                     f"{info['mjd_range']}, RUN2D {', '.join(info['run2d'])}")
    return "\n".join(lines)
