"""Read the outputs of the pipeline: :func:`open_dataset`."""
from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack

from .errors import SkyModellingError
from .stages import _common

log = logging.getLogger(__name__)


@dataclass
class Spectrum:
    """One sky spectrum: arrays on the fibre's native pixels (see docs/extract.md)."""

    WAVE: np.ndarray  # vacuum heliocentric A
    FLUX: np.ndarray  # 1e-17 erg/s/cm2/A per fibre
    IVAR: np.ndarray  # inverse variance of FLUX; 0 where masked
    MASK: np.ndarray  # SPPIXMASK bits | BADCALIB (1<<29) | OUTSIDE (1<<30)
    DISP: np.ndarray  # LSF Gaussian sigma, A

    def __getitem__(self, key):
        return getattr(self, key)

    @property
    def good(self) -> np.ndarray:
        """Pixels to use (IVAR > 0)."""
        return self.IVAR > 0


def _with_conditions(meta: Table, path: Path, out: Path) -> Table:
    """``meta`` with the enrich columns of its plate file joined, when they exist.

    The enrich output must be complete, made from this very META (its marker
    records the META checksum) and list the same rows in the same order.
    """
    from .stages import enrich

    m = re.fullmatch(r"sky-(\d+)-(\d+)\.fits", path.name)
    if not m:
        return meta
    cond_path = enrich.output_path(out, int(m.group(1)), int(m.group(2)))
    info = _common.marker_info(cond_path)
    if not cond_path.is_file() or info.get("size") != cond_path.stat().st_size:
        return meta
    with fits.open(path, memmap=True) as hdul:
        checksum = enrich.meta_checksum(hdul["META"])
    if info.get("inputs", {}).get("extract_meta") != checksum:
        log.info("%s: made from another extract output; not joined", cond_path)
        return meta
    return _join_rows(meta, enrich.read_conditions(cond_path), enrich.KEY_COLUMNS, cond_path)


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


def _with_lines(meta: Table, path: Path, out: Path) -> Table:
    """``meta`` with the lines-stage columns of its plate file, when complete and current."""
    from .stages import lines

    m = re.fullmatch(r"sky-(\d+)-(\d+)\.fits", path.name)
    if not m:
        return meta
    lines_path = lines.output_path(out, int(m.group(1)), int(m.group(2)))
    info = _common.marker_info(lines_path)
    if not lines_path.is_file() or info.get("size") != lines_path.stat().st_size:
        return meta
    if info.get("inputs") != _common.output_signature(path):
        log.info("%s: made from another extract output; not joined", lines_path)
        return meta
    table = Table.read(lines_path, hdu="LINES", unit_parse_strict="silent", mask_invalid=False)
    return _join_rows(meta, table, lines.KEY_COLUMNS, lines_path)


def _stack_complete(paths, hdu: str, index: str) -> tuple[Table | None, list[Path]]:
    """The ``hdu`` tables of the files known complete (marker size matches), stacked,
    with column ``index`` giving each row's file in the returned list; None when none."""
    tables, files = [], []
    for path in sorted(paths):
        if _common.marker_info(path).get("size") != path.stat().st_size:
            continue  # not known complete
        table = Table.read(path, hdu=hdu, unit_parse_strict="silent", mask_invalid=False)
        table[index] = np.full(len(table), len(files), dtype=np.int32)
        files.append(path)
        tables.append(table)
    if not tables:
        return None, files
    return vstack(tables, join_type="outer", metadata_conflicts="silent"), files


@dataclass
class MeanSpectrum:
    """One mean sky spectrum on its arm's common log10 grid (see docs/mean.md)."""

    WAVE: np.ndarray   # vacuum heliocentric A, 10**(COEFF0 + j * 1e-4)
    FLUX: np.ndarray   # 1e-17 erg/s/cm2/A per fibre
    IVAR: np.ndarray   # inverse variance of FLUX; 0 where no fibre
    NUSED: np.ndarray  # fibres used per pixel
    MASK: np.ndarray   # 1: no fibre, 2: fewer than min_fibers

    def __getitem__(self, key):
        return getattr(self, key)

    @property
    def good(self) -> np.ndarray:
        """Pixels to use (IVAR > 0)."""
        return self.IVAR > 0


