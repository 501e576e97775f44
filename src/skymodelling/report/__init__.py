"""Figures of a pipeline output: the HTML report and single-spectrum plots (docs/report.md).

:func:`write_report` writes ``skymodelling report``'s page, :func:`plot_spectrum` draws
``skymodelling plot``'s figure; :mod:`.plots` holds the pure plotting functions (arrays and
matplotlib Axes in). matplotlib is the optional extra ``plot``.
"""
from __future__ import annotations

from .build import build_report, write_report
from .single import plot_spectrum

__all__ = ["build_report", "plot_spectrum", "write_report"]
