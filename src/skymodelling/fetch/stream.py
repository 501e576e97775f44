"""Streaming: fetch plate by plate, process each as it arrives, optionally delete its raw files.

The reference plate comes first (its files calibrate every plate with
``calibration="fixed"``) and its files, and the platelist, are never deleted.
Per plate: fetch, then ``run_pipeline(first="extract", last="enrich",
plates=[plate])``; with ``delete_raw`` the plate's raw files are removed once
its extract output exists (written atomically, so existence means complete).
At the end the remaining stages (lines ... merge) run on all outputs.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..config import Config
from .tree import FetchRequest, PlateFetcher

log = logging.getLogger(__name__)


def run_streaming(raw, out, request: FetchRequest, config: Config | None = None, *,
                  executor=None, delete_raw: bool = False, last: str = "merge",
                  strict: bool = False):
    """Fetch and process plates one at a time; return ``(FetchSummary, RunSummary)``.

    Examples
    --------
    >>> req = FetchRequest(plate_range=(3985, 4100))               # doctest: +SKIP
    >>> fetched, run = run_streaming("RAW", "OUT", req, delete_raw=True)  # doctest: +SKIP
    """
    from ..pipeline import run_pipeline
    from ..stages.extract import output_path

    config = config or Config()
    fetcher = PlateFetcher(raw, request, config)
    if fetcher.mirror is not None and delete_raw:
        log.warning("--delete-raw ignored: files are read in place from the mirror %s",
                    fetcher.mirror)
        delete_raw = False
    root = fetcher.root
    ref = config.extract.reference_plate if config.extract.calibration == "fixed" else None
    rows = fetcher.plates()
    run = None
    for run2d, plate, mjd in rows:
        files = fetcher.fetch_plate(run2d, plate, mjd)
        if not files:
            log.error("plate %d-%d: no files; skipped", plate, mjd)
            continue
        run = run_pipeline(root, out, config, first="extract", last="enrich",
                           executor=executor, plates=[plate], strict=strict, show=False)
        done = output_path(out, plate, mjd).is_file()
        log.info("plate %d-%d: %d files, extract output %s", plate, mjd, len(files),
                 "complete" if done else "missing")
        if delete_raw and done and plate != ref:
            _delete(files, Path(root))
    if last not in ("extract", "enrich"):
        run = run_pipeline(root, out, config, first="lines", last=last, executor=executor,
                           strict=strict, show=False)
    return fetcher.summary, run


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
