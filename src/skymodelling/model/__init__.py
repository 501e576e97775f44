"""Predictive sky model: continuum bands and line fluxes from the observing conditions.

See docs/model.md. :func:`fit_model` / :func:`fit_catalogue` fit, :func:`load_model`
reads a saved model, :meth:`SkyModel.predict` predicts with 68 % intervals,
:func:`conditions_at` computes conditions from a time and pointing and
:func:`predicted_spectrum` assembles a spectrum on the camera grids. The names
are imported on first use, so that ``skymodelling.model.columns`` stays cheap.
"""
import importlib

_WHERE = {"SkyModel": "api", "fit_catalogue": "api", "fit_model": "api", "load_model": "api",
          "conditions_at": "features", "predicted_spectrum": "spectrum"}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
