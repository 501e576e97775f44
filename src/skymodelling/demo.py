"""``skymodelling demo``: simulate a small BOSS tree and run the pipeline on it."""
from __future__ import annotations

import logging
from pathlib import Path

from .io import paths
from .simulate.truth import truth_dir

log = logging.getLogger(__name__)

DEMO_PLATES = 2
DEMO_EXPOSURES = 3


def _tree_complete(raw: Path) -> bool:
    """A tree written by ``simulate`` is complete once it exists: it is renamed into place last."""
    return (raw / "platelist.fits").is_file() and (truth_dir(raw) / "exposures.fits").is_file()


def run_demo(folder, seed: int = 1) -> int:
    """Simulate ``folder/raw`` (unless already there) and summarise it.

    Returns the exit code.
    """
    from .io.platelist import read_platelist
    from .io.spplate import read_spplate
    from .simulate.tree import simulate_tree

    folder = Path(folder)
    raw = folder / "raw"
    if _tree_complete(raw):
        print(f"using the simulated tree already in {raw}")
    else:
        print(f"simulating {DEMO_PLATES} plates x {DEMO_EXPOSURES} exposures into {raw} ...",
              flush=True)
        summary = simulate_tree(raw, n_plates=DEMO_PLATES, n_exposures=DEMO_EXPOSURES, seed=seed)
        print(summary.describe())
    platelist = read_platelist(paths.find_platelist(raw))
    print(f"platelist: {len(platelist)} plates listed, "
          f"{int((platelist['PLATEQUALITY'] == 'bad').sum())} marked bad")
    for spplate in sorted(raw.glob("*/*/spPlate-*.fits")):
        sp = read_spplate(spplate)
        cams = ", ".join(f"{c} {n}" for c, n in sp.nexp_per_camera.items())
        print(f"  {spplate.relative_to(raw)}: {len(sp.expids())} exposures in the coadd ({cams})")
    return 0
