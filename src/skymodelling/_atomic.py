"""Atomic file output: write to a temporary name in the same folder, then rename.

A reader (or a rerun after a crash) therefore sees either the complete old
file, the complete new file, or no file, never a half-written one.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary name keeps the final suffix (``.fits``, ``.fits.gz``) so that
    writers that infer compression from the name behave as for the real name.
    On an exception the temporary file is removed and ``path`` is untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with atomic_path(pathlib.Path(d) / "x.txt") as tmp:
    ...         _ = tmp.write_text("hello")
    ...     (pathlib.Path(d) / "x.txt").read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        name = path.name
        suffix = "".join(s for s in path.suffixes[-2:]) if name.endswith(".gz") else path.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        tmp.unlink()  # writers such as astropy refuse to overwrite; let them create it
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
