"""Clouds: the photometricity flag of each exposure from a table of APO windows.

A photometricity table lists time windows (``STARTTAI``, ``ENDTAI``, TAI
seconds since MJD 0, the clock of the frames' TAI-BEG/TAI-END) with
``PHOTOMETRIC`` 1 (photometric) or 0 (not). A window *covers* a time ``t``
when ``STARTTAI <= t <= ENDTAI`` (both ends included). The flag of a time is

* 0.5 when no window covers it (unknown, as the original analysis);
* 0 when any covering window says 0 (so overlapping windows that disagree,
  and a time exactly on the boundary between a photometric and a
  non-photometric window, count as not photometric);
* 1 otherwise (every covering window says 1).

The count of windows covering ``t`` is ``#(STARTTAI <= t) - #(ENDTAI < t)``,
two binary searches in the sorted starts and ends, so the flag of millions
of times costs a few ``searchsorted`` calls, whatever the windows' order or
overlaps.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SkyModellingError

__all__ = ["PhotometricityTable", "read_photometricity", "photometric_flag", "UNKNOWN"]

#: Flag of a time that no window covers.
UNKNOWN = 0.5
REQUIRED = ("STARTTAI", "ENDTAI", "PHOTOMETRIC")


@dataclass(frozen=True)
class PhotometricityTable:
    """Photometricity windows as sorted arrays (small; pickled to workers).

    Attributes
    ----------
    starts, ends : ndarray
        Sorted window starts and ends of all windows (TAI s).
    bad_starts, bad_ends : ndarray
        The same for the non-photometric windows only.
    source : str
        Where the windows came from (a file name, or ``"table"``).
    checksum : str
        Short hash of the windows (recorded so a changed table redoes the outputs).
    n_windows : int
    """

    starts: np.ndarray
    ends: np.ndarray
    bad_starts: np.ndarray
    bad_ends: np.ndarray
    source: str = "table"
    checksum: str = ""
    n_windows: int = 0

    @classmethod
    def from_arrays(cls, start, end, photometric, source: str = "table"):
        """Build from arrays; rows with a non-finite value or ``END < START`` are an error."""
        start = np.asarray(start, dtype=float).ravel()
        end = np.asarray(end, dtype=float).ravel()
        phot = np.asarray(photometric, dtype=float).ravel()
        if not start.size == end.size == phot.size:
            raise SkyModellingError(f"{source}: STARTTAI, ENDTAI, PHOTOMETRIC differ in length")
        for name, values in (("STARTTAI", start), ("ENDTAI", end), ("PHOTOMETRIC", phot)):
            bad = ~np.isfinite(values)
            if bad.any():
                raise SkyModellingError(f"{source}: column {name} is NaN or missing in "
                                        f"{int(bad.sum())} of {values.size} rows")
        if np.any(end < start):
            raise SkyModellingError(f"{source}: ENDTAI before STARTTAI in "
                                    f"{int((end < start).sum())} rows")
        if not np.all(np.isin(phot, (0.0, 1.0))):
            raise SkyModellingError(f"{source}: column PHOTOMETRIC must be 0 or 1, found "
                                    f"{sorted(set(np.unique(phot)) - {0.0, 1.0})[:5]}")
        bad = phot == 0
        digest = hashlib.sha256(np.stack([start, end, phot]).tobytes()).hexdigest()[:16]
        return cls(np.sort(start), np.sort(end), np.sort(start[bad]), np.sort(end[bad]),
                   source=source, checksum=digest, n_windows=int(start.size))


def read_photometricity(path) -> PhotometricityTable:
    """Read a photometricity table (FITS table in HDU 1, or CSV with a header line).

    Parameters
    ----------
    path : path-like
        Columns ``STARTTAI``, ``ENDTAI`` (TAI seconds since MJD 0) and
        ``PHOTOMETRIC`` (1 or 0); other columns (e.g. ``MJD``) are ignored.
        Column names are case-insensitive.

    Raises
    ------
    SkyModellingError
        The file is missing, unreadable, lacks a column or holds bad values
        (the message names the file and the column).

    Examples
    --------
    >>> tab = read_photometricity("apo_photometricity.fits")   # doctest: +SKIP
    >>> photometric_flag([4834945000.0], tab)                   # doctest: +SKIP
    array([1.])
    """
    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise SkyModellingError(f"{path}: photometricity table not found")
    fmt = "ascii.csv" if path.suffix.lower() in (".csv", ".txt") else None
    try:
        table = Table.read(path, format=fmt) if fmt else Table.read(path, hdu=1)
    except Exception as exc:  # astropy raises many kinds for a bad file
        raise SkyModellingError(f"{path}: cannot read photometricity table ({exc})") from exc
    names = {name.upper(): name for name in table.colnames}
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise SkyModellingError(f"{path}: photometricity table lacks column(s) {missing} "
                                f"(has {table.colnames})")
    cols = [np.ma.filled(np.ma.asarray(table[names[c]], dtype=float), np.nan) for c in REQUIRED]
    return PhotometricityTable.from_arrays(*cols, source=str(path))


def _covering(starts, ends, t):
    """Number of windows [start, end] containing each ``t``."""
    return np.searchsorted(starts, t, side="right") - np.searchsorted(ends, t, side="left")


def photometric_flag(tai, table: PhotometricityTable | None) -> np.ndarray:
    """PHOTO of each time: 1 photometric, 0 not, 0.5 unknown (see the module docstring).

    Parameters
    ----------
    tai : array_like
        Times (exposure midpoints), TAI seconds since MJD 0. Non-finite
        times give NaN.
    table : PhotometricityTable or None
        None: every finite time is 0.5.

    Examples
    --------
    >>> tab = PhotometricityTable.from_arrays([0, 10, 15], [10, 20, 30], [1, 1, 0])
    >>> photometric_flag([5, 10, 12, 17, 40], tab)
    array([1. , 1. , 1. , 0. , 0.5])
    """
    t = np.asarray(tai, dtype=float)
    flag = np.full(t.shape, UNKNOWN)
    if table is not None and table.n_windows:
        covered = _covering(table.starts, table.ends, t) > 0
        cloudy = _covering(table.bad_starts, table.bad_ends, t) > 0
        flag = np.where(covered, np.where(cloudy, 0.0, 1.0), UNKNOWN)
    return np.where(np.isfinite(t), flag, np.nan)
