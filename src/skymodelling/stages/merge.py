"""Stage merge: one catalogue of every sky spectrum, with quality cuts and their record.

Joins, row by row, the extract metadata, the enrich conditions and the lines
measurements of every plate (:func:`skymodelling.open_dataset`), and the line fluxes of
the decompositions (the mean spectrum's of each row's exposure and camera as
``DECOMP_*``, the row's own as ``DECOMPFIB_*`` after ``decompose --spectra fibres``), and
writes,
in ``OUT/merge/``, in FITS and Parquet:

* ``all``: every spectrum;
* ``good``: without plates marked ``bad`` in the platelist (PLATEQUALITY) and
  without the configured excluded plates;
* ``clean``: ``good`` without spectra whose line measurements are all zero or
  non-finite;
* ``removed``: every row of ``all`` not in ``clean``, with a REASON column.

Every row of ``all`` is in exactly one of ``clean`` and ``removed``.  File
names carry no date: the date, the package version and the configuration are
in the headers (FITS) and the schema metadata (Parquet).
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from .._atomic import atomic_path
from ..config import Config
from ..errors import SkyModellingError
from ..io import products
from ..io.fitsutil import write_hdus
from . import _common

log = logging.getLogger(__name__)

STAGE = "merge"
PRODUCTS = products.CATALOGUES
REASON_BAD = "plate marked bad in the platelist (PLATEQUALITY)"
REASON_EXCLUDED = "plate excluded by configuration (exclude_plates)"
REASON_NO_LINES = "no line measurement is finite and non-zero"


def plate_quality(meta: Table, platelist: Table | None) -> np.ndarray:
    """PLATEQUALITY of every row's (PLATE, MJD) ('unknown' when not listed)."""
    quality = np.full(len(meta), "unknown", dtype="U16")
    if platelist is None or len(meta) == 0:
        return quality
    lookup = {(int(p), int(m)): str(q).strip() for p, m, q in
              zip(platelist["PLATE"], platelist["MJD"], platelist["PLATEQUALITY"], strict=True)}
    keys = np.column_stack([np.asarray(meta["PLATE"]), np.asarray(meta["MJD"])])
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    values = np.array([lookup.get((int(p), int(m)), "unknown") for p, m in uniq], dtype="U16")
    return values[inverse.ravel()]


def line_measure_columns(meta: Table) -> list[str]:
    """The line-measurement columns of the lines stage (raw sums and integrated fluxes;
    not the joined decompositions' ``DECOMP_``/``DECOMPFIB_`` columns)."""
    return [c for c in meta.colnames if c.endswith(("_SUM", "_FLUX"))
            and not c.startswith(DECOMP_PREFIXES)]


#: Prefixes of the joined decomposition columns: per exposure-camera (mean spectra) and
#: per fibre (``decompose --spectra fibres``).
DECOMP_PREFIXES = ("DECOMP_", "DECOMPFIB_")
#: Missing-value fill of the joined integer columns (rows without a decomposition).
NO_DECOMP_FLAG = -1


def decomposition_columns(table: Table) -> list[str]:
    """The columns of a decomposition table joined into the catalogue: the named lines'
    fluxes and errors, RCHI2 and FLAG."""
    return [c for c in table.colnames if c.endswith(("_FLUX", "_FLUX_ERR"))
            or c in ("RCHI2", "FLAG")]


