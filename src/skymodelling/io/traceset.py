"""idlutils trace sets: the wavelength and dispersion solutions of spFrame files.

A trace set is one table row holding, for every fibre, the coefficients of a
Legendre series in a normalised pixel coordinate (datamodel section 2.1;
idlutils ``traceset2xy.pro``, pydl ``TraceSet.xy``). For pixel ``x`` (0-based)::

    f  = clip((x - XJUMPLO) / (XJUMPHI - XJUMPLO), 0, 1)   # red CCDs' two-phase readout
    x' = x + f * XJUMPVAL
    t  = 2 (x' - (XMIN + XMAX) / 2) / (XMAX - XMIN)
    y  = sum_k COEFF[fibre, k] P_k(t)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from numpy.polynomial import legendre

from ..errors import BossFileError
from .fitsutil import hdu_path

__all__ = ["TraceSet", "read_traceset", "traceset_hdu"]

log = logging.getLogger(__name__)

_SUPPORTED = ("legendre",)


@dataclass
class TraceSet:
    """Per-fibre Legendre solutions y(x) over a pixel range.

    Parameters
    ----------
    func : str
        Basis function; only ``"legendre"`` is supported.
    xmin, xmax : float
        Pixel range mapped to [-1, 1].
    coeff : ndarray, shape (nfiber, ncoeff), float64
    xjumplo, xjumphi, xjumpval : float, optional
        Jump correction for the two-phase readout of the red CCDs.

    Examples
    --------
    >>> ts = TraceSet("legendre", 0.0, 10.0, np.array([[1.0, 2.0]]))
    >>> ts.evaluate(3)
    array([[-1. , -0.6, -0.2]])
    """

    func: str
    xmin: float
    xmax: float
    coeff: np.ndarray
    xjumplo: float | None = None
    xjumphi: float | None = None
    xjumpval: float | None = None

    def __post_init__(self):
        self.func = str(self.func).strip().lower()
        self.xmin = float(self.xmin)
        self.xmax = float(self.xmax)
        coeff = np.asarray(self.coeff, dtype=np.float64)
        if coeff.ndim == 3 and coeff.shape[0] == 1:  # straight from the file's (1, nfiber, ncoeff)
            coeff = coeff[0]
        if coeff.ndim != 2:
            raise ValueError(f"coeff must be (nfiber, ncoeff), got shape {coeff.shape}")
        self.coeff = np.ascontiguousarray(coeff)
        for name in ("xjumplo", "xjumphi", "xjumpval"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, float(value))

    @property
    def nfiber(self) -> int:
        """Number of fibres (traces)."""
        return self.coeff.shape[0]

    @property
    def ncoeff(self) -> int:
        """Number of coefficients per fibre."""
        return self.coeff.shape[1]

    @property
    def has_jump(self) -> bool:
        """True when a non-trivial jump correction applies."""
        return (self.xjumplo is not None and self.xjumphi is not None
                and self.xjumpval is not None
                and self.xjumphi > self.xjumplo and self.xjumpval != 0)

    def _normalise(self, x: np.ndarray) -> np.ndarray:
        if self.func not in _SUPPORTED:
            raise ValueError(f"trace set function {self.func!r} is not supported "
                             f"(only {_SUPPORTED})")
        if self.xmax == self.xmin:
            raise ValueError("trace set has XMAX == XMIN")
        if self.has_jump:
            frac = np.clip((x - self.xjumplo) / (self.xjumphi - self.xjumplo), 0.0, 1.0)
            x = x + frac * self.xjumpval
        return 2.0 * (x - 0.5 * (self.xmin + self.xmax)) / (self.xmax - self.xmin)

    def evaluate_at(self, x, rows=None) -> np.ndarray:
        """Evaluate at arbitrary (float) pixel positions.

        Parameters
        ----------
        x : array_like, shape (npix,) or (nrow, npix)
            0-based pixel positions, the same for every fibre or one row per fibre.
        rows : int array or slice, optional
            Fibres (0-based rows) to evaluate; default all.

        Returns
        -------
        ndarray, shape (nrow, npix), float64
        """
        coeff = self.coeff if rows is None else self.coeff[rows]
        coeff = np.atleast_2d(coeff)
        x = np.asarray(x, dtype=np.float64)
        vander = legendre.legvander(self._normalise(x), self.ncoeff - 1)
        if x.ndim == 1:
            return coeff @ vander.T
        if x.ndim == 2:
            if x.shape[0] != coeff.shape[0]:
                raise ValueError(f"x has {x.shape[0]} rows but {coeff.shape[0]} fibres "
                                 "were selected")
            return np.einsum("rpk,rk->rp", vander, coeff)
        raise ValueError(f"x must be 1-D or 2-D, got shape {x.shape}")

    def evaluate(self, npix: int, rows=None) -> np.ndarray:
        """Evaluate at pixels 0..npix-1; shape (nrow, npix), float64."""
        return self.evaluate_at(np.arange(int(npix), dtype=np.float64), rows)

    def native_dloglam(self, npix: int, rows=None) -> np.ndarray:
        """Native bin width ``|y(x + 0.5) - y(x - 0.5)|`` (idlspec2d ``correct_dlam``).

        For the wavelength trace set this is the pixel width in log10(Angstrom).
        """
        x = np.arange(int(npix), dtype=np.float64)
        return np.abs(self.evaluate_at(x + 0.5, rows) - self.evaluate_at(x - 0.5, rows))


def read_traceset(hdu, path=None) -> TraceSet:
    """Read a trace set from its (one-row) binary-table HDU.

    Parameters
    ----------
    hdu : astropy.io.fits.BinTableHDU
    path : path-like, optional
        File name for error messages (default: taken from the HDU when possible).

    Raises
    ------
    BossFileError
        Not a table, columns missing, or an unsupported function.
    """
    where = path if path is not None else hdu_path(hdu)
    if not isinstance(hdu, fits.BinTableHDU):
        raise BossFileError(where, f"trace set HDU is a {type(hdu).__name__}, not a binary table")
    data = hdu.data
    names = data.dtype.names if data is not None else ()
    missing = [c for c in ("FUNC", "XMIN", "XMAX", "COEFF") if c not in names]
    if missing:
        raise BossFileError(where, f"trace set HDU lacks column(s) {', '.join(missing)}")
    if len(data) < 1:
        raise BossFileError(where, "trace set HDU has no rows")
    func = data["FUNC"][0]
    func = (func.decode("ascii") if isinstance(func, bytes) else str(func)).strip().lower()
    if func not in _SUPPORTED:
        raise BossFileError(where, f"trace set function {func!r} is not supported "
                                   f"(only {_SUPPORTED})")
    coeff = np.asarray(data["COEFF"][0], dtype=np.float64)
    if coeff.ndim == 1:  # one fibre
        coeff = coeff[np.newaxis, :]
    jumps = {}
    for col in ("XJUMPLO", "XJUMPHI", "XJUMPVAL"):
        jumps[col.lower()] = float(data[col][0]) if col in names else None
    return TraceSet(func, float(data["XMIN"][0]), float(data["XMAX"][0]), coeff, **jumps)


def traceset_hdu(ts: TraceSet) -> fits.BinTableHDU:
    """A trace set as a one-row binary table, laid out like IDL ``mwrfits`` output.

    Columns FUNC (8A), XMIN, XMAX (D), COEFF (nD, TDIM ``(ncoeff, nfiber)``)
    and, when set, XJUMPLO, XJUMPHI, XJUMPVAL (E).
    """
    nfiber, ncoeff = ts.coeff.shape
    cols = [
        fits.Column("FUNC", "8A", array=np.array([ts.func.encode("ascii")])),
        fits.Column("XMIN", "D", array=np.array([ts.xmin])),
        fits.Column("XMAX", "D", array=np.array([ts.xmax])),
        fits.Column("COEFF", f"{nfiber * ncoeff}D", dim=f"({ncoeff}, {nfiber})",
                    array=ts.coeff.reshape(1, nfiber, ncoeff)),
    ]
    if ts.xjumplo is not None or ts.xjumphi is not None or ts.xjumpval is not None:
        for name in ("xjumplo", "xjumphi", "xjumpval"):
            value = getattr(ts, name)
            cols.append(fits.Column(name.upper(), "E", array=np.array(
                [np.nan if value is None else value], dtype=np.float32)))
    return fits.BinTableHDU.from_columns(cols)
