"""A predicted sky spectrum on the camera grids from the predicted bands and lines.

For each arm (``b``, ``r``) with predicted continuum bands: the grid of the
mean stage (:func:`skymodelling.stages.mean.arm_grid`, log10 spacing 1e-4);
the continuum interpolated linearly in ln(flux) between the band centres (held
constant beyond the first and last band); plus each predicted line of that
arm as a Gaussian of the BOSS resolution (sigma 1.08 pixels of 1e-4 dex,
``SIGMA_PIX``) holding its predicted flux. ``FLUX_LO``/``FLUX_HI`` are the
same sums of the 68 % interval ends of every component (components taken as
fully correlated, so the band is wider than for independent errors). Only
the catalogue targets are in it: the OH forest and other unmodelled lines are
absent, so the red arm is the continuum plus [OI] and O2 only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from .. import __version__
from .._atomic import atomic_path
from ..errors import SkyModellingError

SIGMA_PIX = 1.08
DLOGLAM = 1e-4
FLUX_UNIT = "1e-17 erg s-1 cm-2 Angstrom-1"


def _arm_wave(arm: str) -> np.ndarray:
    from ..stages.mean import arm_grid

    return 10.0 ** arm_grid(arm)


def predicted_spectrum(model, conditions, *, kind: str | None = None) -> dict[str, Table]:
    """Predicted spectra (one row of conditions) on the b and r camera grids.

    Parameters
    ----------
    model : SkyModel
    conditions : astropy.table.Table
        One row of enrich columns.
    kind : {"physical", "boosted"}, optional

    Returns
    -------
    dict
        arm -> Table with WAVE (vacuum A), FLUX, FLUX_LO, FLUX_HI
        (1e-17 erg/s/cm2/A per fibre); arms without a predicted band are left out.

    Examples
    --------
    >>> from skymodelling.model.api import fit_model
    >>> from skymodelling.model.features import conditions_arrays
    >>> from skymodelling.model.synthetic import synthetic_conditions, synthetic_sky
    >>> cond = synthetic_conditions(200, seed=1)
    >>> c = conditions_arrays(cond)
    >>> cond["C460B_CONT"] = synthetic_sky(c, seed=2)
    >>> cond["C540B_CONT"] = 1.2 * synthetic_sky(c, seed=3)
    >>> cond["OI5577_FLUX"] = 20 * synthetic_sky(c, seed=4)
    >>> spec = predicted_spectrum(fit_model(cond, kind="physical"), cond[:1])
    >>> list(spec), bool((spec["b"]["FLUX"] > 0).all())
    (['b'], True)
    """
    if len(conditions) != 1:
        raise SkyModellingError(f"a predicted spectrum needs one row of conditions, not "
                                f"{len(conditions)}")
    pred = model.predict(conditions, kind=kind)
    out = {}
    for arm in ("b", "r"):
        bands = [t for t, i in model.targets.items()
                 if i.get("kind") == "continuum" and i.get("camera") == arm and i.get("wave")]
        if not bands:
            continue
        lines = [t for t, i in model.targets.items()
                 if i.get("kind") == "line" and i.get("camera") == arm and i.get("wave")]
        wave = _arm_wave(arm)
        bw = np.array([model.targets[t]["wave"] for t in bands])
        order = np.argsort(bw)
        table = Table({"WAVE": wave})
        table["WAVE"].unit = "Angstrom"
        for suffix in ("", "_LO", "_HI"):
            vals = np.array([float(pred[t + suffix][0]) for t in bands])[order]
            flux = np.exp(np.interp(wave, bw[order], np.log(np.maximum(vals, 1e-30))))
            for t in lines:
                w0 = model.targets[t]["wave"]
                sigma = SIGMA_PIX * w0 * np.log(10) * DLOGLAM
                flux = flux + float(pred[t + suffix][0]) * np.exp(
                    -0.5 * ((wave - w0) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
            table["FLUX" + suffix] = flux
            table["FLUX" + suffix].unit = FLUX_UNIT
        table.meta["BANDS"] = ",".join(np.array(bands)[order])
        table.meta["LINES"] = ",".join(lines)
        out[arm] = table
    if not out:
        raise SkyModellingError("the model has no continuum band with a known wavelength and "
                                "camera; fit it on a catalogue with <NAME>_CONT columns")
    return out


def _unit_safe_hdu(table: Table, extname: str) -> fits.BinTableHDU:
    """A table HDU whose units (S10 too, which astropy cannot write) are TUNITn cards."""
    table = Table(table, copy=True)
    units = {}
    for name in table.colnames:
        if table[name].unit is not None:
            units[name] = str(table[name].unit)
            table[name].unit = None
    hdu = fits.table_to_hdu(table)
    hdu.header["EXTNAME"] = extname
    for i, name in enumerate(table.colnames, start=1):
        if name in units:
            hdu.header[f"TUNIT{i}"] = units[name]
    return hdu


def write_spectrum(path, spectra: dict[str, Table], conditions: Table, model_path=None) -> None:
    """Write the spectra to a FITS file: HDU 1 CONDITIONS, then one SPECTRUM_<ARM> per arm."""
    primary = fits.PrimaryHDU()
    primary.header["SMVERS"] = (__version__, "skymodelling version")
    primary.header["SMSTAGE"] = ("model predict", "what wrote this file")
    if model_path is not None:
        primary.header["SMMODEL"] = Path(model_path).name[-60:]
    hdus = [primary]
    hdus.append(_unit_safe_hdu(conditions, "CONDITIONS"))
    for arm, table in spectra.items():
        hdu = fits.table_to_hdu(table)
        hdu.header["EXTNAME"] = f"SPECTRUM_{arm.upper()}"
        hdus.append(hdu)
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)