def join_decomposition(meta: Table, dec: Table | None, keys, prefix: str) -> Table:
    """``meta`` with the :func:`decomposition_columns` of ``dec`` (matched on ``keys``) as
    ``<prefix><NAME>``; NaN (floats) or :data:`NO_DECOMP_FLAG` (FLAG) where a row has no
    decomposition. Units are kept. Vectorised: the keys of both tables become integer codes
    (string keys compared without surrounding blanks), then one lookup array.

    Examples
    --------
    >>> meta = Table({"IMG": [1, 1, 2], "CAMERA": ["b1", "r1", "b1"]})
    >>> dec = Table({"IMG": [1], "CAMERA": ["b1"], "OI5577_FLUX": [3.0], "FLAG": [0]})
    >>> t = join_decomposition(meta, dec, ("IMG", "CAMERA"), "DECOMP_")
    >>> t["DECOMP_OI5577_FLUX"].tolist(), t["DECOMP_FLAG"].tolist()
    ([3.0, nan, nan], [0, -1, -1])
    """
    if dec is None or len(dec) == 0:
        return meta

    n = len(meta)
    codes = []
    for k in keys:
        values = np.concatenate([np.asarray(meta[k]), np.asarray(dec[k])])
        uniq, inverse = np.unique(values, return_inverse=True)
        if uniq.dtype.kind in "SU":   # "b1 " and "b1" are the same camera
            uniq, again = np.unique(np.char.strip(uniq.astype(str)), return_inverse=True)
            inverse = again[inverse]
        codes.append(inverse.ravel())
    ids = np.unique(np.column_stack(codes), axis=0, return_inverse=True)[1].ravel()
    lookup = np.full(ids.max() + 1, -1, dtype=np.int64)
    lookup[ids[n:]] = np.arange(len(dec))
    src = lookup[ids[:n]]
    found = src >= 0
    src = np.where(found, src, 0)
    for name in decomposition_columns(dec):
        col = dec[name]
        values = np.ma.getdata(col) if isinstance(col, np.ma.MaskedArray) else np.asarray(col)
        missing = ~found
        if isinstance(col, np.ma.MaskedArray):
            missing = missing | np.ma.getmaskarray(col)[src]
        if values.dtype.kind == "f":
            data = np.where(missing, np.nan, values[src]).astype(values.dtype)
        else:
            data = np.where(missing, NO_DECOMP_FLAG, values[src]).astype(np.int32)
        meta[prefix + name] = data
        unit = getattr(col, "unit", None)
        if unit is not None:
            meta[prefix + name].unit = unit
    return meta


def with_decompositions(meta: Table, out: Path) -> Table:
    """``meta`` with the mean decomposition of each row's exposure and camera
    (``DECOMP_*``) and, where ``decompose --spectra fibres`` ran, the row's own
    (``DECOMPFIB_*``)."""
    dec, _ = products.stack_complete(products.DECOMP.files(out), products.DECOMP.table, "_F")
    # ROW of a decomposition is its row in its own file: not a key of the catalogue
    meta = join_decomposition(meta, dec, ("PLATE", "MJD", "IMG", "CAMERA"), "DECOMP_")
    fib, _ = products.stack_complete(products.DECOMP_FIBRES.files(out),
                                     products.DECOMP_FIBRES.table, "_F")
    return join_decomposition(meta, fib, ("PLATE", "MJD", "IMG", "CAMERA", "FIB"),
                              "DECOMPFIB_")


def has_line_measure(meta: Table) -> np.ndarray:
    """True where at least one line measurement of the row is finite and non-zero."""
    cols = line_measure_columns(meta)
    if not cols:
        raise SkyModellingError("no line measurement columns: run skymodelling lines first")
    values = np.column_stack([np.asarray(meta[c], dtype=float) for c in cols])
    return np.any(np.isfinite(values) & (values != 0), axis=1)


def select(meta: Table, platelist: Table | None, exclude_plates=()) -> dict[str, np.ndarray]:
    """The cuts, as boolean masks over ``meta`` and a REASON per row ('' when kept).

    Returns ``{"good": mask, "clean": mask, "reason": str array}``; the first
    reason that applies is recorded (bad plate, excluded plate, no line measure).
    """
    quality = plate_quality(meta, platelist)
    bad = np.char.lower(quality) == "bad"
    excluded = np.isin(np.asarray(meta["PLATE"]), np.asarray(list(exclude_plates), dtype=int))
    no_lines = ~has_line_measure(meta)
    reason = np.where(bad, REASON_BAD, np.where(excluded, REASON_EXCLUDED,
                                                 np.where(no_lines, REASON_NO_LINES, "")))
    good = ~bad & ~excluded
    return {"good": good, "clean": good & ~no_lines, "reason": reason.astype("U64"),
            "quality": quality}


