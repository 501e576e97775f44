"""matplotlib, headless: figures made with :class:`matplotlib.figure.Figure` (Agg), no pyplot.

matplotlib is the optional extra ``plot`` (``pip install 'skymodelling[plot]'``); without it
:func:`new_figure` raises a one-line :class:`~skymodelling.errors.SkyModellingError`.
"""
from __future__ import annotations

import io

from ..errors import SkyModellingError

#: dots per inch of every figure: a figure ``w`` inches wide is ``w * DPI`` pixels.
DPI = 100


def _matplotlib():
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise SkyModellingError(
            "matplotlib is not installed: it draws the report and plots; "
            "install it with: python -m pip install 'skymodelling[plot]'") from None
    return matplotlib, Figure


def new_figure(width: float, height: float):
    """A new Agg figure of ``width`` x ``height`` inches (``DPI`` pixels per inch).

    Examples
    --------
    >>> fig = new_figure(4, 3)
    >>> png = figure_png(fig)
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    _, Figure = _matplotlib()
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def figure_png(fig) -> bytes:
    """The figure as PNG bytes, exactly ``figsize * DPI`` pixels (no tight cropping)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white",
                metadata={"Software": None})
    return buf.getvalue()


def check_format(fig, path) -> str:
    """The figure format named by ``path``'s suffix; a one-line error when matplotlib has none."""
    from pathlib import Path

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise SkyModellingError(
            f"{path}: cannot write a figure as {fmt or 'a file without suffix'!r}; "
            f"use one of the suffixes {', '.join('.' + s for s in sorted(supported))}")
    return fmt


def save_figure(fig, path) -> None:
    """Write ``fig`` to ``path`` atomically, in the format of its suffix (png, pdf, svg, ...)."""
    from .._atomic import atomic_path

    fmt = check_format(fig, path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=DPI, facecolor="white")
