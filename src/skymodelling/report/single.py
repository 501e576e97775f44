"""``skymodelling plot``: one spectrum (a mean, or one sky fibre) and its decomposition."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..errors import SkyModellingError
from . import data, plots
from ._mpl import check_format, new_figure, save_figure

log = logging.getLogger(__name__)

CAMERAS = ("b1", "b2", "r1", "r2")


def _select(table, plate: int, mjd: int, expid: int, camera: str, fiber=None) -> np.ndarray:
    ok = ((data.column(table, "PLATE") == plate) & (data.column(table, "MJD") == mjd)
          & (data.column(table, "IMG") == expid)
          & (data.text_column(table, "CAMERA") == camera))
    if fiber is not None:
        ok &= data.column(table, "FIB") == fiber
    return np.flatnonzero(ok)


def _not_found(table, what: str, plate: int, mjd: int, expid: int, camera: str, where) -> str:
    """One line: what was asked, what there is instead."""
    p, m = data.column(table, "PLATE"), data.column(table, "MJD")
    same = (p == plate) & (m == mjd)
    if same.any():
        expids = sorted({int(e) for e in data.column(table, "IMG")[same]})
        cams = sorted(set(data.text_column(table, "CAMERA")[same]))
        there = (f"plate {plate} MJD {mjd} has exposures {', '.join(map(str, expids))} and "
                 f"cameras {', '.join(cams)}")
    else:
        pairs = sorted({(int(a), int(b)) for a, b in zip(p, m, strict=True)})
        shown = ", ".join(f"{a} {b}" for a, b in pairs[:10])
        there = f"plate-MJDs there: {shown}{' ...' if len(pairs) > 10 else ''}"
    return (f"{where}: no {what} of plate {plate} MJD {mjd} exposure {expid} camera {camera}; "
            f"{there}; give one of those")


def _fibre_decomposition(ds, row):
    """(grid WAVE, CONT, LINES, RCHI2) of one sky fibre (decompose --spectra fibres) or None."""
    table = ds.decompositions
    if not len(table):
        return None
    hit = _select(table, int(row["PLATE"]), int(row["MJD"]), int(row["IMG"]),
                  str(row["CAMERA"]).strip(), int(row["FIB"]))
    if not hit.size:
        return None
    drow = table[int(hit[0])]
    if not np.isfinite(float(drow["RCHI2"])):
        return None  # NOFIT: too few good pixels
    cam = str(drow["CAMERA"]).strip().upper()
    with fits.open(ds.decomposition_files[int(drow["DFILE"])], memmap=True) as hdul:
        wave = np.array(hdul[f"{cam[0]}_WAVE"].data, dtype=float)
        cont = np.array(hdul[f"{cam}_CONT"].section[int(drow["ROW"])], dtype=float)
        lines = np.array(hdul[f"{cam}_LINES"].section[int(drow["ROW"])], dtype=float)
    return wave, cont, lines, float(drow["RCHI2"])


def draw_one(fig, out, plate: int, mjd: int, expid: int, camera: str, fiber=None) -> str:
    """Draw one spectrum of the output folder ``out`` and its decomposition on ``fig``.

    Returns a one-line description of what was drawn. See :func:`plot_spectrum`.
    """
    from ..dataset import open_dataset
    from ..spectral.resample import loglam_edges, resample_flux

    out = data.check_output(out)
    ds = open_dataset(out)
    ax, axr = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    if fiber is None:
        means = data.open_means(ds)
        if means is None:
            raise SkyModellingError(f"{out}: no mean spectra; run skymodelling mean {out}, "
                                    "or give --fiber F for one sky fibre")
        hit = _select(means.meta, plate, mjd, expid, camera)
        if not hit.size:
            raise SkyModellingError(_not_found(means.meta, "mean spectrum", plate, mjd, expid,
                                               camera, out / "mean"))
        i = int(hit[0])
        spec = means.spectrum(i)
        dec = data.decomposition(means)
        comps = None
        if dec is not None and not np.ma.is_masked(dec["DFILE"][i]):
            comps = means.components(i)
        label = f"mean of {int(means.meta['NFIBERS'][i])} sky fibres"
        plots.draw_spectrum(ax, axr, spec.WAVE, spec.FLUX, spec.IVAR,
                            None if comps is None else comps.CONT,
                            None if comps is None else comps.LINES, label=label)
        fit = "" if comps is None else f", reduced chi-square {float(dec['RCHI2'][i]):.2f}"
        what = f"mean spectrum{fit}"
    else:
        hit = _select(ds.meta, plate, mjd, expid, camera, fiber)
        if not hit.size:
            if _select(ds.meta, plate, mjd, expid, camera).size:
                fibs = np.unique(data.column(ds.meta, "FIB")[_select(ds.meta, plate, mjd,
                                                                     expid, camera)])
                raise SkyModellingError(
                    f"{out / 'extract'}: fibre {fiber} is not a sky fibre of plate {plate} MJD "
                    f"{mjd} exposure {expid} camera {camera}; its sky fibres are "
                    f"{', '.join(str(int(f)) for f in fibs)}; give one of those with --fiber")
            raise SkyModellingError(_not_found(ds.meta, "sky spectrum", plate, mjd, expid,
                                               camera, out / "extract"))
        i = int(hit[0])
        spec = ds.spectrum(i)
        dec = _fibre_decomposition(ds, ds.meta[i])
        if dec is None:
            plots.draw_spectrum(ax, axr, spec.WAVE, spec.FLUX, spec.IVAR,
                                label=f"sky fibre {fiber}, native pixels",
                                no_model="no decomposition of this fibre (run skymodelling "
                                         "decompose OUT --spectra fibres)")
            what = "sky fibre, not decomposed"
        else:
            grid, cont, lines, rchi2 = dec
            flux, ivar = resample_flux(spec.WAVE, spec.FLUX, spec.IVAR,
                                       loglam_edges(np.log10(grid)))
            plots.draw_spectrum(ax, axr, grid, flux, ivar, cont, lines,
                                label=f"sky fibre {fiber}, resampled onto the mean grid")
            what = f"sky fibre, reduced chi-square {rchi2:.2f}"
    title = (f"plate {plate} MJD {mjd} exposure {expid} camera {camera}"
             f"{'' if fiber is None else f' fibre {fiber}'}: {what}")
    ax.set_title(title, fontsize=10)
    return title


def plot_spectrum(out, plate: int, mjd: int, expid: int, camera: str, fiber=None,
                  path="spectrum.png") -> Path:
    """Draw one spectrum and its decomposition (continuum, continuum + lines, residuals).

    Without ``fiber``: the mean spectrum of the exposure and camera (skymodelling mean) and
    its decomposition (skymodelling decompose). With ``fiber``: that sky fibre's extracted
    spectrum; when ``decompose --spectra fibres`` has run, resampled onto the mean grid
    exactly as the decomposition was, with its continuum and lines; else on its native
    pixels alone.

    Parameters
    ----------
    out : path-like
        Output folder of the pipeline.
    plate, mjd, expid : int
        The exposure.
    camera : str
        b1, b2, r1 or r2.
    fiber : int, optional
        FIBERID of a sky fibre.
    path : path-like
        Figure to write (atomically), in the format of its suffix (.png, .pdf, .svg, ...).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    SkyModellingError
        No such spectrum (the message says which there are), an unknown camera or file
        suffix, or not a pipeline output; nothing is written then.

    Examples
    --------
    >>> plot_spectrum("OUT", 3985, 55320, 114439, "b1", path="b1.png")   # doctest: +SKIP
    PosixPath('b1.png')
    """
    if camera not in CAMERAS:
        raise SkyModellingError(f"camera {camera!r} is not one of {', '.join(CAMERAS)}")
    path = Path(path)
    data.check_output(out)
    fig = new_figure(11.0, 5.0)
    check_format(fig, path)  # before the work, so that a wrong suffix fails at once
    title = draw_one(fig, out, plate, mjd, expid, camera, fiber)
    save_figure(fig, path)
    log.info("%s -> %s", title, path)
    return path