def counts(meta: Table) -> dict[str, int]:
    """Plates, exposures, nights and spectra of a table."""
    if len(meta) == 0:
        return {"plates": 0, "exposures": 0, "nights": 0, "spectra": 0}
    return {"plates": len(np.unique(np.column_stack([meta["PLATE"], meta["MJD"]]), axis=0)),
            "exposures": len(np.unique(np.asarray(meta["IMG"]))),
            "nights": len(np.unique(np.asarray(meta["MJD"]))),
            "spectra": len(meta)}


def _units(meta: Table) -> dict[str, str]:
    """Each column's unit as a FITS unit string (S10 as its name: it goes to TCOMMn)."""
    units = {}
    for name in meta.colnames:
        unit = getattr(meta[name], "unit", None)
        if unit is None:
            continue
        try:
            units[name] = unit.to_string("fits")
        except (ValueError, AttributeError):
            units[name] = str(unit)
    return units


def _plain(meta: Table) -> Table:
    """A copy without units and masks (units travel in TUNIT / field metadata)."""
    out = Table()
    for name in meta.colnames:
        col = meta[name]
        data = np.ma.getdata(col) if isinstance(col, np.ma.MaskedArray) else np.asarray(col)
        out[name] = np.asarray(data)
    return out


def _header_cards(config: Config, product: str, stats: dict) -> list[tuple]:
    cards = _common.provenance_cards(STAGE, config)
    cards += [("PRODUCT", product, "all, good, clean or removed"),
              ("DATE", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
               "UTC date the catalogue was written"),
              ("NPLATES", stats["plates"], "plate-MJDs"), ("NEXPOSUR", stats["exposures"],
                                                           "exposures"),
              ("NNIGHTS", stats["nights"], "nights (MJDs)"), ("NSPECTRA", stats["spectra"],
                                                              "spectra")]
    return cards


def write_fits(path: Path, table: Table, units: dict, cards: list[tuple]) -> None:
    primary = fits.PrimaryHDU()
    for key, value, comment in cards:
        primary.header[key] = (value, comment)
    write_hdus(path, [primary, products.table_hdu(_plain(table), "CATALOG", units)])


