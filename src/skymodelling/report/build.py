"""``skymodelling report OUT``: one self-contained HTML page of figures about a pipeline output."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from .. import __version__
from .._atomic import write_text_atomic
from ..errors import SkyModellingError
from . import data, plots
from . import html as H
from ._mpl import _matplotlib, figure_png, new_figure

log = logging.getLogger(__name__)

#: figure width, inches (x 100 dpi = 1100 pixels, shown at natural size)
WIDTH = 11.0
#: report settings, recorded in the page
DEFAULTS = {"max_spectra": 400, "histogram_bins": 20, "failure_rows": 500}


def _spectra_section(means, dec, max_spectra: int) -> str:
    if means is None:
        return H.missing("No mean spectra in this folder: run skymodelling mean OUT "
                         "(or skymodelling run).")
    parts = []
    if dec is None:
        parts.append(H.missing("No decomposition of the mean spectra: run skymodelling "
                               "decompose OUT; the spectra are shown without continuum, "
                               "lines and residuals."))
    for cam in sorted(set(data.text_column(means.meta, "CAMERA"))):
        rows, wave, flux, ivar = data.camera_stack(means, cam, max_spectra)
        k = data.typical(flux, ivar)
        i = int(rows[k])
        row = means.meta[i]
        comps = None
        if dec is not None and not np.ma.is_masked(dec["DFILE"][i]):
            comps = means.components(i)
        fig = new_figure(WIDTH, 5.0)
        ax, axr = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
        label = f"{cam} plate {row['PLATE']} MJD {row['MJD']} exposure {row['IMG']}"
        band = data.envelope(flux, ivar) if len(rows) > 2 else None
        plots.draw_spectrum(ax, axr, wave, flux[k], ivar[k],
                            None if comps is None else comps.CONT,
                            None if comps is None else comps.LINES, band=band, label=label)
        ax.set_title(f"camera {cam}: mean sky spectrum", fontsize=10)
        n_cam = int((data.text_column(means.meta, "CAMERA") == cam).sum())
        fit = ""
        if comps is not None:
            fit = (f" Decomposition: reduced chi-square {float(dec['RCHI2'][i]):.2f}, "
                   f"{int(dec['NLINES'][i])} lines, LSF sigma {float(dec['LSF_SIGMA'][i]):.2f} "
                   "grid pixels; bottom: (data - model) x sqrt(IVAR).")
        caption = (f"Camera {H.esc(cam)}: the typical one of its {n_cam} mean spectra (median "
                   f"flux closest to the median of {len(rows)} read), {H.esc(label)}; grey: the "
                   f"16th to 84th percentile of those {len(rows)} spectra at each pixel.{fit}")
        parts.append(H.figure(figure_png(fig), caption, f"mean spectrum {cam}"))
    return "".join(parts)


def _lines_section(means, dec) -> str:
    if means is None:
        return H.missing("No mean spectra, so no line strengths per exposure: run "
                         "skymodelling mean OUT (and decompose OUT).")
    table, source = data.line_strengths(means, dec)
    names = [n for n in data.TREND_LINES if f"{n}_FLUX" in table.colnames]
    if not names:
        return H.missing("The mean spectra carry no line measurement: run skymodelling "
                         "lines OUT, then mean OUT again.")
    fig = new_figure(WIDTH, 2.2 * len(names))
    axes = np.atleast_2d(fig.subplots(len(names), 2, squeeze=False))
    cams = table["CAMERA"]
    for (ax_t, ax_s), name in zip(axes, names, strict=True):
        y, err = table[f"{name}_FLUX"], table[f"{name}_FLUX_ERR"]
        ylabel = f"{name} [" + plots.LINE_UNIT + "]"
        plots.draw_against(ax_t, table["TIME"], y, err, groups=cams, xlabel="TAI MJD",
                           ylabel=ylabel)
        plots.draw_against(ax_s, table["SOLARFLUX"], y, err, groups=cams,
                           xlabel="F10.7 solar flux [sfu]", ylabel=ylabel,
                           empty="no SOLARFLUX (run skymodelling enrich, then mean again)")
    what = ("the decomposition's fitted line fluxes (docs/decompose.md)" if source == "decompose"
            else "the lines stage's window fluxes on the mean spectra (docs/lines.md; no "
                 "decomposition found)")
    caption = (f"Line fluxes of every mean spectrum (one point per exposure and camera, 1-sigma "
               f"errors): {what}, against the mid-exposure time and the day's 10.7 cm solar "
               "flux (enrich SOLARFLUX).")
    return H.figure(figure_png(fig), caption, "line strengths against time and solar flux")


def _moon_section(means) -> str:
    if means is None:
        return H.missing("No mean spectra: run skymodelling mean OUT.")
    meta = means.meta
    if "MOON_ILL" not in meta.colnames:
        return H.missing("The mean spectra carry no Moon columns: run skymodelling enrich "
                         "OUT, then mean OUT again.")
    bands = [b for b in data.MOON_BANDS if f"{b}_CONT" in meta.colnames]
    if not bands:
        return H.missing("The mean spectra carry no continuum bands: run skymodelling lines OUT, "
                         "then mean OUT again.")
    up = np.where(data.column(meta, "MOON_ALT") > 0, "Moon above the horizon",
                  "Moon below the horizon")
    fig = new_figure(WIDTH, 2.2 * len(bands))
    axes = fig.subplots(len(bands), 2, squeeze=False)
    for (ax_i, ax_s), band in zip(axes, bands, strict=True):
        y, err = data.column(meta, f"{band}_CONT"), data.column(meta, f"{band}_CONT_ERR")
        ylabel = f"{band} [" + plots.FLUX_UNIT + "]"
        plots.draw_against(ax_i, data.column(meta, "MOON_ILL"), y, err, groups=up,
                           xlabel="Moon illuminated fraction", ylabel=ylabel)
        plots.draw_against(ax_s, data.column(meta, "MOON_SEP"), y, err, groups=up,
                           xlabel="Moon separation [deg]", ylabel=ylabel)
    caption = ("Continuum band means (lines stage, on the mean spectra: one point per exposure "
               "and camera) against the Moon's illuminated fraction and its angular distance "
               "from the pointing.")
    return H.figure(figure_png(fig), caption, "continuum against the Moon")


def _conditions_section(ds, means, bins: int) -> str:
    source = means.meta if means is not None else ds.meta
    expo = data.exposures(source)
    names = [n for n in data.CONDITIONS
             if n in expo.colnames and np.isfinite(data.column(expo, n)).any()]
    if not names:
        return H.missing("No observing conditions: run skymodelling enrich OUT.")
    parts = []
    if "MOON_ILL" not in expo.colnames:
        parts.append(H.missing("No enrich output: only the raw header conditions are shown; "
                               "run skymodelling enrich OUT for the Moon, Sun, zodiacal light, "
                               "starlight and solar flux."))
    ncol = 4
    nrow = -(-len(names) // ncol)
    fig = new_figure(WIDTH, 2.3 * nrow)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        plots.draw_histogram(ax, data.column(expo, name), label=name,
                             unit=data.unit_of(expo, name), bins=bins)
    for ax in axes[len(names):]:
        ax.set_axis_off()
    what = "mean spectra" if means is not None else "sky spectra"
    caption = (f"Distributions over the {len(expo)} exposures (one value per exposure: the "
               f"first camera's row of the {what}; pointing-dependent quantities are the "
               "median over the fibres, docs/mean.md).")
    parts.append(H.figure(figure_png(fig), caption, "distributions of the conditions"))
    return "".join(parts)


def _failures_section(out: Path, max_rows: int) -> str:
    fails = data.failures(out)
    parts = ["<h3>Problems recorded by the stages (OUT/failures/*.csv)</h3>"]
    if len(fails):
        parts.append(H.table((tuple(r) for r in fails.iterrows()), fails.colnames, max_rows))
    else:
        parts.append("<p>No problem recorded: every plate, exposure and camera went through.</p>")
    parts.append("<h3>Spectra removed from the clean catalogue (merge/removed.fits)</h3>")
    removed = data.removed(out)
    if removed is None:
        parts.append(H.missing("No catalogue: run skymodelling merge OUT."))
    elif not len(removed):
        parts.append("<p>No spectrum removed.</p>")
    else:
        parts.append(H.table((tuple(r) for r in removed.iterrows()),
                             ("reason", "plate", "MJD", "spectra"), max_rows))
    return "".join(parts)


def _summary(out: Path, ds, means, dec) -> str:
    counts = data.merge_counts(out)
    rows = [("sky spectra (extract)", len(ds)), ("plate files", len(ds.files)),
            ("mean spectra", 0 if means is None else len(means)),
            ("decomposed mean spectra", 0 if dec is None
             else int((~np.ma.getmaskarray(dec["DFILE"])).sum()))]
    parts = [H.table(rows, ("quantity", "number"))]
    if counts:
        fields = sorted({k for v in counts.values() if isinstance(v, dict) for k in v})
        parts.append("<p>The catalogue (merge/counts.json):</p>")
        parts.append(H.table(((name, *(v.get(f, "") for f in fields))
                              for name, v in counts.items() if isinstance(v, dict)),
                             ("product", *fields)))
    else:
        parts.append(H.missing("No catalogue: run skymodelling merge OUT."))
    return "".join(parts)


def _provenance(out: Path, ds, settings: dict) -> str:
    rec = data.recorded_provenance(out, ds)
    config = rec["SMCONFIG"]
    config_text = json.dumps(config, indent=1, sort_keys=True) if isinstance(config, dict) \
        else str(config)
    return (f"<p>Report written by skymodelling {H.esc(__version__)} on "
            f"{H.esc(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()))} from "
            f"<code>{H.esc(out.resolve())}</code>; report settings: "
            f"<code>{H.esc(json.dumps(settings, sort_keys=True))}</code>.</p>"
            f"<p>The pipeline's outputs were made by skymodelling {H.esc(rec['SMVERS'])} with "
            f"this configuration (SMCONFIG of <code>{H.esc(rec['file'])}</code>):</p>"
            f"<pre>{H.esc(config_text)}</pre>")


def build_report(out, **settings) -> str:
    """The report of the pipeline output folder ``out`` as one HTML string.

    ``settings`` override :data:`DEFAULTS` (``max_spectra``: mean spectra per camera read
    for the percentile envelope; ``histogram_bins``; ``failure_rows``: table rows shown).
    """
    from ..dataset import open_dataset

    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise SkyModellingError(f"unknown report setting(s) {sorted(unknown)}; "
                                f"known: {sorted(DEFAULTS)}")
    settings = {**DEFAULTS, **settings}
    out = data.check_output(out)
    _matplotlib()  # a one-line error now, before any work, when it is missing
    ds = open_dataset(out)
    means = data.open_means(ds)
    dec = data.decomposition(means)
    body = [f"<h1>skymodelling report: {H.esc(out.resolve().name)}</h1>",
            H.section("summary", "Summary", _summary(out, ds, means, dec)),
            H.section("spectra", "Mean spectra per camera: continuum, lines, residuals",
                      _spectra_section(means, dec, settings["max_spectra"])),
            H.section("lines", "Line strengths against time and solar flux",
                      _lines_section(means, dec)),
            H.section("moon", "Continuum against Moon illumination and separation",
                      _moon_section(means)),
            H.section("conditions", "Observing conditions",
                      _conditions_section(ds, means, settings["histogram_bins"])),
            H.section("failures", "Failures", _failures_section(out, settings["failure_rows"])),
            H.section("provenance", "Provenance", _provenance(out, ds, settings))]
    return H.page(f"skymodelling report: {out}", "\n".join(body))


def write_report(out_dir, path=None, **settings) -> Path:
    """Write the HTML report of ``out_dir`` to ``path`` (default ``OUT/report.html``).

    One file, atomically, with every figure embedded as a PNG data URI and no script or
    external resource. Sections: summary, mean spectra per camera with their continuum,
    lines and residuals, line strengths against time and solar flux, continuum against
    the Moon, distributions of the conditions, failures, provenance (package version,
    report settings and the pipeline configuration recorded in the outputs). A stage that
    has not run makes its section say so.

    Parameters
    ----------
    out_dir : path-like
        Output folder of ``skymodelling run`` (at least ``extract``).
    path : path-like, optional
        The HTML file to write.
    **settings
        See :func:`build_report`.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    SkyModellingError
        ``out_dir`` is not a pipeline output folder, ``path`` is a folder, or matplotlib
        is missing; nothing is written then.

    Examples
    --------
    >>> write_report("OUT")                       # doctest: +SKIP
    PosixPath('OUT/report.html')
    """
    t0 = time.perf_counter()
    path = Path(out_dir) / "report.html" if path is None else Path(path)
    if path.is_dir():
        raise SkyModellingError(f"{path}: is a folder; give the HTML file to write, "
                                "e.g. -o report.html")
    text = build_report(out_dir, **settings)
    write_text_atomic(path, text)
    log.info("report written to %s (%.1f MB, %.1f s)", path, len(text) / 1e6,
             time.perf_counter() - t0)
    return path