@dataclass
class MeanComponents:
    """The decomposition of one mean spectrum (docs/decompose.md), on its mean grid."""

    WAVE: np.ndarray         # vacuum heliocentric A, as MeanSpectrum.WAVE
    CONT: np.ndarray         # continuum, lines removed, 1e-17 erg/s/cm2/A per fibre
    LINES: np.ndarray        # the line model, same unit
    CONT_SMOOTH: np.ndarray  # the continuum smoothed, same unit

    def __getitem__(self, key):
        return getattr(self, key)


DECOMP_KEYS = ("PLATE", "MJD", "IMG", "CAMERA", "ROW")


class MeanSpectra:
    """The mean spectra of ``skymodelling mean``: :attr:`meta` and :meth:`spectrum`,
    and their decompositions: :attr:`decomposition` and :meth:`components`.

    Attributes
    ----------
    meta : astropy.table.Table
        The MEANMETA rows of every complete mean file, with ``FILE``.
    files : list of pathlib.Path
    decomposition : astropy.table.Table
        The DECOMPMETA row of each row of :attr:`meta`, in the same order (row ``i``
        of both is the same spectrum): RCHI2, FLAG, LSF_*, NLINES, NFOUND and the
        named lines' ``<NAME>_FLUX``/``_FLUX_ERR`` of ``skymodelling decompose``, with
        ``DFILE`` (index into :attr:`decomposition_files`); masked where a spectrum has
        no complete decomposition. Read when first used.
    """

    def __init__(self, out):
        meta, self.files = _stack_complete((Path(out) / "mean").glob("*/mean-*.fits"),
                                           "MEANMETA", "FILE")
        if meta is None:
            raise SkyModellingError(f"{out}: no mean spectra (run skymodelling mean)")
        self.meta = meta
        self.out = Path(out)

    def __len__(self) -> int:
        return len(self.meta)

    @functools.cached_property
    def decomposition(self) -> Table:
        from astropy.table import join

        dec, self._decomposition_files = _stack_complete(
            (self.out / "decompose").glob("*/decomp-[0-9]*.fits"), "DECOMPMETA", "DFILE")
        keys = self.meta[list(DECOMP_KEYS)].copy()
        keys["CAMERA"] = np.char.strip(np.asarray(keys["CAMERA"]).astype(str))
        keys["_MEANROW"] = np.arange(len(keys))
        if dec is None:
            return keys[:0]
        dec["CAMERA"] = np.char.strip(np.asarray(dec["CAMERA"]).astype(str))
        joined = join(keys, dec, keys=list(DECOMP_KEYS), join_type="left",
                      metadata_conflicts="silent")
        joined.sort("_MEANROW")
        del joined["_MEANROW"]
        return joined

    @property
    def decomposition_files(self) -> list:
        """The complete ``decomp-*.fits`` files that :attr:`decomposition` indexes."""
        self.decomposition  # noqa: B018 - reads them
        return self._decomposition_files

    def components(self, i: int) -> MeanComponents:
        """CONT, LINES and CONT_SMOOTH of row ``i`` of :attr:`meta` (after decompose)."""
        row = self.decomposition[int(i)]
        if np.ma.is_masked(row["DFILE"]):
            raise SkyModellingError(f"mean spectrum {i} ({row['PLATE']}-{row['MJD']} "
                                    f"exposure {row['IMG']} {row['CAMERA']}) has no complete "
                                    "decomposition (run skymodelling decompose)")
        cam = str(row["CAMERA"]).upper()
        with fits.open(self.decomposition_files[int(row["DFILE"])], memmap=True) as hdul:
            arrays = {name: np.array(hdul[f"{cam}_{name}"].section[int(row["ROW"])])
                      for name in ("CONT", "LINES", "CONT_SMOOTH")}
            arrays["WAVE"] = np.array(hdul[f"{cam[0]}_WAVE"].data)
        return MeanComponents(**arrays)

    def spectrum(self, i: int) -> MeanSpectrum:
        """The arrays of row ``i`` of :attr:`meta`."""
        row = self.meta[int(i)]
        cam = str(row["CAMERA"]).upper()
        with fits.open(self.files[int(row["FILE"])], memmap=True) as hdul:
            arrays = {name: np.array(hdul[f"{cam}_{name}"].section[int(row["ROW"])])
                      for name in ("FLUX", "IVAR", "NUSED", "MASK")}
            arrays["WAVE"] = np.array(hdul[f"{cam[0]}_WAVE"].data)
        return MeanSpectrum(**arrays)


