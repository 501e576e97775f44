"""The pipeline's output products, in one place.

Every file the stages write under an output folder ``OUT`` is described here:
where it lives and how it is named (:class:`Product`), its table HDU and key
columns, the units of its columns, how a table is written with units
(:func:`table_hdu`) and read back (:func:`read_table`), and when a file counts
as complete (:func:`is_complete`: its ``.done`` marker exists and records the
file's size). Stages, :mod:`skymodelling.dataset` and the merge read and write
through this module instead of through each other. The formats are documented
in ``docs/`` (one page per stage).

Examples
--------
>>> from skymodelling.io import products
>>> products.SKY.path("OUT", 3985, 55320)
PosixPath('OUT/extract/3985/sky-3985-55320.fits')
>>> products.SKY.parse("OUT/extract/3985/sky-3985-55320.fits")
(3985, 55320)
>>> products.DECOMP.parse("decomp-fibres-3985-55320.fits") is None
True
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ units

#: Units as FITS unit strings (FITS allows a power-of-ten factor, not "1e-17").
FLUX_UNIT = "10**-17 erg Angstrom-1 s-1 cm-2"
IVAR_UNIT = "10**34 cm4 Angstrom2 s2 erg-2"
LINE_FLUX_UNIT = "10**-17 erg s-1 cm-2"
WAVE_UNIT = "Angstrom"

#: One 10th-magnitude (V) solar-type star per square degree (27.78 V mag/arcsec2; at
#: 500 nm 1.28e-9 erg s-1 cm-2 sr-1 A-1, Leinert et al. 1998): the unit of the zodiacal
#: light and starlight columns. Not a FITS unit, so files carry it as ``TCOMMn =
#: 'unit: S10 ...'`` instead of TUNITn (a TUNIT ``S10`` would read as siemens**10);
#: :func:`read_table` gives such columns this unit.
S10 = u.def_unit("S10", doc="brightness of one V=10 solar-type star per square degree")
#: Units written as TCOMMn comments rather than TUNITn, and how they are described there.
COMMENT_UNITS = {"S10": "unit: S10 (one V=10 mag solar-type star per deg2)"}

#: The raw metadata columns of the extract output's META table: name, dtype, unit,
#: source ("hdr:KEY" of the exposure's spFrame HDU 0, "hdr0:KEY" of its first camera's
#: frame, "plug:COL" of the plug map, or computed). Names follow the original
#: SkyModelling raw metadata. Weather values are converted from the BOSS headers'
#: mph and inHg to FITS units (km/h, hPa); humidity stays in percent, written as the
#: FITS scale ``10**-2``.
META_COLUMNS = [
    ("PLATE", "i4", None, "hdr:PLATEID"),
    ("MJD", "i4", None, "hdr:MJD"),
    ("IMG", "i4", None, "hdr:EXPOSURE"),
    ("CAMERA", "U2", None, "camera"),
    ("SPECNO", "i2", None, "plug:SPECTROGRAPHID"),
    ("FIB", "i4", None, "plug:FIBERID"),
    ("ROW", "i4", None, "row"),
    ("RUN2D", "U8", None, "run2d"),
    ("XFOCAL", "f8", "mm", "plug:XFOCAL"),
    ("YFOCAL", "f8", "mm", "plug:YFOCAL"),
    ("FIBER_RA", "f8", "deg", "plug:RA"),
    ("FIBER_DEC", "f8", "deg", "plug:DEC"),
    ("OBJTYPE", "U16", None, "plug:OBJTYPE"),
    ("TAI-BEG", "f8", "s", "hdr:TAI-BEG"),
    ("TAI-END", "f8", "s", "hdr:TAI-END"),
    ("DATE-OBS", "U19", None, "hdr:DATE-OBS"),
    ("RA", "f8", "deg", "hdr:RA"),
    ("DEC", "f8", "deg", "hdr:DEC"),
    ("CAMERAS", "U4", None, "hdr:CAMERAS"),
    ("AIRMASS", "f4", None, "hdr0:AIRMASS"),
    ("ALT", "f4", "deg", "hdr:ALT"),
    ("AZ", "f4", "deg", "hdr:AZ"),
    ("EXPTIME", "f4", "s", "hdr:EXPTIME"),
    *[(f"SEEING{p}", "f4", "arcsec", f"hdr0:SEEING{p}") for p in (20, 50, 80)],
    *[(f"RMSOFF{p}", "f4", "arcsec", f"hdr0:RMSOFF{p}") for p in (20, 50, 80)],
    *[(f"REDDEN{i:02d}", "f4", "mag", f"hdr0:REDDEN{i:02d}") for i in range(1, 6)],
    ("QUALITY", "U16", None, "hdr:QUALITY"),
    ("AIRTEMP", "f4", "Celsius", "hdr:AIRTEMP"),
    ("DEWPOINT", "f4", "Celsius", "hdr:DEWPOINT"),
    ("DUSTA", "f4", "ct", "hdr:DUSTA"),
    ("DUSTB", "f4", "ct", "hdr:DUSTB"),
    ("DUSTC", "f4", "ct", "hdr:DUSTC"),
    ("DUSTD", "f4", "ct", "hdr:DUSTD"),
    ("GUSTD", "f4", "deg", "hdr:GUSTD"),
    ("GUSTS", "f4", "km h-1", "hdr:GUSTS"),
    ("HUMIDITY", "f4", "10**-2", "hdr:HUMIDITY"),
    ("PRESSURE", "f4", "hPa", "hdr:PRESSURE"),
    ("WINDD", "f4", "deg", "hdr:WINDD"),
    ("WINDS", "f4", "km h-1", "hdr:WINDS"),
    ("HELIO_RV", "f8", "km s-1", "hdr:HELIO_RV"),
]
META_UNITS = {name: unit for name, _dtype, unit, _src in META_COLUMNS if unit}

#: Factors from the BOSS header units to the META units (mph -> km/h, inHg -> hPa).
HEADER_TO_META = {"GUSTS": 1.609344, "WINDS": 1.609344, "PRESSURE": 33.8638866667}

#: The arrays of an extract output, per camera ``<CAM>_<NAME>``.
SKY_ARRAY_UNITS = {"WAVE": WAVE_UNIT, "FLUX": FLUX_UNIT, "IVAR": IVAR_UNIT, "MASK": None,
                   "DISP": WAVE_UNIT}

#: Solar radio flux unit (10.7 cm flux).
SFU = "10**-22 W m-2 Hz-1"

#: The columns enrich adds (its CONDITIONS table beside the keys): name, dtype, unit,
#: what they depend on (t: time, p: pointing). See docs/enrich.md.
CONDITION_COLUMNS = [
    ("TAI-MID", "f8", "s", "t"),
    ("OBS_ZENITH", "f8", "deg", "tp"),
    ("ECL_LAT", "f8", "deg", "tp"),
    ("ECL_LON", "f8", "deg", "tp"),
    ("ECL_LON_SUN", "f8", "deg", "tp"),
    ("GAL_LAT", "f8", "deg", "p"),
    ("GAL_LON", "f8", "deg", "p"),
    ("MOOND", "f8", "km", "t"),
    ("MOON_SEP", "f8", "deg", "tp"),
    ("MOON_ALT", "f8", "deg", "t"),
    ("MOON_AZ", "f8", "deg", "t"),
    ("MOON_ZENITH", "f8", "deg", "t"),
    ("MOON_ILL", "f8", None, "t"),
    ("MOON_PHASE", "f8", "rad", "t"),
    ("SUN_SEP", "f8", "deg", "tp"),
    ("SUN_ALT", "f8", "deg", "t"),
    ("SUN_AZ", "f8", "deg", "t"),
    ("SUN_MOON_SEP", "f8", "deg", "t"),
    ("SUN_SET", "f8", "d", "t"),
    ("SUN_RISE", "f8", "d", "t"),
    ("HOUR", "f8", "h", "t"),
    ("MONTH", "i2", None, "t"),
    ("ZODI", "f8", "S10", "tp"),
    ("ISL", "f8", "S10", "p"),
    ("SOLARFLUX", "f8", SFU, "t"),
    ("SOLARFLUX_81", "f8", SFU, "t"),
    ("PHOTO", "f4", None, "t"),
]
CONDITION_UNITS = {name: unit for name, _dtype, unit, _dep in CONDITION_COLUMNS if unit}

#: Key columns identifying one sky-fibre spectrum in every per-fibre table.
FIBRE_KEYS = ("PLATE", "MJD", "IMG", "CAMERA", "FIB", "ROW")
#: Key columns identifying one mean spectrum (exposure and camera).
MEAN_KEYS = ("PLATE", "MJD", "IMG", "CAMERA", "ROW")


def line_units(features) -> dict[str, str]:
    """Units of the lines stage's measurement columns for the feature list ``features``
    (a Table with NAME) and of the broadband magnitudes."""
    from ..spectral.photometry import BANDS

    units = {}
    for name in np.asarray(features["NAME"]).astype(str):
        units[f"{name}_SUM"] = FLUX_UNIT
        units[f"{name}_MEAN3"] = FLUX_UNIT
        units[f"{name}_FLUX"] = units[f"{name}_FLUX_ERR"] = LINE_FLUX_UNIT
        units[f"{name}_CONT"] = units[f"{name}_CONT_ERR"] = FLUX_UNIT
    for band, _, _ in BANDS:
        units[band] = "mag arcsec-2"
    return units


# --------------------------------------------------------------- products

@dataclass(frozen=True)
class Product:
    """One kind of per-plate output file: ``OUT/<folder>/<PLATE>/<prefix>-PLATE-MJD.fits``.

    Attributes
    ----------
    stage : str
        The stage that writes it (and its completion markers).
    folder : str
        Its folder under ``OUT``.
    prefix : str
        File-name prefix.
    table : str
        EXTNAME of its main table HDU.
    keys : tuple of str
        The key columns of that table.
    """

    stage: str
    folder: str
    prefix: str
    table: str
    keys: tuple

    @property
    def _pattern(self) -> re.Pattern:
        return re.compile(rf"{re.escape(self.prefix)}-(\d+)-(\d+)\.fits")

    def path(self, out, plate: int, mjd: int) -> Path:
        """The file of plate ``plate`` observed on ``mjd``."""
        return (Path(out) / self.folder / f"{int(plate):04d}"
                / f"{self.prefix}-{int(plate):04d}-{int(mjd):05d}.fits")

    def parse(self, path) -> tuple[int, int] | None:
        """(PLATE, MJD) from a file name of this product, None for any other name."""
        m = self._pattern.fullmatch(Path(path).name)
        return (int(m.group(1)), int(m.group(2))) if m else None

    def files(self, out, *, complete: bool = True) -> list[Path]:
        """This product's files under ``out``, sorted; only the complete ones by default."""
        found = [p for p in sorted((Path(out) / self.folder).glob(f"*/{self.prefix}-*.fits"))
                 if self.parse(p)]
        return [p for p in found if is_complete(p)] if complete else found


