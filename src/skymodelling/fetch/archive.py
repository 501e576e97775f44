"""Archive paths of the BOSS files extract reads, built with ``sdss-access``.

The archive (SAS) layout of a data release, e.g. DR12::

    <base>/sas/dr12/boss/spectro/redux/platelist.fits
    <base>/sas/dr12/boss/spectro/redux/<run2d>/<plate4>/spPlate-<plate4>-<mjd5>.fits
    <base>/sas/dr12/boss/spectro/redux/<run2d>/<plate4>/spFrame-<cam>-<expid8>.fits.gz
    ...

Locally the tree is kept relative to the ``redux`` folder (``RAW/platelist.fits``,
``RAW/<run2d>/<plate4>/...``), which is what ``skymodelling run RAW OUT`` reads.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..config import Config
from ..errors import SkyModellingError
from ..io import paths

log = logging.getLogger(__name__)

#: The public SDSS data server.
DEFAULT_BASE_URL = "https://data.sdss.org"
#: Releases with BOSS/eBOSS spectro redux trees.
RELEASES = tuple(f"DR{n}" for n in range(9, 18))


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: its path relative to the redux folder and its URL."""

    relpath: str       # e.g. "v5_7_0/3985/spFrame-b1-00114439.fits.gz"
    url: str

    def local(self, raw) -> Path:
        return Path(raw) / self.relpath


class Archive:
    """Paths and URLs of one release's BOSS spectro redux tree.

    Parameters
    ----------
    release : str
        ``DR9`` ... ``DR17`` (default ``DR12``).
    base_url : str
        Server root; the archive is under ``<base_url>/sas/``.

    Examples
    --------
    >>> a = Archive("DR12", base_url="http://127.0.0.1:8000")
    >>> a.frame_file("spFrame", "v5_7_0", 3985, "b1", 114439).url
    'http://127.0.0.1:8000/sas/dr12/boss/spectro/redux/v5_7_0/3985/spFrame-b1-00114439.fits.gz'
    >>> a.frame_file("spCFrame", "v5_7_0", 3985, "b1", 114439).relpath
    'v5_7_0/3985/spCFrame-b1-00114439.fits'
    """

    def __init__(self, release: str = "DR12", base_url: str = DEFAULT_BASE_URL):
        release = release.upper()
        if release not in RELEASES:
            raise SkyModellingError(f"release {release!r}: expected one of {', '.join(RELEASES)}")
        self.release = release
        self.base_url = base_url.rstrip("/")
        self._path, self._env = _sdss_path(release)
        # the redux folder, relative to the SAS root: the platelist template's folder
        # minus its run2d component ("dr12/boss/spectro/redux")
        loc = PurePosixPath(self._location("platelist", run2d="RUN2D"))
        self.redux = str(loc.parent.parent)

    def _location(self, name: str, **kw) -> str:
        try:
            with _environment(self._env):
                return self._path.location(name, **kw).lstrip("/")
        except KeyError as exc:
            raise SkyModellingError(f"sdss-access {self.release} tree has no {name!r} "
                                    f"path ({exc})") from exc

    def _file(self, location: str) -> RemoteFile:
        rel = PurePosixPath(location).relative_to(self.redux)
        return RemoteFile(str(rel), f"{self.base_url}/sas/{location}")

    def platelist_file(self) -> RemoteFile:
        """The release's plate list, at the top of the redux folder."""
        return self._file(f"{self.redux}/platelist.fits")

    def spplate_file(self, run2d: str, plate: int, mjd: int) -> RemoteFile:
        """The spPlate of one plate-MJD (``spPlate-<plate4>-<mjd5>.fits``)."""
        loc = self._location("spPlate", run2d=run2d, plateid=int(plate), mjd=f"{int(mjd):05d}")
        return self._file(self._named(loc, paths.spplate_name(plate, mjd)))

    def frame_file(self, product: str, run2d: str, plate: int, camera: str,
                   expid: int) -> RemoteFile:
        """spFrame, spCFrame or spFluxcalib of one camera and exposure.

        The folder comes from sdss-access's template; the name is checked against
        the BOSS name (exposure ids zero-padded to 8 digits, ``paths``): the DR12
        tree's spCFrame template gives the spFrame name (spFrame-...fits.gz), while
        the SAS holds spCFrame-<cam>-<expid8>.fits uncompressed.
        """
        if product not in ("spFrame", "spCFrame", "spFluxcalib"):
            raise ValueError(f"unknown product {product!r}")
        kw = dict(run2d=run2d, plateid=int(plate), br=camera[0], id=camera[1],
                  frame=f"{int(expid):08d}")
        name = paths._frame_name(product, camera, expid)
        return self._file(self._named(self._location(product, **kw), name))

    def _named(self, location: str, name: str) -> str:
        loc = PurePosixPath(location)
        if loc.name != name:
            log.debug("sdss-access %s gives %s for %s; using %s", self.release, loc.name,
                      name, name)
        return str(loc.parent / name)


