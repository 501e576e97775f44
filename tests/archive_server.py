"""A loopback HTTP server holding a simulated BOSS tree laid out as the SDSS archive (SAS).

``archive_layout(tree, root)`` links a simulated tree's files into
``root/sas/dr12/boss/spectro/redux/`` (the layout of https://data.sdss.org/sas/dr12/...,
and of a ``$SAS_BASE_DIR`` mirror below ``root/sas``); :class:`ArchiveServer` serves
``root`` on 127.0.0.1 with HTTP Range requests (206 / 416), Content-Length and
Last-Modified as the SAS's Apache does, records every request, and can be throttled.
Used by tests/test_fetch.py and benchmarks/bench_fetch.py.
"""
from __future__ import annotations

import email.utils
import http.server
import os
import re
import threading
import time
from pathlib import Path

REDUX = Path("sas/dr12/boss/spectro/redux")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def archive_layout(tree, root) -> Path:
    """Symlink the BOSS files of ``tree`` (not its truth) under ``root``'s SAS layout.

    Returns the redux folder (``root/sas/dr12/boss/spectro/redux``).
    """
    tree, redux = Path(tree), Path(root) / REDUX
    redux.mkdir(parents=True, exist_ok=True)
    (redux / "platelist.fits").symlink_to(tree / "platelist.fits")
    for src in sorted(tree.glob("v*/[0-9]*/sp*")):
        dst = redux / src.relative_to(tree)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(src)
    return redux


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: ArchiveServer
    chunk = 1 << 16

    def log_message(self, *args):  # quiet
        pass

    def do_HEAD(self):
        self._serve(body=False)

    def do_GET(self):
        self._serve(body=True)

    def _serve(self, body: bool):
        path = Path(self.translate_path(self.path))
        rng = self.headers.get("Range")
        self.server.record(self.path, rng)
        if path.is_dir() and self.path.endswith("/"):    # an HTML index, as Apache's
            f = self.list_directory(path)
            if f is not None:
                self.copyfile(f, self.wfile)
            return
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        size = path.stat().st_size
        first, last, status = 0, size - 1, 200
        if rng:
            m = _RANGE.match(rng.strip())
            if m is None or int(m[1]) >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            first = int(m[1])
            last = min(int(m[2]), size - 1) if m[2] else size - 1
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", email.utils.formatdate(path.stat().st_mtime,
                                                                 usegmt=True))
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if not body:
            return
        delay = self.server.delay_for(self.path)
        try:
            with open(path, "rb") as f:
                f.seek(first)
                left = last - first + 1
                while left > 0:
                    data = f.read(min(self.chunk, left))
                    if not data:
                        break
                    self.wfile.write(data)
                    left -= len(data)
                    if delay:
                        time.sleep(delay)
        except (BrokenPipeError, ConnectionResetError):
            pass


class ArchiveServer(http.server.ThreadingHTTPServer):
    """Serve ``root`` on ``127.0.0.1`` (a free port) in a background thread.

    ``throttle(substring, seconds)`` sleeps that long after every 64 KiB of the
    files whose URL contains ``substring``; ``requests`` lists ``(path, Range)``.
    """

    daemon_threads = True

    def __init__(self, root):
        self.root = str(root)
        self.requests: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()
        self._throttle: tuple[str, float] | None = None
        super().__init__(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def _handler(self):
        root = self.root

        class Handler(_Handler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=root, **kw)

        return Handler

    def record(self, path, rng):
        with self._lock:
            self.requests.append((path, rng))

    def throttle(self, substring: str | None, seconds: float = 0.0):
        self._throttle = (substring, seconds) if substring else None

    def delay_for(self, path: str) -> float:
        t = self._throttle
        return t[1] if t and t[0] in path else 0.0

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


def source_files(tree) -> dict[str, Path]:
    """The BOSS files of a simulated tree by path relative to it (for comparisons)."""
    tree = Path(tree)
    out = {"platelist.fits": tree / "platelist.fits"}
    for p in sorted(tree.glob("v*/[0-9]*/sp*")):
        out[os.fspath(p.relative_to(tree))] = p
    return out
