"""spFluxcalib files: the per-exposure flux-calibration image (datamodel section 4).

HDU0 is a float32 (500, npix_native) image C in (flat-fielded electrons per
1e-4 dex bin) per (1e-17 erg/s/cm^2/A) for this exposure's integration time;
C = 0 outside [WAVEMIN, WAVEMAX] (Angstrom, header). Only HDU0 is read or
written here (the b-spline set of HDU1 is not needed).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from ..errors import BossFileError
from .fitsutil import (
    clean_header,
    get_hdu,
    image_shape,
    normalize_rows,
    open_fits,
    read_image,
    write_hdus,
)

__all__ = ["read_spfluxcalib", "write_spfluxcalib"]


def read_spfluxcalib(path, rows=None) -> tuple[np.ndarray, fits.Header]:
    """Read the calibration image of an spFluxcalib file.

    Parameters
    ----------
    path : path-like
    rows : int array, bool mask or slice, optional
        0-based fibre rows; default all.

    Returns
    -------
    calib : ndarray, float32, (nrow, npix)
    header : astropy.io.fits.Header
        Primary header (WAVEMIN/WAVEMAX in Angstrom).

    Raises
    ------
    BossFileError
        Missing, corrupt or truncated file, or HDU0 not a 2-D image.
    """
    path = Path(path)
    with open_fits(path) as hdul:
        hdu = get_hdu(hdul, 0, path, "calibration image", "image")
        shape = image_shape(hdu)
        if len(shape) != 2:
            raise BossFileError(path, f"HDU 0 (calibration image) has shape {shape}, "
                                      "expected (nfiber, npix)")
        sel = normalize_rows(rows, shape[0], path)
        calib = read_image(hdu, sel, np.float32)
        header = hdu.header.copy()
    return calib, header


def write_spfluxcalib(path, calib, header) -> Path:
    """Write an spFluxcalib file (HDU0 float32 image only), atomically.

    Parameters
    ----------
    path : path-like
        ``.fits.gz`` names are compressed.
    calib : array_like (nfiber, npix)
    header : astropy.io.fits.Header or mapping
        Should carry WAVEMIN/WAVEMAX (Angstrom) and the frame keywords.
    """
    calib = np.asarray(calib, dtype=np.float32)
    if calib.ndim != 2:
        raise ValueError(f"calib must be 2-D (nfiber, npix), got shape {calib.shape}")
    return write_hdus(path, [fits.PrimaryHDU(calib, header=clean_header(header))])
