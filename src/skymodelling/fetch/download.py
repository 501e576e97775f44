"""Parallel, resumable, verified downloads over HTTP(S).

Our own downloader on the URLs sdss-access builds: sdss-access's
``HttpAccess`` fetches one file at a time with no HTTP Range resume and no
verification beyond the transfer itself, and its ``RsyncAccess`` needs an
rsync daemon. Here each file goes to ``<name>.part`` (appended to with an
HTTP Range request when a previous transfer was cut), is checked (size from
Content-Length, gzip stream complete with its CRC, every FITS HDU header
readable, CHECKSUM/DATASUM cards when present) and only then renamed onto
its name, so a file under its final name is always a verified one.
"""
from __future__ import annotations

import email.utils
import http.client
import io
import logging
import os
import threading
import time
import urllib.error
import urllib.request
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from astropy.io import fits

try:  # Intel ISA-L: the same gzip format, decompressed about twice as fast as zlib
    from isal import igzip as _gzip
    from isal.isal_zlib import error as _gzip_error
except ImportError:  # pragma: no cover - isal is a dependency; plain zlib still works
    import gzip as _gzip

    _gzip_error = zlib.error

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "skymodelling-fetch"


class FetchFileError(Exception):
    """One file could not be fetched or failed verification."""


@dataclass
class FetchSummary:
    """What :func:`fetch_files` did."""

    n_files: int = 0          # verified files now present
    n_downloaded: int = 0     # of which fetched in this call
    n_bytes: int = 0          # bytes transferred in this call
    seconds: float = 0.0
    failures: list = field(default_factory=list)   # one-line messages
    root: str | None = None   # where the files are: RAW, or the mirror's redux folder
    plates: list = field(default_factory=list)      # (run2d, plate, mjd) asked for

    @property
    def rate_mb_s(self) -> float:
        return self.n_bytes / 1e6 / self.seconds if self.seconds > 0 else float("nan")

    def add(self, other: FetchSummary) -> None:
        self.n_files += other.n_files
        self.n_downloaded += other.n_downloaded
        self.n_bytes += other.n_bytes
        self.seconds += other.seconds
        self.failures += other.failures

    def describe(self) -> str:
        text = (f"fetch: {len(self.plates)} plate-MJDs, {self.n_files} files present "
                f"({self.n_downloaded} downloaded, "
                f"{self.n_bytes / 1e6:.1f} MB in {self.seconds:.1f} s, "
                f"{self.rate_mb_s:.1f} MB/s), {len(self.failures)} failed")
        return "\n".join([text, *(f"  {f}" for f in self.failures)])


def verify_file(path, expected_size: int | None = None, name: str | None = None) -> None:
    """Raise :class:`FetchFileError` unless ``path`` is a complete, readable FITS file.

    Checks the size (when known), the gzip stream of a ``.gz`` name (whole,
    which checks its CRC and length), that the header of every HDU can be read
    and its data is all there, and the CHECKSUM/DATASUM cards of HDUs that
    carry them (astropy warns on a mismatch; the warning is the failure).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "x.fits"
    ...     fits.PrimaryHDU(np.zeros(3)).writeto(p)
    ...     verify_file(p, expected_size=p.stat().st_size)
    """
    path = Path(path)
    name = name or path.name
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        raise FetchFileError(f"{size} bytes, the server announced {expected_size}")
    source = path
    if name.endswith(".gz"):     # decompressed whole: checks the stream's CRC and length
        try:
            source = io.BytesIO(_gzip.decompress(path.read_bytes()))
        except (OSError, EOFError, zlib.error, _gzip_error) as exc:
            raise FetchFileError(f"gzip stream is incomplete or corrupt ({exc})") from None
    try:   # our own file object: astropy leaves its own open when a read fails
        with (open(source, "rb") if isinstance(source, Path) else source) as fh, \
                warnings.catch_warnings():
            warnings.simplefilter("error")
            with fits.open(fh, checksum=True, lazy_load_hdus=False, memmap=False) as hdul:
                if len(hdul) == 0:
                    raise FetchFileError("no HDU")
    except FetchFileError:
        raise
    except Exception as exc:  # astropy raises OSError, VerifyError, warnings-as-errors...
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise FetchFileError(f"not a readable FITS file ({type(exc).__name__}: {first})") \
            from None


