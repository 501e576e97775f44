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
    _summarise_tree(raw)
    _run_extract(raw, folder / "out")
    return 0


def _summarise_tree(raw: Path) -> None:
    from .io.platelist import read_platelist
    from .io.spplate import read_spplate

    platelist = read_platelist(paths.find_platelist(raw))
    print(f"platelist: {len(platelist)} plates listed, "
          f"{int((platelist['PLATEQUALITY'] == 'bad').sum())} marked bad")
    for spplate in sorted(raw.glob("*/*/spPlate-*.fits")):
        sp = read_spplate(spplate)
        cams = ", ".join(f"{c} {n}" for c, n in sp.nexp_per_camera.items())
        print(f"  {spplate.relative_to(raw)}: {len(sp.expids())} exposures in the coadd ({cams})")


def _run_extract(raw: Path, out: Path) -> None:
    import os

    import numpy as np

    from .dataset import open_dataset
    from .stages.extract import run_extract

    print(f"\nextract: calibrated sky spectra into {out / 'extract'} ...", flush=True)
    summary = run_extract(raw, out, workers=min(os.cpu_count() or 1, 4))
    print(summary.describe())
    ds = open_dataset(out)
    for cam in ("b1", "r1"):
        i = int(np.flatnonzero(ds.meta["CAMERA"] == cam)[0])
        spec = ds.spectrum(i)
        row = ds.meta[i]
        good = spec.good
        print(f"  e.g. plate {row['PLATE']} exposure {row['IMG']} {cam} fibre {row['FIB']}: "
              f"{spec.WAVE[good].min():.0f}-{spec.WAVE[good].max():.0f} A, median sky "
              f"{np.median(spec.FLUX[good]):.2f} x 1e-17 erg/s/cm2/A, "
              f"{good.mean():.0%} of pixels usable")
    print("  read them with: skymodelling.open_dataset(" f"'{out}')")
