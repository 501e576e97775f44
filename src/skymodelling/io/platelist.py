"""platelist.fits: one row per plate-MJD of a data release (datamodel section 8)."""
from __future__ import annotations

from pathlib import Path

from astropy.io import fits
from astropy.table import Table

from .fitsutil import get_hdu, open_fits, table_from_hdu, write_hdus

__all__ = ["read_platelist", "write_platelist"]


def read_platelist(path) -> Table:
    """Read HDU1 of a platelist file.

    Numeric columns come back in native byte order and strings blank-stripped
    (so ``PLATEQUALITY`` is ``'good'``, ``'bad'`` or ``'marginal'``).

    Raises
    ------
    BossFileError
        Missing, corrupt or truncated file, or HDU1 not a table.
    """
    path = Path(path)
    with open_fits(path) as hdul:
        table = table_from_hdu(get_hdu(hdul, 1, path, "plate list", "table"))
    return table


def write_platelist(path, table: Table) -> Path:
    """Write a plate list (empty primary HDU + one binary table), atomically."""
    if not isinstance(table, Table):
        table = Table(table)
    hdu = fits.table_to_hdu(table)
    hdu.header.remove("EXTNAME", ignore_missing=True)
    return write_hdus(path, [fits.PrimaryHDU(), hdu])