SKY = Product("extract", "extract", "sky", "META", FIBRE_KEYS)
CONDITIONS = Product("enrich", "enrich", "cond", "CONDITIONS", FIBRE_KEYS)
LINES = Product("lines", "lines", "lines", "LINES", FIBRE_KEYS)
MEAN = Product("mean", "mean", "mean", "MEANMETA", MEAN_KEYS)
DECOMP = Product("decompose", "decompose", "decomp", "DECOMPMETA", MEAN_KEYS)
DECOMP_FIBRES = Product("decompfibres", "decompose", "decomp-fibres", "DECOMPFIBRES",
                        FIBRE_KEYS)
#: Every per-plate product, by name.
PRODUCTS = {"sky": SKY, "conditions": CONDITIONS, "lines": LINES, "mean": MEAN,
            "decomp": DECOMP, "decomp-fibres": DECOMP_FIBRES}

#: The merged catalogues of ``skymodelling merge``: ``OUT/merge/<name>.fits|.parquet``.
CATALOGUES = ("all", "good", "clean", "removed")


def catalogue_path(out, name: str, ext: str = "fits") -> Path:
    """The merged catalogue ``name`` (one of :data:`CATALOGUES`) in format ``ext``."""
    if name not in CATALOGUES:
        raise ValueError(f"unknown catalogue {name!r}: one of {', '.join(CATALOGUES)}")
    return Path(out) / "merge" / f"{name}.{ext}"


