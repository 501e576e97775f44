"""skymodelling: calibrated night-sky spectra from the SDSS-III BOSS sky fibres.

The package turns a BOSS spectroscopic reduction tree (spFrame, spCFrame,
spFluxcalib, spPlate, platelist) into a dataset of flux-calibrated sky
spectra with their observing conditions, line strengths and an
airglow/continuum separation.  A physical simulator writes realistic trees
with known truth for testing and demonstration.

Nothing here touches the network, at import time or later.
"""
from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("skymodelling")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "read_truth", "open_dataset"]


def __getattr__(name: str):
    # Lazy access keeps `import skymodelling` cheap (no astropy import at import time).
    if name == "read_truth":
        from .simulate.truth import read_truth

        return read_truth
    if name == "open_dataset":
        from .dataset import open_dataset

        return open_dataset
    raise AttributeError(f"module 'skymodelling' has no attribute {name!r}")
