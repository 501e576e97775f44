"""Plugmap tables (spFrame/spCFrame/spPlate HDU5; datamodel section 6).

One row per fibre, sorted by FIBERID. The column set varies with the
pipeline version, so the reader keeps whatever columns the file has and only
insists on OBJTYPE and FIBERID.
"""
from __future__ import annotations

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..errors import BossFileError
from .fitsutil import hdu_path, table_from_hdu

__all__ = ["PLUGMAP_COLUMNS", "REQUIRED_COLUMNS", "empty_plugmap", "read_plugmap",
           "plugmap_hdu", "is_sky"]

#: (name, numpy dtype, per-row shape) of the columns the simulator writes.
PLUGMAP_COLUMNS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("OBJID", "i4", (5,)),
    ("HOLETYPE", "U6", ()),
    ("RA", "f8", ()),
    ("DEC", "f8", ()),
    ("MAG", "f4", (5,)),
    ("STARL", "f4", ()),
    ("EXPL", "f4", ()),
    ("DEVAUCL", "f4", ()),
    ("THROUGHPUT", "i4", ()),
    ("PRIMTARGET", "i4", ()),
    ("SECTARGET", "i4", ()),
    ("OBJTYPE", "U16", ()),
    ("XFOCAL", "f8", ()),
    ("YFOCAL", "f8", ()),
    ("SPECTROGRAPHID", "i4", ()),
    ("FIBERID", "i4", ()),
    ("OFFSETID", "i4", ()),
    ("SCI_EXPTIME", "f4", ()),
    ("BOSS_TARGET1", "i8", ()),
    ("SFD_EBV", "f4", ()),
    ("CALIBFLUX", "f4", (5,)),
)

#: Columns without which a plugmap is useless to this package.
REQUIRED_COLUMNS = ("OBJTYPE", "FIBERID")


def empty_plugmap(n: int) -> Table:
    """A zero-filled plugmap of ``n`` rows with :data:`PLUGMAP_COLUMNS` (strings empty).

    Examples
    --------
    >>> t = empty_plugmap(3)
    >>> len(t), t["MAG"].shape, t["OBJTYPE"].dtype.str
    (3, (3, 5), '<U16')
    """
    table = Table()
    for name, dtype, shape in PLUGMAP_COLUMNS:
        table[name] = np.zeros((int(n),) + shape, dtype=dtype)
    return table


def read_plugmap(hdu, rows=None, path=None) -> Table:
    """Read a plugmap HDU into an astropy Table (native byte order, stripped strings).

    Parameters
    ----------
    hdu : astropy.io.fits.BinTableHDU
    rows : int array, optional
        0-based rows to keep.
    path : path-like, optional
        File name for error messages (default: taken from the HDU).

    Raises
    ------
    BossFileError
        Not a table, or OBJTYPE / FIBERID missing.
    """
    where = path if path is not None else hdu_path(hdu)
    if not isinstance(hdu, fits.BinTableHDU):
        raise BossFileError(where, f"plugmap HDU is a {type(hdu).__name__}, not a binary table")
    names = hdu.columns.names
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise BossFileError(where, f"plugmap lacks column(s) {', '.join(missing)}")
    return table_from_hdu(hdu, rows)


def plugmap_hdu(table: Table, extname: str | None = "PLUGMAP") -> fits.BinTableHDU:
    """A plugmap Table as a binary-table HDU (EXTNAME ``extname``; None for spFrame).

    Examples
    --------
    >>> plugmap_hdu(empty_plugmap(2)).header["EXTNAME"]
    'PLUGMAP'
    """
    if not isinstance(table, Table):
        table = Table(table)
    hdu = fits.table_to_hdu(table)
    hdu.header.remove("EXTNAME", ignore_missing=True)
    if extname:
        hdu.header["EXTNAME"] = extname
    return hdu


def is_sky(plugmap) -> np.ndarray:
    """True for sky fibres (OBJTYPE, blank-stripped, equal to ``'SKY'``).

    Examples
    --------
    >>> t = empty_plugmap(3)
    >>> t["OBJTYPE"] = ["SKY", "QSO", "SKY   "]
    >>> is_sky(t)
    array([ True, False,  True])
    """
    objtype = np.asarray(plugmap["OBJTYPE"])
    if objtype.dtype.kind == "S":
        objtype = np.char.decode(objtype, "ascii", errors="replace")
    return np.char.strip(objtype.astype(str)) == "SKY"