# ---------------------------------------------------------- completeness

def marker_path(output) -> Path:
    """The completion marker of ``output`` (``<name>.done`` beside it)."""
    output = Path(output)
    return output.with_name(output.name + ".done")


def marker_info(output) -> dict:
    """The contents of ``output``'s completion marker ({} if absent or unreadable)."""
    try:
        return json.loads(marker_path(output).read_text())
    except (OSError, ValueError):
        return {}


def is_complete(output) -> bool:
    """True when ``output`` exists and its marker records its present size (written
    completely by a stage; whether it is *current* is the stages' cache-key check)."""
    output = Path(output)
    try:
        size = output.stat().st_size
    except OSError:
        return False
    return marker_info(output).get("size") == size


# ------------------------------------------------------------ tables

def table_hdu(table: Table, extname: str, units: dict) -> fits.BinTableHDU:
    """A table HDU named ``extname`` with a TUNITn card for each column in ``units``.

    The unit strings are written as given (FITS strings such as ``10**-17 erg ...``);
    the units of :data:`COMMENT_UNITS` (S10) go to TCOMMn, which :func:`read_table`
    reads back. Units already on the table's columns are replaced by ``units``.
    """
    plain = Table(table, copy=False)
    for name in plain.colnames:
        plain[name].unit = None
    hdu = fits.table_to_hdu(plain)
    hdu.header["EXTNAME"] = extname
    for i, name in enumerate(plain.colnames, start=1):
        unit = units.get(name)
        if not unit:
            continue
        if str(unit) in COMMENT_UNITS:
            hdu.header[f"TCOMM{i}"] = COMMENT_UNITS[str(unit)]
        else:
            hdu.header[f"TUNIT{i}"] = str(unit)
    return hdu