def write_parquet(path: Path, table: Table, units: dict, cards: list[tuple]) -> None:
    """Parquet with each column's unit in its field metadata and the provenance in the schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    plain = _plain(table)
    fields, arrays = [], []
    for name in plain.colnames:
        arr = np.asarray(plain[name])
        if not arr.dtype.isnative:
            # FITS columns are big-endian; Arrow takes native byte order only
            arr = arr.astype(arr.dtype.newbyteorder("="))
        if arr.ndim > 1:
            arr = list(arr)
        array = pa.array(arr)
        meta = {"unit": units[name]} if name in units else None
        fields.append(pa.field(name, array.type, metadata=meta))
        arrays.append(array)
    schema = pa.schema(fields, metadata={k: str(v) for k, v, _ in cards})
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_arrays(arrays, schema=schema), tmp)


def _inputs_digest(out: Path, platelist_path: Path | None, exclude: tuple) -> str:
    """Fingerprint of everything the catalogue is made from."""
    parts = []
    for stage in ("extract", "enrich", "lines", "decompose"):
        for marker in sorted((out / stage).glob("*/*.done")):
            parts.append(f"{marker.relative_to(out)}:{marker.read_text()}")
    if platelist_path is not None and platelist_path.is_file():
        # content, not modification time: the same inputs give the same marker
        parts.append(f"platelist:{hashlib.sha256(platelist_path.read_bytes()).hexdigest()}")
    parts.append(f"exclude:{sorted(exclude)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def run_merge(out, config: Config | None = None, *, platelist=None,
              verbose: bool = True, force: bool = False) -> dict[str, dict[str, int]]:
    """Write the catalogue products of ``out``; return the counts of each product.

    Parameters
    ----------
    out : path-like
        Output folder of the earlier stages.
    config : Config, optional
        ``config.merge.exclude_plates`` lists plates to leave out of ``good``.
    platelist : path-like, optional
        Plate list with PLATEQUALITY (default: ``OUT/platelist.fits``, copied by
        extract from the reduction tree).
    verbose : bool
        Print the counts.
    force : bool
        Write the catalogue even when it is up to date.
    """
    from ..io.platelist import read_platelist

    config = config or Config()
    t0 = time.perf_counter()
    out = Path(out)
    exclude = tuple(int(p) for p in config.merge.exclude_plates)
    platelist_path = Path(platelist) if platelist else out / "platelist.fits"
    folder = out / STAGE
    digest = _inputs_digest(out, platelist_path if platelist_path.exists() else None, exclude)
    targets = [folder / f"{p}.{ext}" for p in PRODUCTS for ext in ("fits", "parquet")]
    summary_path = folder / "counts.json"
    if not force and summary_path.is_file() and all(
            _common.is_current(t, STAGE, config, digest) for t in targets):
        log.info("merge: catalogue is up to date")
        return json.loads(summary_path.read_text())
    for t in targets:
        _common.invalidate(t)
    if platelist_path.exists():
        table = read_platelist(platelist_path)
    elif platelist:
        raise SkyModellingError(f"{platelist_path}: no such platelist")
    else:
        log.warning("%s: no platelist; PLATEQUALITY unknown, no plate is cut as bad",
                    platelist_path)
        table = None
    meta, files = products.sky_catalogue(out)
    if meta is None:
        raise SkyModellingError(f"{out}: no extracted plate (run skymodelling extract)")
    unknown = sorted(set(exclude) - {int(p) for p in np.unique(np.asarray(meta["PLATE"]))})
    if unknown:
        raise SkyModellingError(f"exclude_plates names plate(s) {', '.join(map(str, unknown))} "
                                f"that {out} does not hold; correct the configuration")
    if "FILE" in meta.colnames:
        names = np.array([str(f.relative_to(out)) for f in files])
        meta["SKYFILE"] = names[np.asarray(meta["FILE"], dtype=int)]
        meta.remove_column("FILE")
    meta = with_decompositions(meta, out)
    cuts = select(meta, table, exclude)
    meta["PLATEQUALITY"] = cuts["quality"]
    catalogues = {"all": meta, "good": meta[cuts["good"]], "clean": meta[cuts["clean"]]}
    removed = meta[~cuts["clean"]]
    removed["REASON"] = cuts["reason"][~cuts["clean"]]
    catalogues["removed"] = removed
    units = _units(meta)
    stats = {name: counts(t) for name, t in catalogues.items()}
    for name, product in catalogues.items():
        cards = _header_cards(config, name, stats[name])
        for ext, writer in (("fits", write_fits), ("parquet", write_parquet)):
            target = folder / f"{name}.{ext}"
            writer(target, product, units, cards)
            _common.mark_complete(target, STAGE, config, digest)
    from .._atomic import write_text_atomic

    write_text_atomic(summary_path, json.dumps(stats, indent=1))
    if verbose:
        print(describe_counts(stats))
        print(f"merge: catalogue in {folder} ({time.perf_counter() - t0:.1f} s)")
    return stats


def describe_counts(stats: dict) -> str:
    """A small table of plate-MJDs, exposures, nights and spectra per product."""
    lines = [f"{'':10s} {'plate-MJDs':>10s} {'exposures':>10s} {'nights':>8s} {'spectra':>10s}"]
    for name in PRODUCTS:
        c = stats[name]
        lines.append(f"{name:10s} {c['plates']:10d} {c['exposures']:10d} {c['nights']:8d} "
                     f"{c['spectra']:10d}")
    return "\n".join(lines)
