"""Fetch the files extract needs for a set of plates (or check a mirror holds them).

Order: the platelist, then each plate's spPlate (its EXPIDnn cards say which
exposures are coadded), then those exposures' frames, and the reference
exposure's files when the calibration is ``fixed``. The reference plate is
always fetched whole, so its folder is a complete plate folder for extract.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..errors import SkyModellingError
from ..io.platelist import read_platelist
from .archive import DEFAULT_BASE_URL, Archive, frame_files, mirror_redux, plate_rows
from .download import FetchSummary, check_present, fetch_files

log = logging.getLogger(__name__)

#: What fetch records of its runs, at the top of RAW.
RECORD = "fetch.json"


@dataclass
class FetchRequest:
    """What to fetch: release, plates (list, range or all) and where from."""

    release: str = "DR12"
    plates: list | None = None
    plate_range: tuple | None = None
    all: bool = False
    base_url: str = DEFAULT_BASE_URL
    workers: int = 4
    mirror: str | None = None      # a local SAS mirror (default $SAS_BASE_DIR when set)
    show: bool = True

    def check(self) -> None:
        """Raise a one-line error unless exactly one plate selection is given."""
        chosen = sum([self.plates is not None, self.plate_range is not None, bool(self.all)])
        if chosen != 1:
            raise SkyModellingError("give exactly one of --plates, --plate-range, --all")
        if self.plate_range is not None and self.plate_range[0] > self.plate_range[1]:
            raise SkyModellingError(f"--plate-range {self.plate_range[0]}-"
                                    f"{self.plate_range[1]}: the first plate is after the last")


class PlateFetcher:
    """Fetch (or find in a mirror) the raw files of one plate at a time.

    ``root`` is where the files are: RAW (downloads) or the mirror's redux folder.
    """

    def __init__(self, raw, request: FetchRequest, config: Config | None = None):
        request.check()
        self.request = request
        self.config = config or Config()
        self.archive = Archive(request.release, base_url=request.base_url)
        redux = mirror_redux(self.archive, request.mirror)
        self.mirror = redux
        if redux is not None and not redux.is_dir():
            raise SkyModellingError(f"{redux}: no such folder in the mirror (SAS_BASE_DIR or "
                                    "--mirror); unset it to download instead")
        self.root = redux if redux is not None else Path(raw)
        self.summary = FetchSummary()
        self._platelist = None

    def _get(self, files, desc) -> FetchSummary:
        if self.mirror is not None:
            got = check_present(files, self.root)
        else:
            got = fetch_files(files, self.root, workers=self.request.workers,
                              show=self.request.show, desc=desc)
        self.summary.add(got)
        return got

    def plates(self) -> list[tuple]:
        """``(run2d, plate, mjd)`` of every plate-MJD to process, the reference plate first."""
        pl = self.archive.platelist_file()
        got = self._get([pl], "platelist")
        if got.failures:
            raise SkyModellingError(got.failures[0])
        table = read_platelist(pl.local(self.root))
        req = self.request
        rows = plate_rows(table, plates=req.plates, plate_range=req.plate_range)
        self._all_rows = plate_rows(table)
        if self.config.extract.calibration == "fixed":
            ref = self.config.extract.reference_plate
            refrows = [r for r in self._all_rows if r[1] == ref]
            if not refrows:
                raise SkyModellingError(f"reference plate {ref} is not in the {req.release} "
                                        "platelist; give --calibration exposure")
            rows = refrows + [r for r in rows if r[1] != ref]
        self.summary.plates = rows
        return rows

    def fetch_plate(self, run2d: str, plate: int, mjd: int) -> list[Path]:
        """Fetch one plate-MJD's spPlate and frames; return the local paths (present ones)."""
        sp = self.archive.spplate_file(run2d, plate, mjd)
        got = self._get([sp], f"{plate}-{mjd} spPlate")
        if got.failures:
            return []
        files = frame_files(self.archive, sp.local(self.root), run2d, plate, self.config,
                            listing=lambda: self._folder(sp))
        if plate == self.config.extract.reference_plate:
            from .archive import reference_files

            files += reference_files(self.archive, run2d, self.config)
        self._get(files, f"{plate}-{mjd}")
        return [f.local(self.root) for f in [sp, *files] if f.local(self.root).is_file()]


    def _folder(self, spplate) -> list[str] | None:
        """File names of a plate's folder: the mirror's, or the archive's HTML index."""
        if self.mirror is not None:
            return sorted(p.name for p in spplate.local(self.root).parent.iterdir())
        import urllib.error
        import urllib.request

        from .archive import folder_names
        from .download import USER_AGENT

        url = spplate.url.rsplit("/", 1)[0] + "/"
        try:
            req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(req, timeout=60) as resp:
                return folder_names(resp.read().decode("utf-8", "replace"))
        except (urllib.error.URLError, OSError) as exc:
            log.error("skymodelling: error: %s: cannot list the folder (%s)", url, exc)
            return None

    def record(self) -> Path | None:
        """Write ``RAW/fetch.json``: package version, request, configuration, summary.

        Rewritten atomically after every run (not for a mirror, which is read-only).
        """
        if self.mirror is not None:
            return None
        import datetime
        import json

        from .. import __version__
        from .._atomic import write_text_atomic

        req, s = self.request, self.summary
        payload = {
            "skymodelling_version": __version__,
            "written_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "release": req.release, "base_url": req.base_url,
            "plates": req.plates, "plate_range": req.plate_range, "all": bool(req.all),
            "plate_mjds": [list(r) for r in s.plates],
            "configuration": json.loads(self.config.to_json()),
            "files_present": s.n_files, "files_downloaded": s.n_downloaded,
            "bytes_downloaded": s.n_bytes, "seconds": round(s.seconds, 3),
            "failures": s.failures,
        }
        path = Path(self.root) / RECORD
        write_text_atomic(path, json.dumps(payload, indent=1) + "\n")
        return path


def fetch_tree(raw, request: FetchRequest, config: Config | None = None) -> FetchSummary:
    """Fetch every wanted plate into ``raw`` (or check the mirror); return the summary.

    Examples
    --------
    >>> req = FetchRequest(plates=[3985, 4055])                     # doctest: +SKIP
    >>> print(fetch_tree("RAW", req).describe())                    # doctest: +SKIP
    """
    fetcher = PlateFetcher(raw, request, config)
    for run2d, plate, mjd in fetcher.plates():
        fetcher.fetch_plate(run2d, plate, mjd)
    fetcher.summary.root = str(fetcher.root)
    fetcher.record()
    if fetcher.mirror is not None:
        log.info("mirror %s: files are read in place, nothing copied; run "
                 "`skymodelling run %s OUT`", fetcher.root, fetcher.root)
    return fetcher.summary