def _comment_units(table: Table, header) -> Table:
    for i, name in enumerate(table.colnames, start=1):
        comment = str(header.get(f"TCOMM{i}", ""))
        if comment.startswith("unit: S10"):
            table[name].unit = S10
    return table


def read_table(source, hdu: str) -> Table:
    """Table ``hdu`` of a product file (or an open table HDU), with its units (S10 too),
    unmasked."""
    if isinstance(source, (fits.BinTableHDU, fits.TableHDU)):
        table = Table.read(source, unit_parse_strict="silent", mask_invalid=False)
        return _comment_units(table, source.header)
    with fits.open(source, memmap=False) as hdul:
        return read_table(hdul[hdu], hdu)


def meta_checksum(hdu) -> str:
    """Short hash of a META table HDU's data (what the conditions are made from)."""
    return hashlib.sha256(np.ndarray.tobytes(hdu.data)).hexdigest()[:16]


def read_meta(path) -> tuple[Table, str]:
    """The META table of an extract output and its :func:`meta_checksum`."""
    from .fitsutil import open_fits

    with open_fits(path) as hdul:
        hdu = hdul[SKY.table]
        return read_table(hdu, SKY.table), meta_checksum(hdu)


def read_conditions(path) -> Table:
    """An enrich output's CONDITIONS table."""
    return read_table(path, CONDITIONS.table)


