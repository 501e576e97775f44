"""Predictive sky model: continuum bands and line fluxes from the observing conditions.

See docs/model.md. :func:`fit_model` / :func:`fit_catalogue` fit, :func:`load_model`
reads a saved model, :meth:`SkyModel.predict` predicts with 68 % intervals,
:func:`conditions_at` computes conditions from a time and pointing and
:func:`predicted_spectrum` assembles a spectrum on the camera grids.
"""
from .api import SkyModel, fit_catalogue, fit_model, load_model
from .features import conditions_at
from .spectrum import predicted_spectrum

__all__ = ["SkyModel", "conditions_at", "fit_catalogue", "fit_model", "load_model",
           "predicted_spectrum"]
