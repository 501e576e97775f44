"""Pure plotting functions: arrays (or Tables) and matplotlib Axes in, nothing read or written.

Each function draws on the Axes it is given and returns the number of data points (or
pixels) it drew, so a caller can tell an empty panel from a full one. When there is nothing
to draw the Axes says so in words instead of staying blank.
"""
from __future__ import annotations

import numpy as np

FLUX_UNIT = r"$10^{-17}$ erg s$^{-1}$ cm$^{-2}$ $\AA^{-1}$"
LINE_UNIT = r"$10^{-17}$ erg s$^{-1}$ cm$^{-2}$"

#: colours of the cameras, and of anything else drawn in groups
COLOURS = {"b1": "#1f4e9c", "b2": "#5fa2e8", "r1": "#b2182b", "r2": "#f08a5d"}
_CYCLE = ("#333333", "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e")


def say_empty(ax, text: str) -> int:
    """Write ``text`` in the middle of an empty panel; returns 0.

    Examples
    --------
    >>> from skymodelling.report._mpl import new_figure
    >>> say_empty(new_figure(3, 2).add_subplot(), "no data")
    0
    """
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=10,
            color="#666666", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    return 0


def _finite(*arrays) -> np.ndarray:
    ok = np.ones(np.shape(arrays[0]), dtype=bool)
    for a in arrays:
        if a is not None:
            ok &= np.isfinite(np.asarray(a, dtype=float))
    return ok


def _ylimits(flux: np.ndarray, cont: np.ndarray | None) -> tuple[float, float]:
    """Limits that show the continuum and most of each line (bright lines run off the top)."""
    lo = min(0.0, float(np.percentile(flux, 0.5)))
    hi = float(np.percentile(flux, 99.0)) * 1.3
    if cont is not None and np.any(np.isfinite(cont)):
        hi = max(hi, 4.0 * float(np.nanmax(cont)))
    return lo, hi if hi > lo else lo + 1.0


def draw_spectrum(ax, ax_resid, wave, flux, ivar, cont=None, lines=None, *, band=None,
                  label: str = "flux",
                  no_model: str = "no decomposition of this spectrum (run skymodelling "
                                  "decompose)") -> int:
    """A sky spectrum, its decomposition and the normalised residuals.

    Parameters
    ----------
    ax, ax_resid : matplotlib Axes
        The spectrum and, below it, the residual panel (or None for no residual panel).
    wave, flux, ivar : array_like (npix,)
        Wavelength (A), flux density (1e-17 erg/s/cm2/A) and inverse variance (0 = masked).
    cont, lines : array_like (npix,), optional
        The continuum and the line model of the decomposition on the same pixels; when
        given, the model CONT + LINES is drawn and the residual panel shows
        (flux - model) x sqrt(ivar), else it says that there is no decomposition.
    band : tuple of array_like (npix,), optional
        (low, high) envelope drawn behind the spectrum, e.g. the 16th and 84th percentiles
        of many spectra on the same grid.
    label : str
        Legend label of the spectrum.
    no_model : str
        What the residual panel says when there is no decomposition.

    Returns
    -------
    int
        Number of good pixels drawn.

    Examples
    --------
    >>> import numpy as np
    >>> from skymodelling.report._mpl import new_figure
    >>> fig = new_figure(6, 4)
    >>> ax, axr = fig.subplots(2, 1, sharex=True)
    >>> wave = np.linspace(5500, 5650, 300)
    >>> cont = np.full(300, 2.0)
    >>> lines = 40 * np.exp(-0.5 * ((wave - 5577.3) / 1.2) ** 2)
    >>> draw_spectrum(ax, axr, wave, cont + lines, np.full(300, 4.0), cont, lines)
    300
    """
    wave = np.asarray(wave, dtype=float)
    flux = np.asarray(flux, dtype=float)
    ivar = np.asarray(ivar, dtype=float)
    good = (ivar > 0) & _finite(wave, flux)
    if not good.any():
        if ax_resid is not None:
            say_empty(ax_resid, "")
        return say_empty(ax, "no good pixel in this spectrum")
    shown = np.where(good, flux, np.nan)
    if band is not None:
        ax.fill_between(wave, band[0], band[1], color="#bbbbbb", alpha=0.6, lw=0,
                        label="16-84 % of the camera's spectra")
    ax.plot(wave, shown, color="black", lw=0.7, label=label, zorder=3)
    model = None
    if cont is not None and lines is not None:
        cont = np.where(good, np.asarray(cont, dtype=float), np.nan)
        model = cont + np.asarray(lines, dtype=float)
        ax.plot(wave, model, color="#e08214", lw=1.0, label="model: continuum + lines",
                zorder=2)
        ax.plot(wave, cont, color="#2166ac", lw=1.2, label="continuum", zorder=4)
    ax.set_ylim(*_ylimits(flux[good], cont))
    ax.set_xlim(wave[good].min(), wave[good].max())
    ax.set_ylabel("flux [" + FLUX_UNIT + "]", fontsize=8)
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    if ax_resid is not None:
        if model is None:  # text only: the x axis is shared with the spectrum's
            ax_resid.text(0.5, 0.5, no_model, ha="center", va="center", fontsize=10,
                          color="#666666", transform=ax_resid.transAxes)
            ax_resid.set_yticks([])
        else:
            resid = (shown - model) * np.sqrt(np.where(good, ivar, np.nan))
            ax_resid.axhspan(-1, 1, color="#dddddd", lw=0)
            ax_resid.plot(wave, resid, color="black", lw=0.4)
            ax_resid.axhline(0, color="#2166ac", lw=0.8)
            lim = max(5.0, float(np.nanpercentile(np.abs(resid), 99.5)))
            ax_resid.set_ylim(-lim, lim)
            ax_resid.set_ylabel(r"(data $-$ model) / $\sigma$", fontsize=8)
        ax_resid.set_xlabel(r"vacuum wavelength [$\AA$]", fontsize=8)
    else:
        ax.set_xlabel(r"vacuum wavelength [$\AA$]", fontsize=8)
    return int(good.sum())


