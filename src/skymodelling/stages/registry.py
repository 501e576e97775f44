"""The table of stages: what ``skymodelling run``, the per-stage commands and
:func:`skymodelling.pipeline.run_pipeline` know about each stage.

Each :class:`Stage` names its runner, the command-line options it adds beyond the
common ones (``OUT``, ``--workers``, ``--config``, ``--strict``, ``--force``) and how
those options change the configuration. Adding a stage is one entry here.

Examples
--------
>>> from skymodelling.stages.registry import STAGES, get
>>> [s.name for s in STAGES]
['extract', 'enrich', 'lines', 'mean', 'decompose', 'merge']
>>> get("mean").product.prefix
'mean'
"""
from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass, field

from ..errors import SkyModellingError
from ..io import products


def plate_list(text: str) -> list[int]:
    """``P1,P2,...`` as a list of plate numbers (an argparse type)."""
    try:
        plates = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected plate numbers like 3985,4055, got {text}") from None
    if not plates or any(p < 1 for p in plates):
        raise argparse.ArgumentTypeError(f"expected positive plate numbers, got {text}")
    return plates


def positive_int(text: str) -> int:
    """A positive integer (an argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


@dataclass(frozen=True)
class Option:
    """One stage-specific command-line option: argparse flags and keyword arguments;
    ``setting`` ("section.field") is the configuration value it sets when given."""

    flags: tuple
    kwargs: dict
    setting: str | None = None


@dataclass(frozen=True)
class Stage:
    """One pipeline stage.

    Attributes
    ----------
    name : str
        Stage name (also its output folder and the ``--from``/``--to``/``--force`` value).
    help : str
        One line for ``skymodelling --help``.
    runner : str
        ``module:function`` of its runner (imported when first run).
    product : Product or None
        Its per-plate output product (None for merge, whose outputs are catalogues).
    needs_raw : bool
        Reads the BOSS reduction tree RAW (extract).
    takes : tuple of str
        The run options its runner accepts beyond ``out``/``config``/``strict``/``force``
        (``workers``, ``executor``, ``plates``, ``clouds``, ``spectra``, ``platelist``).
    options : tuple of Option
        Its own command-line options.
    """

    name: str
    help: str
    runner: str
    product: products.Product | None
    needs_raw: bool = False
    takes: tuple = ("workers", "executor")
    options: tuple = field(default_factory=tuple)

    def function(self):
        module, _, func = self.runner.partition(":")
        return getattr(importlib.import_module(module), func)

    def configure(self, config, args):
        """``config`` with this stage's command-line options applied (those given)."""
        for opt in self.options:
            if opt.setting is None:
                continue
            value = getattr(args, opt.kwargs.get("dest") or _dest(opt.flags), None)
            if value is not None:
                section, _, name = opt.setting.partition(".")
                config = config.replace(section, **{name: tuple(value) if isinstance(
                    value, list) else value})
        return config

    def run(self, raw, out, config, *, strict=False, force=False, **run_options):
        """Run the stage; ``run_options`` it does not take are ignored (None values too)."""
        kwargs = {k: v for k, v in run_options.items() if k in self.takes and v is not None}
        if self.name == "merge":
            kwargs.setdefault("verbose", False)
        func = self.function()
        if self.needs_raw:
            if raw is None:
                raise SkyModellingError(f"{self.name} needs the BOSS reduction tree RAW")
            return func(raw, out, config, strict=strict, force=force, **kwargs)
        if self.name == "merge":
            return func(out, config, force=force, **kwargs)
        return func(out, config, strict=strict, force=force, **kwargs)


def _dest(flags) -> str:
    long = [f for f in flags if f.startswith("--")][0]
    return long[2:].replace("-", "_")


_PLATES = Option(("--plates",), {"type": plate_list, "default": None,
                                 "help": "only these plates: P1,P2,..."})
_CLOUDS = Option(("--clouds",), {"default": None, "metavar": "FILE",
                                 "help": "photometricity table (FITS or CSV: STARTTAI, ENDTAI, "
                                         "PHOTOMETRIC); without it PHOTO is 0.5"})

STAGES: tuple[Stage, ...] = (
    Stage("extract", "calibrated sky spectra from every sky fibre",
          "skymodelling.stages.extract:run_extract", products.SKY, needs_raw=True,
          takes=("workers", "executor", "plates"),
          options=(_PLATES,
                   Option(("--calibration",), {"choices": ("fixed", "exposure"), "default": None,
                                               "help": "fixed reference calibration (default) "
                                                       "or each exposure's own"},
                          "extract.calibration"),
                   Option(("--reference-plate",), {"type": int, "default": None,
                                                   "help": "plate of the reference calibration "
                                                           "exposure (default 3985)"},
                          "extract.reference_plate"),
                   Option(("--reference-expid",), {"type": int, "default": None,
                                                   "help": "reference calibration exposure "
                                                           "(default 114439)"},
                          "extract.reference_expid"))),
    Stage("enrich", "observing conditions of every extracted sky spectrum",
          "skymodelling.stages.enrich:run_enrich", products.CONDITIONS,
          takes=("workers", "executor", "plates", "clouds"), options=(_CLOUDS, _PLATES)),
    Stage("lines", "line strengths, continuum bands and sky magnitudes",
          "skymodelling.stages.lines:run_lines", products.LINES,
          options=(Option(("--line-list",), {"default": None, "metavar": "FILE",
                                             "help": "feature list (CSV; default: the bundled "
                                                     "data/sky_features.csv)"},
                          "lines.line_list"),)),
    Stage("mean", "one mean sky spectrum per exposure and camera",
          "skymodelling.stages.mean:run_mean", products.MEAN,
          options=(Option(("--min-fibers",), {"type": positive_int, "default": None,
                                              "help": "fewest good sky fibres for a mean "
                                                      "(default 10)"},
                          "mean.min_fibers"),)),
    Stage("decompose", "separate airglow lines from the continuum of every mean sky spectrum",
          "skymodelling.stages.decompose:run_decompose", products.DECOMP,
          takes=("workers", "executor", "spectra"),
          options=(Option(("--spectra",), {"choices": ("mean", "fibres", "both"),
                                           "default": None,
                                           "help": "which spectra to decompose: the mean "
                                                   "spectra (default), every sky-fibre "
                                                   "spectrum of the extract outputs, or both "
                                                   "(means first)"}),)),
    Stage("merge", "one catalogue (all, good, clean, removed) in FITS and Parquet",
          "skymodelling.stages.merge:run_merge", None, takes=("platelist", "verbose"),
          options=(Option(("--exclude-plates",), {"type": plate_list, "default": None,
                                                  "metavar": "P1,P2",
                                                  "help": "plates to leave out of the good "
                                                          "catalogue"},
                          "merge.exclude_plates"),
                   Option(("--platelist",), {"default": None,
                                             "help": "platelist with PLATEQUALITY (default: "
                                                     "OUT/platelist.fits)"}))),
)
NAMES = tuple(s.name for s in STAGES)
_BY_NAME = {s.name: s for s in STAGES}


def get(name: str) -> Stage:
    """The stage called ``name`` (a one-line error naming the stages otherwise)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise SkyModellingError(f"unknown stage {name!r}; stages are {', '.join(NAMES)}") from None


__all__ = ["Stage", "Option", "STAGES", "NAMES", "get", "plate_list", "positive_int"]
