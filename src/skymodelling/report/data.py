"""What the report shows, read from a pipeline output folder (through ``open_dataset``).

Thin readers returning arrays and Tables; a missing stage gives None (or an empty Table),
never an exception, so that the report can say which section is missing and why.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..errors import SkyModellingError

log = logging.getLogger(__name__)

#: named lines plotted against time and solar flux (decompose fluxes, else the lines stage's)
TREND_LINES = ("OI5577", "OI6300", "NAD", "NI5200", "HG4358", "OI6364")
#: continuum bands plotted against the Moon (lines-stage band means of the mean spectra)
MOON_BANDS = ("C460B", "C540B", "C740R", "C920R")
#: conditions whose distributions are shown (those present), in this order
CONDITIONS = ("AIRMASS", "SEEING50", "OBS_ZENITH", "MOON_ILL", "MOON_ALT", "MOON_SEP",
              "SUN_ALT", "SUN_MOON_SEP", "HOUR", "ZODI", "ISL", "GAL_LAT", "ECL_LAT",
              "SOLARFLUX", "SOLARFLUX_81", "PHOTO", "EXPTIME")


def column(table: Table | None, name: str) -> np.ndarray:
    """Column ``name`` of ``table`` as float64, NaN where masked; all NaN when absent.

    Examples
    --------
    >>> from astropy.table import Table
    >>> column(Table({"A": [1, 2]}), "B")
    array([nan, nan])
    """
    n = 0 if table is None else len(table)
    if table is None or name not in table.colnames:
        return np.full(n, np.nan)
    return np.ma.filled(np.ma.asarray(table[name], dtype=float), np.nan)


def text_column(table: Table, name: str) -> np.ndarray:
    """Column ``name`` as stripped str (bytes decoded)."""
    values = np.ma.filled(np.ma.asarray(table[name]), "")
    return np.char.strip(np.char.decode(values) if values.dtype.kind == "S"
                         else values.astype(str))


def unit_of(table: Table | None, name: str) -> str:
    """The unit of a column as text ('' when none)."""
    if table is None or name not in table.colnames or table[name].unit is None:
        return ""
    return table[name].unit.to_string()


def check_output(out) -> Path:
    """``out`` as a Path, if it is a folder with at least one complete extract output.

    Raises
    ------
    SkyModellingError
        One line naming the folder and what to do.
    """
    out = Path(out)
    if not out.exists():
        raise SkyModellingError(f"{out}: no such folder; give the output folder of "
                                "skymodelling run (or extract)")
    if not out.is_dir():
        raise SkyModellingError(f"{out}: not a folder; give the output folder of "
                                "skymodelling run (or extract)")
    if not any((out / "extract").glob("*/sky-*.fits.done")):
        raise SkyModellingError(f"{out}: not a pipeline output folder (no complete "
                                "extract/*/sky-*.fits); run skymodelling run RAW "
                                f"{out} first")
    return out


def open_means(ds):
    """``ds.means``, or None when there are no mean spectra."""
    try:
        return ds.means
    except SkyModellingError as exc:
        log.info("%s", exc)
        return None


def decomposition(means) -> Table | None:
    """The DECOMPMETA row of every mean spectrum, or None when nothing was decomposed."""
    if means is None:
        return None
    dec = means.decomposition
    if not len(dec) or "RCHI2" not in dec.colnames:
        return None
    if np.all(np.ma.getmaskarray(dec["DFILE"])):
        return None
    return dec


def observing_mjd(table: Table) -> np.ndarray:
    """Mid-exposure time as a TAI MJD (TAI-MID of enrich, else the middle of TAI-BEG/-END)."""
    mid = column(table, "TAI-MID")
    mid = np.where(np.isfinite(mid), mid,
                   0.5 * (column(table, "TAI-BEG") + column(table, "TAI-END")))
    return mid / 86400.0


def line_strengths(means, dec: Table | None, names=TREND_LINES) -> tuple[Table, str]:
    """One row per mean spectrum: CAMERA, TIME (TAI MJD), SOLARFLUX and ``<NAME>_FLUX`` /
    ``_FLUX_ERR`` of the named lines present, from the decomposition when there is one
    (the source returned is ``decompose``), else from the lines stage (``lines``)."""
    meta = means.meta
    source, src = ("decompose", dec) if dec is not None else ("lines", meta)
    table = Table({"CAMERA": text_column(meta, "CAMERA"), "TIME": observing_mjd(meta),
                   "SOLARFLUX": column(meta, "SOLARFLUX")})
    for name in names:
        if f"{name}_FLUX" in src.colnames:
            table[f"{name}_FLUX"] = column(src, f"{name}_FLUX")
            table[f"{name}_FLUX_ERR"] = column(src, f"{name}_FLUX_ERR")
    return table, source


def exposures(table: Table) -> Table:
    """The first row of each exposure (PLATE, MJD, IMG): exposure-wide conditions once."""
    keys = np.stack([column(table, k) for k in ("PLATE", "MJD", "IMG")], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)
    return table[np.sort(first)]


def camera_stack(means, camera: str, max_spectra: int = 400, seed: int = 0):
    """The mean spectra of one camera: (rows of ``means.meta``, WAVE, FLUX, IVAR stacks).

    At most ``max_spectra`` (a fixed random subset when there are more), read file by
    file with one slice per file.
    """
    cams = text_column(means.meta, "CAMERA")
    rows = np.flatnonzero(cams == camera)
    if rows.size > max_spectra:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_spectra, replace=False))
    files = np.asarray(means.meta["FILE"])[rows]
    img_rows = np.asarray(means.meta["ROW"])[rows]
    flux, ivar, order, wave = [], [], [], None
    for f in np.unique(files):
        sel = np.flatnonzero(files == f)
        with fits.open(means.files[int(f)], memmap=True) as hdul:
            if wave is None:
                wave = np.array(hdul[f"{camera[0].upper()}_WAVE"].data, dtype=float)
            flux.append(np.array(hdul[f"{camera.upper()}_FLUX"].data[img_rows[sel]], dtype=float))
            ivar.append(np.array(hdul[f"{camera.upper()}_IVAR"].data[img_rows[sel]], dtype=float))
        order.append(sel)
    if not order:
        return rows, None, None, None
    back = np.argsort(np.concatenate(order))
    return rows, wave, np.concatenate(flux)[back], np.concatenate(ivar)[back]


def typical(flux: np.ndarray, ivar: np.ndarray) -> int:
    """Index of the spectrum whose median good flux is the median of all (a typical sky)."""
    level = np.nanmedian(np.where(ivar > 0, flux, np.nan), axis=1)
    level = np.where(np.isfinite(level), level, np.inf)
    return int(np.argmin(np.abs(level - np.median(level[np.isfinite(level)]))))


def envelope(flux: np.ndarray, ivar: np.ndarray, lo: float = 16, hi: float = 84):
    """Per-pixel ``lo`` and ``hi`` percentiles over the spectra with a good pixel there."""
    masked = np.where(ivar > 0, flux, np.nan)
    ok = np.isfinite(masked).any(axis=0)
    band = np.full((2, flux.shape[1]), np.nan)
    band[:, ok] = np.nanpercentile(masked[:, ok], [lo, hi], axis=0)
    return band[0], band[1]


def failures(out: Path) -> Table:
    """Every problem recorded in ``OUT/failures/*.csv`` (docs/run.md)."""
    from ..stages._common import read_failures

    return read_failures(out)


def removed(out: Path) -> Table | None:
    """Counts of merge's removed rows by reason and plate (None when merge has not run)."""
    path = out / "merge" / "removed.fits"
    if not path.is_file():
        return None
    with fits.open(path, memmap=True) as hdul:
        data = hdul[1].data
        reason = np.char.strip(np.asarray(data["REASON"]).astype(str))
        plate, mjd = np.asarray(data["PLATE"]), np.asarray(data["MJD"])
    if not reason.size:
        return Table(names=("REASON", "PLATE", "MJD", "N"), dtype=("U80", "i4", "i4", "i8"))
    keys, counts = np.unique(np.rec.fromarrays([reason, plate, mjd]), return_counts=True)
    return Table({"REASON": keys["f0"], "PLATE": keys["f1"], "MJD": keys["f2"], "N": counts})


def merge_counts(out: Path) -> dict | None:
    """``OUT/merge/counts.json`` (None when merge has not run)."""
    path = out / "merge" / "counts.json"
    return json.loads(path.read_text()) if path.is_file() else None


def recorded_provenance(out: Path, ds) -> dict:
    """Version and configuration recorded by the pipeline in its outputs.

    Taken from the catalogue (``merge/all.fits``) when there is one, else from the first
    extract output: ``{"file", "SMVERS", "SMCONFIG"}`` (SMCONFIG parsed from JSON).
    """
    path = out / "merge" / "all.fits"
    path = path if path.is_file() else ds.files[0]
    header = fits.getheader(path, 0)
    try:
        config = json.loads(header.get("SMCONFIG", "{}"))
    except json.JSONDecodeError:
        config = header.get("SMCONFIG", "")
    return {"file": str(path.relative_to(out)), "SMVERS": header.get("SMVERS", ""),
            "SMCONFIG": config}
