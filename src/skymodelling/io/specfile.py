"""Reader for the SDSS-III BOSS ``spec-PLATE-MJD-FIBER.fits`` files (the per-object spectra).

A spec file holds one fibre of one plate and coadd epoch:

* HDU 0: the coadd's header (PLATEID, MJD, RUN2D, HELIO_RV, ...);
* HDU 1 ``COADD``: the coadd on the 1e-4 dex grid (``loglam flux ivar and_mask or_mask wdisp
  sky model``);
* HDU 2 ``SPALL``: one row of spAll (PLUG_RA, PLUG_DEC, XFOCAL, YFOCAL, OBJTYPE, FIBERID, ...);
* HDU 3 ``SPZLINE``: emission-line fits (not read);
* HDU 4+: one table per exposure and camera, EXTNAME ``<CAM>-<expid>-<flat>-<arc>`` (e.g.
  ``B2-00171812-00171811-00171810``), columns ``loglam flux ivar mask wdisp sky calib x`` on
  the exposure's native pixels, header = that frame's (EXPOSURE, TAI-BEG, TAI-END, AIRMASS,
  SEEING50, EXPTIME, HELIO_RV, weather, ...).

``sky`` of an exposure HDU is the sky the pipeline subtracted at this fibre (its b-spline
supersky, flux-calibrated with the exposure's own calibration), in 1e-17 erg/s/cm2/A;
``ivar`` is the inverse variance of the fibre's flux, ``mask`` its SPPIXMASK bits and
``wdisp`` the line-spread sigma in units of 1e-4 dex (log10 A), i.e. in pixels of the coadd
grid, not of the native grid: sigma in Angstrom = wdisp x 1e-4 x ln(10) x lambda
(:func:`wdisp_to_angstrom`). Measured on the shared real files: Gaussian fits to isolated sky
lines are 1.02-1.20 x this sigma at every wavelength, while reading wdisp in native pixels
gives ratios from 1.07 to 1.43 that follow the native pixel size.

:func:`read_specfile` reads everything needed into plain arrays (pure: a file in, a
:class:`SpecFile` out); the stage :mod:`skymodelling.stages.specfiles` turns it into the
extract format.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..errors import BossFileError
from .fitsutil import open_fits

#: Columns of an exposure HDU that the reader needs.
EXPOSURE_COLUMNS = ("loglam", "ivar", "mask", "wdisp", "sky", "calib")
#: spAll columns kept (plug-map values of the fibre).
SPALL_COLUMNS = ("PLATE", "MJD", "FIBERID", "PLUG_RA", "PLUG_DEC", "XFOCAL", "YFOCAL", "OBJTYPE",
                 "CLASS")
_EXTNAME = re.compile(r"([BR][12])-(\d+)(?:-(\d+))?(?:-(\d+))?")
_FILENAME = re.compile(r"spec-(\d+)-(\d+)-(\d+)\.fits(?:\.gz)?")


@dataclass
class SpecExposure:
    """One exposure and camera of a spec file, on its native pixels.

    Attributes
    ----------
    extname : str
        EXTNAME of the HDU.
    camera : str
        ``b1``, ``b2``, ``r1`` or ``r2``.
    expid : int
        Exposure number (the first number of EXTNAME; the header's EXPOSURE).
    header : astropy.io.fits.Header
        The frame's header (conditions).
    loglam : ndarray (npix,)
        log10 vacuum heliocentric wavelength (A).
    sky, ivar : ndarray (npix,)
        Sky flux density at the fibre (1e-17 erg/s/cm2/A) and the fibre's inverse variance.
    mask : ndarray of int32 (npix,)
        SPPIXMASK bits.
    wdisp : ndarray (npix,)
        Line-spread sigma in 1e-4 dex.
    calib : ndarray (npix,)
        The pipeline's calibration vector of the frame at this fibre.
    """

    extname: str
    camera: str
    expid: int
    header: fits.Header
    loglam: np.ndarray
    sky: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray
    wdisp: np.ndarray
    calib: np.ndarray

    @property
    def wave(self) -> np.ndarray:
        """Vacuum heliocentric wavelength of each native pixel (A)."""
        return 10.0 ** self.loglam

    @property
    def disp(self) -> np.ndarray:
        """Line-spread sigma in Angstrom (:func:`wdisp_to_angstrom`)."""
        return wdisp_to_angstrom(self.wdisp, self.loglam)


@dataclass
class SpecFile:
    """What a spec file says about the sky at its fibre."""

    path: Path
    plate: int
    mjd: int
    fiberid: int
    header: fits.Header
    spall: dict = field(default_factory=dict)
    coadd_loglam: np.ndarray = field(default_factory=lambda: np.zeros(0))
    coadd_sky: np.ndarray = field(default_factory=lambda: np.zeros(0))
    exposures: list[SpecExposure] = field(default_factory=list)

    def cameras(self) -> list[str]:
        """Cameras with at least one exposure, sorted."""
        return sorted({e.camera for e in self.exposures})


def wdisp_to_angstrom(wdisp, loglam) -> np.ndarray:
    """Line-spread sigma in Angstrom from spec-file ``wdisp`` (sigma in 1e-4 dex).

    Examples
    --------
    >>> round(float(wdisp_to_angstrom(1.0, np.log10(5000.0))), 4)   # 5000 A x ln10 x 1e-4
    1.1513
    """
    loglam = np.asarray(loglam, dtype=float)
    return np.asarray(wdisp, dtype=float) * 1e-4 * np.log(10.0) * 10.0 ** loglam


def parse_extname(name: str):
    """(camera, expid) of an exposure HDU's EXTNAME, or None for any other HDU.

    Examples
    --------
    >>> parse_extname("B2-00171812-00171811-00171810")
    ('b2', 171812)
    >>> parse_extname("COADD") is None
    True
    """
    m = _EXTNAME.fullmatch(str(name).strip())
    if not m:
        return None
    return m.group(1).lower(), int(m.group(2))


def parse_specfile_name(name: str):
    """(plate, mjd, fiberid) from ``spec-PLATE-MJD-FIBER.fits``, or None.

    Examples
    --------
    >>> parse_specfile_name("spec-7338-56660-0733.fits")
    (7338, 56660, 733)
    """
    m = _FILENAME.fullmatch(Path(name).name)
    return None if m is None else tuple(int(g) for g in m.groups())


def _column(data, name: str, path, extname: str, dtype=float) -> np.ndarray:
    try:
        col = data[name]
    except KeyError as exc:
        raise BossFileError(path, f"HDU {extname} has no {name!r} column (columns: "
                            f"{', '.join(data.columns.names)}); not a BOSS spec file?") from exc
    return np.asarray(col).astype(dtype)


def _spall_row(hdul, path) -> dict:
    if "SPALL" not in hdul:
        return {}
    data = hdul["SPALL"].data
    if data is None or len(data) == 0:
        return {}
    out = {}
    for name in SPALL_COLUMNS:
        if name in data.columns.names:
            value = data[name][0]
            out[name] = value.strip() if isinstance(value, str) else (
                value.decode().strip() if isinstance(value, bytes) else value.item())
    return out


def read_specfile(path) -> SpecFile:
    """Read the coadd sky and every exposure's sky of one BOSS spec file.

    Parameters
    ----------
    path : path-like
        A ``spec-PLATE-MJD-FIBER.fits`` file (DR9-DR17 BOSS "full" spec files, which keep
        the per-exposure HDUs; "lite" files do not and are refused).

    Returns
    -------
    SpecFile

    Raises
    ------
    BossFileError
        Not a FITS file, truncated, no COADD HDU, no per-exposure HDU, an exposure HDU
        without the expected columns (the message names the file and what is missing).

    Examples
    --------
    >>> spec = read_specfile("spec-7338-56660-0733.fits")          # doctest: +SKIP
    >>> spec.plate, spec.mjd, spec.fiberid, spec.cameras()         # doctest: +SKIP
    (7338, 56660, 733, ['b2', 'r2'])
    >>> e = spec.exposures[0]; e.camera, e.expid, e.sky.shape      # doctest: +SKIP
    ('b2', 171812, (2498,))
    """
    path = Path(path)
    with open_fits(path) as hdul:
        if len(hdul) < 2 or "COADD" not in hdul:
            raise BossFileError(path, "no COADD HDU: not a BOSS spec-PLATE-MJD-FIBER file")
        header = hdul[0].header.copy()
        named = parse_specfile_name(path.name)
        plate = int(header.get("PLATEID", named[0] if named else -1))
        mjd = int(header.get("MJD", named[1] if named else -1))
        spall = _spall_row(hdul, path)
        fiberid = int(spall.get("FIBERID", header.get("FIBERID", named[2] if named else -1)))
        coadd = hdul["COADD"].data
        coadd_loglam = _column(coadd, "loglam", path, "COADD")
        coadd_sky = _column(coadd, "sky", path, "COADD")
        exposures = []
        for hdu in hdul[1:]:
            parsed = parse_extname(hdu.name)
            if parsed is None:
                continue
            data = hdu.data
            if data is None or len(data) < 2:
                raise BossFileError(path, f"HDU {hdu.name} holds no pixels")
            cols = {name: _column(data, name, path, hdu.name,
                                  np.int32 if name == "mask" else float)
                    for name in EXPOSURE_COLUMNS}
            if np.any(np.diff(cols["loglam"]) <= 0):
                raise BossFileError(path, f"HDU {hdu.name}: loglam is not increasing")
            hdr = hdu.header.copy()
            expid = int(hdr.get("EXPOSURE", parsed[1]))
            exposures.append(SpecExposure(hdu.name, parsed[0], expid, hdr, **cols))
    if not exposures:
        raise BossFileError(path, "no per-exposure HDU (B1-/B2-/R1-/R2-...): a 'lite' spec "
                            "file? use the full spec files, which keep the single exposures")
    return SpecFile(path, plate, mjd, fiberid, header, spall, coadd_loglam, coadd_sky,
                    exposures)


def find_specfiles(folder) -> list[Path]:
    """The ``spec-PLATE-MJD-FIBER.fits[.gz]`` files in ``folder`` and below, sorted."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("spec-*.fits*") if parse_specfile_name(p.name))


__all__ = ["SpecFile", "SpecExposure", "read_specfile", "find_specfiles", "parse_extname",
           "parse_specfile_name", "wdisp_to_angstrom"]