def _sdss_path(release: str):
    """sdss-access's path builder for a release.

    Importing sdss-access sets ``SAS_BASE_DIR`` and many more variables in
    ``os.environ`` (its ``tree`` package's defaults, e.g. ``~/sas``), logs its
    tree and leaves a configuration file open; the environment is restored
    afterwards, so ``$SAS_BASE_DIR`` still means the user's mirror.
    """
    import gc
    import io
    import warnings

    user = dict(os.environ)
    disabled = logging.root.manager.disable
    logging.disable(logging.INFO)      # its import logs its tree at DEBUG
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore", ResourceWarning)
            try:
                from sdss_access.path import Path as SdssPath
            except ImportError as exc:
                raise SkyModellingError(
                    "sdss-access is not installed: pip install 'skymodelling[fetch]'") from exc
            path = SdssPath(release=release, preserve_envvars=True)
            gc.collect()
        sdss = dict(os.environ)
    finally:
        logging.disable(disabled)
        os.environ.clear()
        os.environ.update(user)
    logging.getLogger("sdss_access").setLevel(logging.WARNING)
    return path, {k: v for k, v in sdss.items() if user.get(k) != v}


@contextlib.contextmanager
def _environment(extra: dict):
    """``os.environ`` with ``extra`` set, restored afterwards."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def mirror_redux(archive: Archive, mirror=None) -> Path | None:
    """The redux folder of a local mirror (``--mirror`` or ``$SAS_BASE_DIR``), or None.

    The mirror is laid out as the SAS below ``/sas/`` (``$SAS_BASE_DIR/dr12/boss/spectro/
    redux``, ``$SAS_BASE_DIR/dr17/eboss/spectro/redux``), as at NERSC.

    Examples
    --------
    >>> a = Archive("DR12")
    >>> mirror_redux(a, "/global/cfs/cdirs/sdss/data/sas").as_posix()
    '/global/cfs/cdirs/sdss/data/sas/dr12/boss/spectro/redux'
    """
    base = mirror if mirror is not None else os.environ.get("SAS_BASE_DIR")
    if not base:
        return None
    return Path(base) / archive.redux


def plate_rows(platelist, plates=None, plate_range=None, run2d=None) -> list[tuple]:
    """``(run2d, plate, mjd)`` of the wanted plates from a platelist table, sorted.

    ``plates`` a list of numbers, ``plate_range`` ``(first, last)`` inclusive, or
    both None for every plate. Only idlspec2d v5 reductions (RUN2D ``v5_...``) are
    kept unless ``run2d`` names one: the SDSS-I/II reductions (RUN2D 26, 103, 104)
    that some platelists also list have no spCFrame files. Unknown plates raise a
    one-line error.

    Examples
    --------
    >>> from astropy.table import Table
    >>> t = Table({"PLATE": [3985, 3664, 266], "MJD": [55320, 55245, 51630],
    ...            "RUN2D": ["v5_7_0", "v5_7_0", "26"]})
    >>> plate_rows(t)
    [('v5_7_0', 3664, 55245), ('v5_7_0', 3985, 55320)]
    >>> plate_rows(t, plate_range=(3900, 4000))
    [('v5_7_0', 3985, 55320)]
    """
    import numpy as np

    plate = np.asarray(platelist["PLATE"]).astype(int)
    mjd = np.asarray(platelist["MJD"]).astype(int)
    r2d = (np.char.strip(np.asarray(platelist["RUN2D"]).astype(str))
           if "RUN2D" in platelist.colnames else np.full(len(plate), paths.RUN2D_DEFAULT))
    keep = np.char.startswith(r2d, "v5") if run2d is None else r2d == run2d
    if not keep.all():
        log.info("platelist: %d rows of other reductions (RUN2D %s) left out",
                 int((~keep).sum()), ", ".join(sorted(set(r2d[~keep].tolist()))))
    if plates is not None:
        missing = sorted(set(int(p) for p in plates) - set(plate[keep].tolist()))
        if missing:
            raise SkyModellingError(f"plates {missing} are not in the platelist; check the "
                                    "plate numbers and --release")
        keep &= np.isin(plate, [int(p) for p in plates])
    if plate_range is not None:
        keep &= (plate >= plate_range[0]) & (plate <= plate_range[1])
    rows = sorted({(str(r), int(p), int(m)) for r, p, m in zip(r2d[keep], plate[keep],
                                                                mjd[keep], strict=True)},
                  key=lambda t: (t[1], t[2], t[0]))
    return rows


def frame_files(archive: Archive, spplate, run2d: str, plate: int,
                config: Config, listing=None) -> list[RemoteFile]:
    """The per-exposure files extract reads for one spPlate (its EXPIDnn exposures).

    spFrame and spCFrame always; spFluxcalib when extract reads it (``calibration="exposure"``,
    or ``fixed`` with ``telluric_from_exposure``).
    When the EXPIDnn cards do not account for NEXP frames (IDL writes frames 100 and
    above on one ``EXPID**`` card: DR12 plate-MJDs with NEXP > 99), ``listing()``,
    the file names of the plate's folder on the archive, gives the spCFrames, which
    exist only for coadded frames.
    """
    from ..io.spplate import read_spplate

    sp = read_spplate(spplate)
    frames = {(e.camera, e.expid) for e in sp.exposures}
    if not sp.complete:
        names = listing() if listing is not None else None
        found = set()
        for name in names or ():
            info = paths.parse_filename(name)
            if info is not None and info["product"] == "spCFrame":
                found.add((info["camera"], info["expid"]))
        log.warning("%s: the EXPID cards list %d of NEXP=%d frames; %s", spplate,
                    len(sp.exposures), sp.nexp,
                    f"the plate folder has {len(found)} spCFrames, all fetched"
                    if names is not None else "only the listed ones are fetched")
        frames |= found
    products = ["spFrame", "spCFrame"]
    if config.extract.reads_exposure_calibration:
        products.append("spFluxcalib")
    return [archive.frame_file(prod, run2d, plate, cam, expid)
            for cam, expid in sorted(frames) for prod in products]


def folder_names(html: str) -> list[str]:
    """File names linked from an archive folder's HTML index (Apache or nginx autoindex).

    Examples
    --------
    >>> folder_names('<a href="spCFrame-b1-00114439.fits">x</a> <a href="../">up</a>')
    ['spCFrame-b1-00114439.fits']
    """
    import re
    from urllib.parse import unquote

    return [unquote(h) for h in re.findall(r'href="([^"/?#]+)"', html)]


def reference_files(archive: Archive, run2d: str, config: Config) -> list[RemoteFile]:
    """spFluxcalib and spFrame of the fixed-calibration reference exposure, four cameras."""
    cfg = config.extract
    if cfg.calibration != "fixed":
        return []
    return [archive.frame_file(prod, run2d, cfg.reference_plate, cam, cfg.reference_expid)
            for cam in paths.CAMERAS for prod in ("spFluxcalib", "spFrame")]