class Dataset:
    """The extracted sky spectra of an output folder.

    Attributes
    ----------
    meta : astropy.table.Table
        One row per sky spectrum (every complete plate file), with the raw
        metadata columns and ``FILE`` (index into :attr:`files`); after
        ``skymodelling enrich``, also the observing conditions of
        docs/enrich.md (masked for plate files not enriched).
    files : list of pathlib.Path
    means : MeanSpectra
        The mean spectra of ``skymodelling mean`` (read when first used).
    decompositions : astropy.table.Table
        Per-fibre line fluxes of ``skymodelling decompose OUT --spectra fibres`` (read when
        first used; the files in ``decomposition_files``).
    """

    def __init__(self, out):
        self.out = Path(out)
        self.files = []
        metas = []
        for path in sorted((self.out / "extract").glob("*/sky-*.fits")):
            if not _common.marker_path(path).is_file():
                continue  # not known complete
            meta = Table.read(path, hdu="META", unit_parse_strict="silent", mask_invalid=False)
            meta = _with_conditions(meta, path, self.out)
            meta = _with_lines(meta, path, self.out)
            meta["FILE"] = np.full(len(meta), len(self.files), dtype=np.int32)
            self.files.append(path)
            metas.append(meta)
        if not metas:
            raise SkyModellingError(f"{self.out}: no extracted plate (run skymodelling extract)")
        self.meta = vstack(metas, join_type="outer", metadata_conflicts="silent")

    def __len__(self) -> int:
        return len(self.meta)

    @functools.cached_property
    def means(self) -> MeanSpectra:
        """The mean spectra per exposure and camera (after ``skymodelling mean``)."""
        return MeanSpectra(self.out)

    @functools.cached_property
    def decompositions(self) -> Table:
        """Per-fibre decompositions of ``skymodelling decompose OUT --spectra fibres``.

        The DECOMPFIBRES rows (docs/decompose.md) of every complete
        ``decomp-fibres-*.fits``, with ``DFILE`` (index into :attr:`decomposition_files`);
        join to :attr:`meta` on PLATE, MJD, IMG, CAMERA, FIB. Empty when none.
        """
        table, self._decomposition_files = _stack_complete(
            (self.out / "decompose").glob("*/decomp-fibres-*.fits"), "DECOMPFIBRES", "DFILE")
        return Table() if table is None else table

    @property
    def decomposition_files(self) -> list:
        """The complete ``decomp-fibres-*.fits`` files that :attr:`decompositions` indexes."""
        self.decompositions  # noqa: B018 - reads them
        return self._decomposition_files

    def __repr__(self) -> str:
        return (f"<Dataset {self.out}: {len(self)} sky spectra from {len(self.files)} "
                "plate files>")

    def spectrum(self, i: int) -> Spectrum:
        """The arrays of row ``i`` of :attr:`meta`."""
        row = self.meta[int(i)]
        cam = str(row["CAMERA"]).upper()
        with fits.open(self.files[int(row["FILE"])], memmap=True) as hdul:
            arrays = {name: np.array(hdul[f"{cam}_{name}"].section[int(row["ROW"])])
                      for name in ("WAVE", "FLUX", "IVAR", "MASK", "DISP")}
        return Spectrum(**arrays)


def open_dataset(out) -> Dataset:
    """Open the outputs of ``skymodelling extract`` (and later stages) in ``out``.

    Examples
    --------
    >>> ds = open_dataset("OUT")                        # doctest: +SKIP
    >>> ds.meta["PLATE", "IMG", "CAMERA", "FIB"][:3]    # doctest: +SKIP
    >>> s = ds.spectrum(0); s.WAVE[s.good], s.FLUX[s.good]   # doctest: +SKIP
    """
    return Dataset(out)