def draw_against(ax, x, y, yerr=None, *, groups=None, xlabel: str = "", ylabel: str = "",
                 empty: str = "no measurement") -> int:
    """Scatter ``y`` (with optional 1-sigma errors) against ``x``, one colour per group.

    Non-finite points are left out. ``groups`` (array of labels, e.g. the camera) colours
    the points and makes the legend; camera names get their fixed colours (COLOURS).

    Examples
    --------
    >>> from skymodelling.report._mpl import new_figure
    >>> ax = new_figure(3, 2).add_subplot()
    >>> draw_against(ax, [1, 2, 3], [4.0, float("nan"), 6.0], groups=["b1", "b1", "r1"])
    2
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    err = None if yerr is None else np.asarray(yerr, dtype=float)
    ok = _finite(x, y)
    if not ok.any():
        return say_empty(ax, empty)
    labels = (np.full(x.shape, "", dtype=object) if groups is None
              else np.asarray(groups).astype(str))
    for k, name in enumerate(np.unique(labels[ok])):
        sel = ok & (labels == name)
        e = None if err is None else np.where(np.isfinite(err[sel]), err[sel], 0.0)
        ax.errorbar(x[sel], y[sel], yerr=e, fmt="o", ms=3.5, lw=0.8, capsize=0,
                    color=COLOURS.get(name, _CYCLE[k % len(_CYCLE)]), label=name or None)
    if groups is not None:
        ax.legend(fontsize=7, frameon=False)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    return int(ok.sum())


def draw_histogram(ax, values, *, label: str, unit: str = "", bins: int = 20) -> int:
    """Histogram of the finite ``values``, with their count and median in the title.

    Examples
    --------
    >>> from skymodelling.report._mpl import new_figure
    >>> ax = new_figure(3, 2).add_subplot()
    >>> draw_histogram(ax, [1.0, 1.2, float("nan"), 2.0], label="AIRMASS")
    3
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    ax.set_title(label, fontsize=9)
    if not values.size:
        return say_empty(ax, "no value")
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    ax.hist(values, bins=bins, range=(lo, hi), color="#4d7ea8", edgecolor="white", lw=0.5)
    ax.set_title(f"{label} (n = {values.size}, median {np.median(values):.3g})", fontsize=9)
    ax.set_xlabel(f"{label} [{unit}]" if unit else label, fontsize=8)
    ax.set_ylabel("number", fontsize=8)
    ax.tick_params(labelsize=7)
    return int(values.size)
