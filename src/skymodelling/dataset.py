"""Read the outputs of the pipeline: :func:`open_dataset`."""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from .errors import SkyModellingError
from .io import products
from .io.products import stack_complete as _stack_complete

log = logging.getLogger(__name__)


def _spectrum_class():
    """specutils' 1-D spectrum class: ``Spectrum`` (specutils 2.x) or ``Spectrum1D`` (1.x)."""
    try:
        import specutils
    except ImportError:
        raise SkyModellingError("to_specutils needs specutils: pip install "
                                "'skymodelling[specutils]'") from None
    cls = getattr(specutils, "Spectrum", None) or getattr(specutils, "Spectrum1D", None)
    if cls is None:
        raise SkyModellingError(f"specutils {specutils.__version__} has neither Spectrum "
                                "nor Spectrum1D")
    return cls


def to_specutils(spec, **meta):
    """``spec`` (a :class:`Spectrum` or :class:`MeanSpectrum`) as a specutils spectrum.

    Flux in 1e-17 erg/s/cm2/A per fibre, uncertainty the inverse variance
    (``astropy.nddata.InverseVariance``, 1e34 cm4 A2 s2 / erg2), the spectral axis the
    vacuum heliocentric wavelength in Angstrom, and ``mask`` True where the package does not
    use a pixel (IVAR 0, non-finite flux). The other arrays (MASK bits, DISP, NUSED, CORR) are
    in ``.meta``, with ``meta`` (e.g. the spectrum's keys).
    """
    import astropy.units as u
    from astropy.nddata import InverseVariance

    cls = _spectrum_class()
    flux_unit = u.Unit(products.FLUX_UNIT)
    flux = np.asarray(spec.FLUX, dtype=float)
    ivar = np.asarray(spec.IVAR, dtype=float)
    bad = ~((ivar > 0) & np.isfinite(flux) & np.isfinite(ivar))
    extra = {name: np.asarray(getattr(spec, name)) for name in ("MASK", "DISP", "NUSED", "CORR")
             if getattr(spec, name, None) is not None}
    return cls(flux=np.where(bad, 0.0, flux) * flux_unit,
               spectral_axis=np.asarray(spec.WAVE, dtype=float) * u.AA,
               uncertainty=InverseVariance(np.where(bad, 0.0, ivar), unit=flux_unit ** -2),
               mask=bad, meta={**extra, **meta})


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

    def to_specutils(self):
        """This spectrum as ``specutils.Spectrum`` (``Spectrum1D`` before specutils 2):
        see :func:`to_specutils`; needs the ``specutils`` extra."""
        return to_specutils(self)


@dataclass
class MeanSpectrum:
    """One mean sky spectrum on its arm's common log10 grid (see docs/mean.md)."""

    WAVE: np.ndarray   # vacuum heliocentric A, 10**(COEFF0 + j * 1e-4)
    FLUX: np.ndarray   # 1e-17 erg/s/cm2/A per fibre
    IVAR: np.ndarray   # inverse variance of FLUX; 0 where no fibre
    NUSED: np.ndarray  # fibres used per pixel
    MASK: np.ndarray   # 1: no fibre, 2: fewer than min_fibers
    DISP: np.ndarray | None = None  # mean LSF Gaussian sigma of the fibres used, A
    CORR: np.ndarray | None = None  # (2, npix) noise correlation of pixel j with j+1, j+2

    def __getitem__(self, key):
        return getattr(self, key)

    @property
    def good(self) -> np.ndarray:
        """Pixels to use (IVAR > 0)."""
        return self.IVAR > 0

    def to_specutils(self):
        """This spectrum as ``specutils.Spectrum`` (``Spectrum1D`` before specutils 2):
        see :func:`to_specutils`; needs the ``specutils`` extra."""
        return to_specutils(self)


@dataclass
class MeanComponents:
    """The decomposition of one mean spectrum (docs/decompose.md), on its mean grid."""

    WAVE: np.ndarray         # vacuum heliocentric A, as MeanSpectrum.WAVE
    CONT: np.ndarray         # continuum, lines removed, 1e-17 erg/s/cm2/A per fibre
    LINES: np.ndarray        # the line model, same unit
    CONT_SMOOTH: np.ndarray  # the continuum smoothed, same unit

    def __getitem__(self, key):
        return getattr(self, key)


DECOMP_KEYS = products.DECOMP.keys


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
        meta, self.files = _stack_complete(products.MEAN.files(out), products.MEAN.table,
                                           "FILE")
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
            products.DECOMP.files(self.out), products.DECOMP.table, "DFILE")
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

    def _decomposed(self, i: int):
        """Row ``i`` of :attr:`decomposition`; an error naming the spectrum without one."""
        row = self.decomposition[int(i)]
        if np.ma.is_masked(row["DFILE"]):
            raise SkyModellingError(f"mean spectrum {i} ({row['PLATE']}-{row['MJD']} "
                                    f"exposure {row['IMG']} {row['CAMERA']}) has no complete "
                                    "decomposition (run skymodelling decompose)")
        return row

    def components(self, i: int) -> MeanComponents:
        """CONT, LINES and CONT_SMOOTH of row ``i`` of :attr:`meta` (after decompose)."""
        row = self._decomposed(i)
        cam = str(row["CAMERA"]).upper()
        with fits.open(self.decomposition_files[int(row["DFILE"])], memmap=True) as hdul:
            arrays = {name: np.array(hdul[f"{cam}_{name}"].section[int(row["ROW"])])
                      for name in ("CONT", "LINES", "CONT_SMOOTH")}
            arrays["WAVE"] = np.array(hdul[f"{cam[0]}_WAVE"].data)
        return MeanComponents(**arrays)

    def fitted_lines(self, i: int) -> Table:
        """The fitted lines of row ``i`` of :attr:`meta` (after decompose): its rows of the
        FITLINES table, ``WAVE`` (A), ``FLUX``, ``FLUX_ERR``, ``FOUND``, ``NAME``, ``GROUP``,
        ``GROUP_FLUX``, ``GROUP_FLUX_ERR`` (1e-17 erg/s/cm2), in order of wavelength."""
        row = self._decomposed(i)
        with fits.open(self.decomposition_files[int(row["DFILE"])], memmap=True) as hdul:
            lines = Table.read(hdul["FITLINES"], unit_parse_strict="silent")
        lines.convert_bytestring_to_unicode()
        mine = ((np.asarray(lines["IMG"]) == int(row["IMG"]))
                & (np.char.strip(np.asarray(lines["CAMERA"]).astype(str))
                   == str(row["CAMERA"]).strip())
                & (np.asarray(lines["ROW"]) == int(row["ROW"])))
        out = lines[mine]
        out.sort("WAVE")
        return out

    def spectrum(self, i: int) -> MeanSpectrum:
        """The arrays of row ``i`` of :attr:`meta`."""
        row = self.meta[int(i)]
        cam = str(row["CAMERA"]).upper()
        with fits.open(self.files[int(row["FILE"])], memmap=True) as hdul:
            arrays = {name: np.array(hdul[f"{cam}_{name}"].section[int(row["ROW"])])
                      for name in ("FLUX", "IVAR", "NUSED", "MASK", "DISP", "CORR")
                      if f"{cam}_{name}" in hdul}   # no DISP / CORR in older mean files
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
        self.meta, self.files = products.sky_catalogue(self.out)
        if self.meta is None:
            raise SkyModellingError(f"{self.out}: no extracted plate (run skymodelling extract)")

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
            products.DECOMP_FIBRES.files(self.out), products.DECOMP_FIBRES.table, "DFILE")
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
