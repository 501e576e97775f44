"""File names and folder layout of the BOSS DR12 spectro redux tree.

Layout (datamodel section 1)::

    {raw}/platelist.fits                      (or {raw}/{RUN2D}/platelist.fits)
    {raw}/{RUN2D}/{plate4}/spFrame-{cam}-{expid8}.fits.gz
    {raw}/{RUN2D}/{plate4}/spCFrame-{cam}-{expid8}.fits
    {raw}/{RUN2D}/{plate4}/spFluxcalib-{cam}-{expid8}.fits.gz
    {raw}/{RUN2D}/{plate4}/spPlate-{plate4}-{mjd5}.fits
"""
from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "CAMERAS",
    "RUN2D_DEFAULT",
    "FRAME_PRODUCTS",
    "spframe_name",
    "spcframe_name",
    "spfluxcalib_name",
    "spfluxcorr_name",
    "spplate_name",
    "plate_dir",
    "find_platelist",
    "find_frame",
    "parse_filename",
    "spectrograph_of",
    "fiberid_offset",
]

CAMERAS = ("b1", "b2", "r1", "r2")
RUN2D_DEFAULT = "v5_7_0"

#: Per-camera-and-exposure products and the suffix the SAS uses for each.
FRAME_PRODUCTS = {
    "spFrame": ".fits.gz",
    "spCFrame": ".fits",
    "spFluxcalib": ".fits.gz",
    "spFluxcorr": ".fits.gz",
}

_FRAME_RE = re.compile(
    r"^(?P<product>spFrame|spCFrame|spFluxcalib|spFluxcorr)-(?P<camera>[br][12])-"
    r"(?P<expid>\d{8})\.fits(?:\.gz)?$")
_PLATE_RE = re.compile(r"^(?P<product>spPlate)-(?P<plate>\d{4,})-(?P<mjd>\d{5})\.fits(?:\.gz)?$")
_PLATELIST_RE = re.compile(r"^platelist\.fits(?:\.gz)?$")


def _check_camera(camera: str) -> str:
    if camera not in CAMERAS:
        raise ValueError(f"unknown camera {camera!r}; expected one of {CAMERAS}")
    return camera


def _frame_name(product: str, camera: str, expid: int) -> str:
    return f"{product}-{_check_camera(camera)}-{int(expid):08d}{FRAME_PRODUCTS[product]}"


def spframe_name(camera: str, expid: int) -> str:
    """Name of an spFrame file.

    Examples
    --------
    >>> spframe_name("b1", 116475)
    'spFrame-b1-00116475.fits.gz'
    """
    return _frame_name("spFrame", camera, expid)


def spcframe_name(camera: str, expid: int) -> str:
    """Name of an spCFrame file (not compressed on the SAS).

    Examples
    --------
    >>> spcframe_name("b1", 116475)
    'spCFrame-b1-00116475.fits'
    """
    return _frame_name("spCFrame", camera, expid)


def spfluxcalib_name(camera: str, expid: int) -> str:
    """Name of an spFluxcalib file.

    Examples
    --------
    >>> spfluxcalib_name("r2", 116475)
    'spFluxcalib-r2-00116475.fits.gz'
    """
    return _frame_name("spFluxcalib", camera, expid)


def spfluxcorr_name(camera: str, expid: int) -> str:
    """Name of an spFluxcorr file."""
    return _frame_name("spFluxcorr", camera, expid)


def spplate_name(plate: int, mjd: int) -> str:
    """Name of an spPlate file.

    Examples
    --------
    >>> spplate_name(4055, 55359)
    'spPlate-4055-55359.fits'
    """
    return f"spPlate-{int(plate):04d}-{int(mjd):05d}.fits"


def plate_dir(raw, run2d: str, plate: int) -> Path:
    """Folder of one plate: ``raw/run2d/{plate:04d}``.

    Examples
    --------
    >>> plate_dir("/data", "v5_7_0", 4055).as_posix()
    '/data/v5_7_0/4055'
    """
    return Path(raw) / run2d / f"{int(plate):04d}"


def find_platelist(raw) -> Path | None:
    """Locate ``platelist.fits``: ``raw/platelist.fits`` or ``raw/<RUN2D>/platelist.fits``.

    The top level wins; among RUN2D folders the default RUN2D is tried first,
    then the others in sorted order. Returns None when there is none.
    """
    raw = Path(raw)
    top = raw / "platelist.fits"
    if top.is_file():
        return top
    if not raw.is_dir():
        return None
    subdirs = sorted(p for p in raw.iterdir() if p.is_dir())
    subdirs.sort(key=lambda p: p.name != RUN2D_DEFAULT)
    for sub in subdirs:
        candidate = sub / "platelist.fits"
        if candidate.is_file():
            return candidate
    return None


def find_frame(plate_folder, product: str, camera: str, expid: int) -> Path | None:
    """Locate a per-exposure file in a plate folder, compressed or not.

    Parameters
    ----------
    plate_folder : path-like
    product : {"spFrame", "spCFrame", "spFluxcalib", "spFluxcorr"}
    camera : str
    expid : int

    Returns
    -------
    pathlib.Path or None
        The SAS suffix is tried first, then the other one.
    """
    if product not in FRAME_PRODUCTS:
        raise ValueError(f"unknown product {product!r}; expected one of {tuple(FRAME_PRODUCTS)}")
    stem = f"{product}-{_check_camera(camera)}-{int(expid):08d}"
    first = FRAME_PRODUCTS[product]
    for suffix in (first, ".fits" if first == ".fits.gz" else ".fits.gz"):
        candidate = Path(plate_folder) / (stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def parse_filename(name) -> dict | None:
    """Recognise a BOSS file name.

    Returns
    -------
    dict or None
        ``{"product", "camera", "expid"}`` for spFrame, spCFrame, spFluxcalib
        and spFluxcorr; ``{"product", "plate", "mjd"}`` for spPlate;
        ``{"product": "platelist"}``; None for anything else.

    Examples
    --------
    >>> parse_filename("spCFrame-r2-00116480.fits")
    {'product': 'spCFrame', 'camera': 'r2', 'expid': 116480}
    >>> parse_filename("spPlate-4055-55359.fits")
    {'product': 'spPlate', 'plate': 4055, 'mjd': 55359}
    """
    base = Path(name).name
    m = _FRAME_RE.match(base)
    if m:
        return {"product": m["product"], "camera": m["camera"], "expid": int(m["expid"])}
    m = _PLATE_RE.match(base)
    if m:
        return {"product": "spPlate", "plate": int(m["plate"]), "mjd": int(m["mjd"])}
    if _PLATELIST_RE.match(base):
        return {"product": "platelist"}
    return None


def spectrograph_of(camera: str) -> int:
    """Spectrograph (1 or 2) of a camera.

    Examples
    --------
    >>> spectrograph_of("r2")
    2
    """
    return int(_check_camera(camera)[1])


def fiberid_offset(camera: str) -> int:
    """FIBERID offset of a camera's frame: row = FIBERID - 1 - offset.

    Examples
    --------
    >>> fiberid_offset("b1"), fiberid_offset("b2")
    (0, 500)
    """
    return 500 * (spectrograph_of(camera) - 1)
