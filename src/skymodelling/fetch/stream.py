"""Streaming: fetch plate by plate, process each as it arrives, optionally delete its raw files.

The reference plate comes first (its files calibrate every plate with
``calibration="fixed"``); its files and the platelist are never deleted.
Per plate: fetch, then ``run_pipeline(first="extract", last="enrich",
plates=[plate])``; with ``delete_raw`` the plate's raw files are removed once
its extract output is complete (written atomically with a completion marker)
and neither the fetch nor extract recorded a problem with the plate, so a
plate with a missing or corrupt file keeps what it has and is fetched again
(only the missing files) by a rerun. A rerun skips plates whose extract output
is complete and whose raw files were deleted. At the end the remaining stages
(lines ... merge) run on all outputs.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config
from .download import FetchSummary
from .tree import FetchRequest, PlateFetcher

log = logging.getLogger(__name__)


@dataclass
class StreamSummary:
    """What :func:`run_streaming` did: the fetch, the plates and the last pipeline run."""

    fetch: FetchSummary
    plates_done: list = field(default_factory=list)      # (plate, mjd) extracted now
    plates_skipped: list = field(default_factory=list)   # done earlier, raw files deleted
    plates_failed: list = field(default_factory=list)    # (plate, mjd, reason)
    plates_deleted: list = field(default_factory=list)   # raw files removed
    n_failures: int = 0                                   # problems recorded by the stages
    run: object = None                                    # RunSummary of lines ... merge

    def describe(self) -> str:
        lines = [self.fetch.describe(),
                 f"stream: {len(self.plates_done)} plate-MJDs processed, "
                 f"{len(self.plates_skipped)} done earlier, {len(self.plates_failed)} not "
                 f"processed, raw files deleted for {len(self.plates_deleted)}"]
        lines += [f"  plate {p}-{m}: {why}" for p, m, why in self.plates_failed]
        if self.run is not None:
            lines.append(self.run.describe())
        return "\n".join(lines)


def run_streaming(raw, out, request: FetchRequest, config: Config | None = None, *,
                  executor=None, delete_raw: bool = False, last: str = "merge",
                  clouds=None, strict: bool = False) -> StreamSummary:
    """Fetch and process plates one at a time.

    Parameters
    ----------
    raw : path-like
        Where the raw files go (ignored with a mirror: they are read in place).
    out : path-like
        Output folder of the pipeline.
    request : FetchRequest
        Release, plates, server or mirror.
    config : Config, optional
    executor : Executor, optional
        Where the stages run (default: a process pool per call of run_pipeline).
    delete_raw : bool
        Remove each plate's raw files after its successful extract.
    last : str
        Last stage (``extract`` ... ``merge``).

    Returns
    -------
    StreamSummary

    Examples
    --------
    >>> req = FetchRequest(plate_range=(3985, 4100))               # doctest: +SKIP
    >>> s = run_streaming("RAW", "OUT", req, delete_raw=True)      # doctest: +SKIP
    >>> print(s.describe())                                        # doctest: +SKIP
    """
    from ..pipeline import run_pipeline
    from ..stages._common import marker_path
    from ..stages.extract import output_path

    config = config or Config()
    fetcher = PlateFetcher(raw, request, config)
    if fetcher.mirror is not None and delete_raw:
        log.warning("--delete-raw ignored: files are read in place from the mirror %s",
                    fetcher.mirror)
        delete_raw = False
    root = Path(fetcher.root)
    ref = config.extract.reference_plate if config.extract.calibration == "fixed" else None
    summary = StreamSummary(fetch=fetcher.summary)
    for run2d, plate, mjd in fetcher.plates():
        target = output_path(out, plate, mjd)
        spplate = fetcher.archive.spplate_file(run2d, plate, mjd).local(root)
        if marker_path(target).is_file() and not spplate.is_file():
            log.info("plate %d-%d: extracted earlier, its raw files deleted; skipped",
                     plate, mjd)
            summary.plates_skipped.append((plate, mjd))
            continue
        n_failed = len(fetcher.summary.failures)
        files = fetcher.fetch_plate(run2d, plate, mjd)
        fetch_failed = len(fetcher.summary.failures) - n_failed
        if not spplate.is_file():
            summary.plates_failed.append((plate, mjd, "no spPlate; not processed"))
            continue
        run = run_pipeline(root, out, config, first="extract", last=min_stage(last, "enrich"),
                           executor=executor, clouds=clouds, plates=[plate], strict=strict,
                           show=False)
        stage_failed = run.n_failures
        summary.n_failures += stage_failed
        if not marker_path(target).is_file():
            summary.plates_failed.append((plate, mjd, "extract output not complete"))
            continue
        summary.plates_done.append((plate, mjd))
        log.info("plate %d-%d: %d raw files, extract output complete", plate, mjd, len(files))
        if not delete_raw or plate == ref:
            continue
        if fetch_failed or stage_failed:
            log.warning("plate %d-%d: raw files kept (%d fetch and %d stage problems); a "
                        "rerun fetches what is missing", plate, mjd, fetch_failed, stage_failed)
            continue
        _delete(files, root)
        summary.plates_deleted.append((plate, mjd))
    fetcher.record()
    if last not in ("extract", "enrich"):
        summary.run = run_pipeline(root, out, config, first="lines", last=last,
                                   executor=executor, strict=strict, show=False)
        summary.n_failures += summary.run.n_failures
    return summary


def min_stage(a: str, b: str) -> str:
    """The earlier of two stages."""
    from ..pipeline import STAGES

    return a if STAGES.index(a) <= STAGES.index(b) else b


def _delete(files, root: Path) -> None:
    """Remove a plate's raw files (never the platelist), then its empty folder."""
    folders = set()
    for f in files:
        if f.name.startswith("platelist"):
            continue
        f.unlink(missing_ok=True)
        folders.add(f.parent)
    for folder in folders:
        if folder != root and not any(folder.iterdir()):
            folder.rmdir()