def stack_complete(paths, hdu: str, index: str) -> tuple[Table | None, list[Path]]:
    """The ``hdu`` tables of the complete files among ``paths``, stacked, with column
    ``index`` giving each row's file in the returned list; None when there are none."""
    tables, files = [], []
    for path in sorted(paths):
        if not is_complete(path):
            continue
        table = read_table(path, hdu)
        table[index] = np.full(len(table), len(files), dtype=np.int32)
        files.append(path)
        tables.append(table)
    if not tables:
        return None, files
    return vstack(tables, join_type="outer", metadata_conflicts="silent"), files


def _join_rows(meta: Table, extra: Table, keys, source: Path) -> Table:
    """Add the columns of ``extra`` to ``meta`` if both list the same rows in the same order."""
    if len(extra) != len(meta) or any(np.any(np.asarray(extra[k]) != np.asarray(meta[k]))
                                      for k in keys):
        log.info("%s: rows do not match the extract META; not joined", source)
        return meta
    for name in extra.colnames:
        if name not in keys:
            meta[name] = extra[name]
    return meta


def _with_conditions(meta: Table, path: Path, out: Path, checksum: str) -> Table:
    """``meta`` with the conditions of its plate joined, when complete and made from
    this very META (the enrich marker records the META checksum)."""
    plate, mjd = SKY.parse(path)
    cond_path = CONDITIONS.path(out, plate, mjd)
    if not is_complete(cond_path):
        return meta
    if marker_info(cond_path).get("inputs", {}).get("extract_meta") != checksum:
        log.info("%s: made from another extract output; not joined", cond_path)
        return meta
    return _join_rows(meta, read_conditions(cond_path), CONDITIONS.keys, cond_path)


def upstream_signature(path) -> dict:
    """What identifies an upstream output for the outputs made from it: name, size and
    the key its marker records (a changed upstream key redoes everything made from it)."""
    info = marker_info(path)
    return {"file": Path(path).name, "size": info.get("size"), "key": info.get("key")}


def _with_lines(meta: Table, path: Path, out: Path) -> Table:
    """``meta`` with the lines-stage columns of its plate, when complete and current."""
    plate, mjd = SKY.parse(path)
    lines_path = LINES.path(out, plate, mjd)
    if not is_complete(lines_path):
        return meta
    if marker_info(lines_path).get("inputs") != upstream_signature(path):
        log.info("%s: made from another extract output; not joined", lines_path)
        return meta
    return _join_rows(meta, read_table(lines_path, LINES.table), LINES.keys, lines_path)


def sky_catalogue(out) -> tuple[Table | None, list[Path]]:
    """One row per sky spectrum of every complete extract output under ``out``: the META
    columns, the conditions and line measurements where complete and current, and
    ``FILE`` (index into the returned list of files). (None, []) when there is none."""
    out = Path(out)
    files, metas = [], []
    for path in SKY.files(out):
        meta, checksum = read_meta(path)
        meta = _with_conditions(meta, path, out, checksum)
        meta = _with_lines(meta, path, out)
        meta["FILE"] = np.full(len(meta), len(files), dtype=np.int32)
        files.append(path)
        metas.append(meta)
    if not metas:
        return None, files
    return vstack(metas, join_type="outer", metadata_conflicts="silent"), files


__all__ = ["Product", "PRODUCTS", "SKY", "CONDITIONS", "LINES", "MEAN", "DECOMP",
           "DECOMP_FIBRES", "CATALOGUES", "catalogue_path", "marker_path", "marker_info",
           "is_complete", "table_hdu", "read_table", "read_meta", "read_conditions",
           "meta_checksum", "stack_complete", "sky_catalogue", "upstream_signature",
           "S10", "SFU", "COMMENT_UNITS", "CONDITION_COLUMNS", "CONDITION_UNITS",
           "line_units", "FLUX_UNIT", "IVAR_UNIT", "LINE_FLUX_UNIT", "WAVE_UNIT",
           "META_COLUMNS", "META_UNITS", "SKY_ARRAY_UNITS", "HEADER_TO_META", "FIBRE_KEYS",
           "MEAN_KEYS"]
