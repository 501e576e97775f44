"""``skymodelling demo``: simulate a small BOSS tree and run the pipeline on it."""
from __future__ import annotations

import logging
from pathlib import Path

from .io import paths
from .simulate.truth import truth_dir

log = logging.getLogger(__name__)

#: The documentation (file formats, algorithms), installed with the package.
DOCS = Path(__file__).resolve().parent / "docs"

DEMO_PLATES = 1
DEMO_EXPOSURES = 2


def _tree_complete(raw: Path) -> bool:
    """A tree written by ``simulate`` is complete once it exists: it is renamed into place last."""
    return (raw / "platelist.fits").is_file() and (truth_dir(raw) / "exposures.fits").is_file()


def run_demo(folder, seed: int = 1, workers: int | None = None, n_plates: int = DEMO_PLATES,
             n_exposures: int = DEMO_EXPOSURES) -> int:
    """Simulate ``folder/raw`` (unless already there), run every stage into ``folder/out``.

    Prints the tree, each stage's summary, the final summary and a few of the
    measured quantities with where they are. Returns the exit code (1 when
    problems were recorded).
    """
    from .pipeline import run_pipeline
    from .simulate.tree import simulate_tree

    folder = Path(folder)
    raw, out = folder / "raw", folder / "out"
    if _tree_complete(raw):
        print(f"using the simulated tree already in {raw}")
    else:
        # Without the coadd's rejected exposure: 1 plate x 2 exposures writes 1.04e9 bytes
        # (0.97 GiB) in all, as real-size files: each spCFrame is 74 MB, each gzipped
        # spFrame 26 MB, the spPlate 112 MB.
        print(f"simulating {n_plates} plate(s) x {n_exposures} exposures into {raw} ...",
              flush=True)
        summary = simulate_tree(raw, n_plates=n_plates, n_exposures=n_exposures, seed=seed,
                                workers=workers, rejected=False)
        print(summary.describe())
    _summarise_tree(raw)
    print(f"\nrunning extract -> enrich -> lines -> mean -> decompose -> merge into {out} "
          f"(log: {out / 'run.log'}) ...", flush=True)
    result = run_pipeline(raw, out, workers=workers, show=False)
    print()
    print(result.describe())
    print()
    _show_extract(out)
    _show_enrich(out)
    _show_lines(out)
    _show_mean(out)
    _show_decompose(out)
    print(f"\nthe catalogue: {out / 'merge'}/clean.fits (and .parquet); file formats: "
          f"{DOCS}/*.md (installed with the package)")
    return 1 if result.n_failures else 0


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


def _show_extract(out: Path) -> None:
    import numpy as np

    from .dataset import open_dataset

    print(f"extract: calibrated sky spectra in {out / 'extract'}")
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


def _show_enrich(out: Path) -> None:
    import numpy as np

    from .dataset import open_dataset

    print(f"enrich: observing conditions in {out / 'enrich'}")
    meta = open_dataset(out).meta
    for name, unit in (("MOON_ALT", "deg"), ("MOON_ILL", ""), ("SUN_ALT", "deg"),
                       ("ZODI", "S10"), ("ISL", "S10"), ("SOLARFLUX", "sfu")):
        values = np.asarray(meta[name], dtype=float)
        print(f"  {name:<10} {np.nanmin(values):8.2f} to {np.nanmax(values):8.2f} {unit}")


def _show_lines(out: Path) -> None:
    import numpy as np

    from .dataset import open_dataset

    print(f"lines: line strengths, continuum bands, sky magnitudes in {out / 'lines'}")
    meta = open_dataset(out).meta
    for name, unit in (("OI5577_FLUX", "1e-17 erg/s/cm2"), ("OI6300_FLUX", "1e-17 erg/s/cm2"),
                       ("NAD_FLUX", "1e-17 erg/s/cm2"), ("SDSS_G", "mag/arcsec2"),
                       ("SDSS_I", "mag/arcsec2")):
        values = np.asarray(meta[name], dtype=float)
        print(f"  {name:<12} median {np.nanmedian(values):8.2f} {unit}")


def _show_mean(out: Path) -> None:
    import numpy as np

    from .dataset import open_dataset

    print(f"mean: one mean sky spectrum per exposure and camera in {out / 'mean'}")
    means = open_dataset(out).means
    meta = means.meta
    print(f"  {len(meta)} mean spectra from {int(np.min(meta['NFIBERS']))}-"
          f"{int(np.max(meta['NFIBERS']))} good sky fibres each")
    for cam in ("b1", "r1"):
        rows = np.flatnonzero(np.asarray(meta["CAMERA"]).astype(str) == cam)
        if rows.size:
            spec = means.spectrum(int(rows[0]))
            good = spec.good
            print(f"  e.g. plate {meta['PLATE'][rows[0]]} exposure {meta['IMG'][rows[0]]} {cam}:"
                  f" median sky {np.median(spec.FLUX[good]):.2f} x 1e-17 erg/s/cm2/A, median"
                  f" S/N per pixel {np.median(spec.FLUX[good] * np.sqrt(spec.IVAR[good])):.0f}")


def _show_decompose(out: Path) -> None:
    import numpy as np

    from .dataset import open_dataset

    print(f"decompose: airglow lines and continuum of the mean spectra in {out / 'decompose'}")
    dec = open_dataset(out).means.decomposition
    if not len(dec) or "RCHI2" not in dec.colnames:
        print("  no complete decomposition")
        return
    cam = np.char.strip(np.asarray(dec["CAMERA"]).astype(str))
    for arm in ("b", "r"):
        rows = np.char.startswith(cam, arm)
        rchi2 = np.ma.filled(np.ma.asarray(dec["RCHI2"][rows], dtype=float), np.nan)
        nlines = np.ma.filled(np.ma.asarray(dec["NLINES"][rows], dtype=float), np.nan)
        print(f"  {arm} cameras: {int(rows.sum())} spectra, median reduced chi-square "
              f"{np.nanmedian(rchi2):.2f}, {np.nanmedian(nlines):.0f} lines per spectrum")
    for name in ("OI5577", "OI6300", "NAD"):
        col = f"{name}_FLUX"
        values = np.ma.filled(np.ma.asarray(dec[col], dtype=float), np.nan)
        print(f"  {col:<12} median {np.nanmedian(values):8.2f} 1e-17 erg/s/cm2 (of the means)")
    print("  read them with: open_dataset(...).means.decomposition, .means.components(i), "
          ".means.fitted_lines(i)")
