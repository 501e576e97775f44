"""Read the outputs of the pipeline: :func:`open_dataset`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack

from .errors import SkyModellingError
from .stages import _common


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


class Dataset:
    """The extracted sky spectra of an output folder.

    Attributes
    ----------
    meta : astropy.table.Table
        One row per sky spectrum (every complete plate file), with the raw
        metadata columns and ``FILE`` (index into :attr:`files`).
    files : list of pathlib.Path
    """

    def __init__(self, out):
        self.out = Path(out)
        self.files = []
        metas = []
        for path in sorted((self.out / "extract").glob("*/sky-*.fits")):
            if not _common.marker_path(path).is_file():
                continue  # not known complete
            meta = Table.read(path, hdu="META", unit_parse_strict="silent", mask_invalid=False)
            meta["FILE"] = np.full(len(meta), len(self.files), dtype=np.int32)
            self.files.append(path)
            metas.append(meta)
        if not metas:
            raise SkyModellingError(f"{self.out}: no extracted plate (run skymodelling extract)")
        self.meta = vstack(metas, join_type="outer", metadata_conflicts="silent")

    def __len__(self) -> int:
        return len(self.meta)

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