def _part(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def download_one(url: str, dest, *, timeout: float = 60.0, retries: int = 2,
                 progress=None) -> int:
    """Fetch ``url`` to ``dest`` (resuming ``dest.part``), verify, rename; return bytes moved.

    Raises
    ------
    FetchFileError
        HTTP error (404: not on the archive), a transfer that stays short after
        ``retries`` resumptions, or a file that fails :func:`verify_file`.

    Examples
    --------
    >>> url = "https://data.sdss.org/sas/dr12/boss/spectro/redux/platelist.fits"
    >>> download_one(url, "RAW/platelist.fits")                     # doctest: +SKIP
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part(dest)
    moved = 0
    modified = None
    for attempt in range(retries + 1):
        offset = part.stat().st_size if part.exists() else 0
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        if offset:
            req.add_header("Range", f"bytes={offset}-")
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:      # .part already holds everything (or more)
                total = _total_from_range(exc.headers.get("Content-Range"))
                if total is not None and total == offset:
                    break
                part.unlink()
                continue
            if exc.code == 404:
                raise FetchFileError("not found on the archive (HTTP 404)") from None
            raise FetchFileError(f"HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            if attempt == retries:
                raise FetchFileError(f"cannot connect ({exc})") from None
            time.sleep(0.5 * 2 ** attempt)
            continue
        with resp:
            modified = resp.headers.get("Last-Modified") or modified
            if resp.status == 206:
                total = _total_from_range(resp.headers.get("Content-Range"))
                mode = "ab"
            else:                                # the server ignored Range: start again
                length = resp.headers.get("Content-Length")
                total = int(length) if length is not None else None
                offset, mode = 0, "wb"
            try:
                with open(part, mode) as f:
                    while True:
                        chunk = resp.read(CHUNK)
                        if not chunk:
                            break
                        f.write(chunk)
                        moved += len(chunk)
                        if progress is not None:
                            progress(len(chunk))
            except (OSError, http.client.HTTPException) as exc:
                log.debug("%s: transfer cut (%s); resuming", url, exc)
        size = part.stat().st_size
        if total is None or size == total:
            break
        if size > total:
            part.unlink()
        if attempt == retries:
            raise FetchFileError(f"transfer stopped at {size} of {total} bytes after "
                                 f"{retries + 1} attempts; run again to resume")
    try:
        verify_file(part, expected_size=total, name=dest.name)
    except FetchFileError:
        part.unlink()
        raise
    os.replace(part, dest)
    _set_mtime(dest, modified)
    return moved


def _set_mtime(path: Path, last_modified: str | None) -> None:
    """Give a downloaded file the archive's modification time (as ``wget -N``, ``rsync -t``)."""
    if not last_modified:
        return
    try:
        stamp = email.utils.parsedate_to_datetime(last_modified).timestamp()
    except (TypeError, ValueError):
        return
    os.utime(path, (stamp, stamp))


def _total_from_range(content_range: str | None) -> int | None:
    """Total size from ``Content-Range: bytes a-b/total`` (None if absent or ``*``)."""
    if not content_range or "/" not in content_range:
        return None
    total = content_range.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def fetch_files(files, raw, *, workers: int = 4, show: bool = True,
                desc: str = "fetch") -> FetchSummary:
    """Download ``files`` (:class:`~.archive.RemoteFile`) into ``raw``, in parallel threads.

    Files already present under their final name were verified when they
    arrived and are skipped. A failing file is reported in the summary (one
    line naming it) and the others proceed.

    Examples
    --------
    >>> from skymodelling.fetch.archive import Archive
    >>> a = Archive("DR12")
    >>> s = fetch_files([a.platelist_file()], "RAW", workers=4)     # doctest: +SKIP
    >>> print(s.describe())                                         # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    summary = FetchSummary()
    todo = []
    for f in dict.fromkeys(files):
        if f.local(raw).is_file():
            summary.n_files += 1
        else:
            todo.append(f)
    lock = threading.Lock()
    with tqdm(total=None, unit="B", unit_scale=True, desc=desc, disable=not show or not todo,
              leave=False) as bar:
        def progress(n):
            with lock:
                bar.update(n)

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {pool.submit(download_one, f.url, f.local(raw), progress=progress): f
                       for f in todo}
            try:
                for fut in as_completed(futures):
                    f = futures[fut]
                    try:
                        summary.n_bytes += fut.result()
                    except FetchFileError as exc:
                        msg = f"{f.url}: {exc}"
                        log.error("skymodelling: error: %s", msg)
                        summary.failures.append(msg)
                        continue
                    summary.n_files += 1
                    summary.n_downloaded += 1
                    bar.set_postfix_str(f"{summary.n_downloaded}/{len(todo)} files",
                                        refresh=False)
            except KeyboardInterrupt:  # no new transfers; the .part files resume later
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    summary.seconds = time.perf_counter() - t0
    return summary


def check_present(files, redux) -> FetchSummary:
    """For a local mirror: check that nothing is missing (copies nothing).

    Examples
    --------
    >>> from skymodelling.fetch.archive import Archive
    >>> f = Archive("DR12").platelist_file()
    >>> check_present([f], "/nonexistent").failures
    ['/nonexistent/platelist.fits: not in the mirror']
    """
    t0 = time.perf_counter()
    summary = FetchSummary()
    for f in dict.fromkeys(files):
        path = f.local(redux)
        if path.is_file():
            summary.n_files += 1
        else:
            msg = f"{path}: not in the mirror"
            log.error("skymodelling: error: %s", msg)
            summary.failures.append(msg)
    summary.seconds = time.perf_counter() - t0
    return summary
