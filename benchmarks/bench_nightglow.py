"""The nightglow forest template: built from real BOSS sky, checked on nights it did not see.

Usage: python benchmarks/bench_nightglow.py [--spec-dir DIR] [--write-template] [--no-write]

Real BOSS sky holds, besides the lines decompose fits one by one, a forest of faint emission
repeated in every exposure: in the blue the O2 Herzberg / Chamberlain bands (3650-4400 A) and
more at 5000-6300 A, in the red the unresolved faint OH lines between the bright ones. Neither
a line list nor a smooth continuum holds it, and decompose's residual on the real spec files
was 6.4 % (blue) and 6.9 % (red) of the data (RESULTS.md, "realsky").

The template of an arm is made from the spec files in ``--spec-dir`` (default
../shared/realsky or $SKYMODELLING_SHARED/realsky), as follows:

1. every exposure of the arm decomposed without a template (as the decompose stage does a mean
   output, :func:`skymodelling.stages.decompose.decompose_block`);
2. its residual data - CONT - LINES (plus the template's own part, LINES' ``GLOW``, in later
   rounds), pixels within 4 grid pixels of a line fitted at S/N > 5 or named, within 8 of a
   masked pixel (the spec files mask the core of [OI] 5577) and within 40 of the ends of
   the exposure's good pixels left out (a line's profile mismatch scales with the line, not
   with the forest; the camera ends are the continuum's edge), put on a fixed grid of
   topocentric vacuum wavelengths (the grid x (1 + HELIO_RV / c): the forest is at rest in
   the atmosphere);
3. the median over exposures per pixel (in flux units, 1e-17 erg/s/cm2/A per fibre), minus
   its lower envelope (the running minimum over 41 pixels, smoothed over 41), clipped at 0:
   the emission above the darkest points between the features; pixels no exposure saw and
   the configured emission bands (``bands``, O2 (0-1): a component of their own) are 0;
4. steps 2-3 twice more with the exposures decomposed with the new template.

The result is normalised to mean 1 over the arm's cover. decompose fits it times a coarse
spline (``nightglow``, ``nightglow_knot_spacing``; docs/decompose.md) as an airglow
component of LINES. ``--write-template`` builds it from all files and writes
``src/skymodelling/data/nightglow_forest.csv`` (vacuum WAVE, B, R).

Measured, and printed: two-fold cross-validation by night (the files sorted by MJD, the even
ones against the odd ones and back; each file is one or two nights): the template made from
one half, the other half decomposed without and with it, per arm the median over spectra of
the median |data - model| / data over the camera and per 25 nm bin (as bench_realsky), the
median RCHI2, the fitted continuum's flux with / without the template, and the ms per
spectrum (one thread). RESULTS.md's section "nightglow" is rewritten unless ``--no-write``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_erosion, minimum_filter1d, uniform_filter1d
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).parent))
from _results import decompose_overrides, realsky_dir, update_section  # noqa: E402
from bench_realsky import BIN_A, spectrum_metrics  # noqa: E402

from skymodelling import __version__  # noqa: E402
from skymodelling.io.specfile import find_specfiles, read_specfile  # noqa: E402
from skymodelling.spectral import decompose as dec  # noqa: E402
from skymodelling.spectral.decompose import NIGHTGLOW, NOFIT  # noqa: E402
from skymodelling.stages.decompose import decompose_block, named_lines, width_curves  # noqa: E402
from skymodelling.stages.mean import arm_grid  # noqa: E402
from skymodelling.stages.specfiles import exposure_on_grid  # noqa: E402

C_KMS = 299792.458
#: the template's grid: 1e-4 dex from 3467 A to 10691 A, vacuum, topocentric
TEMPLATE_LOGLAM = 3.54 + 1e-4 * np.arange(4890)
LINE_SNR = 5.0          # lines above this S/N are left out of the stack ...
LINE_PIXELS = 4         # ... within this many grid pixels of their centre (named: all)
MASK_PIXELS = 8         # ... and pixels this close to masked ones (the [OI] 5577 core)
EDGE_PIXELS = 40        # ... and to the ends of the exposure's good pixels
ENVELOPE = 41           # pixels of the lower envelope's running minimum and smoothing
ROUNDS = 3              # stacks: one without a template, two with the previous one
TEMPLATE_PATH = (Path(__file__).resolve().parents[1] / "src" / "skymodelling" / "data"
                          / "nightglow_forest.csv")


def load(files, config):
    """Per file and camera: the exposures on the arm grid (FLUX, IVAR, DISP, velocity)."""
    grids = {arm: arm_grid(arm, config) for arm in "br"}
    out = []
    for k, path in enumerate(files):
        spec = read_specfile(path)
        for cam in spec.cameras():
            exps = [e for e in spec.exposures if e.camera == cam]
            on = [exposure_on_grid(e, grids[cam[0]]) for e in exps]
            out.append({"file": k, "arm": cam[0], "loglam": grids[cam[0]],
                        "flux": np.array([g["FLUX"] for g in on], float),
                        "ivar": np.array([g["IVAR"] for g in on], float),
                        "disp": np.array([g["DISP"] for g in on], float),
                        "vel": np.array([float(e.header.get("HELIO_RV", 0.0)) for e in exps]),
                        "native": [e.wave for e in exps]})
    return out


class _Templates:
    """The templates decompose sees during this script (instead of the bundled table)."""

    def __init__(self):
        self.columns = {}

    def __call__(self, arm, wave):
        t = self.columns.get(arm)
        if t is None:
            return None
        return np.interp(wave, 10.0 ** TEMPLATE_LOGLAM, t, left=0.0, right=0.0)


TEMPLATES = _Templates()


def fit(blocks, config, glow: bool):
    """(block, results, seconds) of every block, with or without the template."""
    arm_cfg = dataclasses.replace(config.decompose,
                                  nightglow=("b", "r") if glow else ())
    cfg = dataclasses.replace(config, decompose=arm_cfg)
    named = named_lines(cfg.lines.line_list)
    out = []
    for b in blocks:
        t0 = time.perf_counter()
        res = decompose_block(b["loglam"], b["flux"], b["ivar"], b["arm"], cfg, named,
                              b["vel"], curves=width_curves(b["loglam"], b["disp"], cfg),
                              native_waves=b["native"])
        out.append((b, res, time.perf_counter() - t0))
    return out


def _column_median(rows) -> np.ndarray:
    """Median over rows of each column, NaN ignored (NaN where a column has none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # all-NaN columns
        return np.nanmedian(np.array(rows, dtype=float), axis=0)


def stack(fits, bands=()) -> np.ndarray:
    """Step 2-3 of the module's recipe on the fits of one arm; 0 within the emission
    ``bands`` ((name, lo, hi) Angstrom), which are components of their own."""
    rows = []
    for b, results, _ in fits:
        wave = 10.0 ** b["loglam"]
        for f, iv, r, v in zip(b["flux"], b["ivar"], results, b["vel"], strict=True):
            if r.flag & NOFIT:
                continue
            x = f - r.CONT - r.LINES + (r.GLOW if r.GLOW is not None else 0.0)
            good = binary_erosion(iv > 0, np.ones(2 * MASK_PIXELS + 1, bool))
            idx = np.flatnonzero(iv > 0)
            good[:idx[0] + EDGE_PIXELS] = good[max(idx[-1] - EDGE_PIXELS, 0):] = False
            snr = r.flux / np.where(r.flux_err > 0, r.flux_err, np.inf)
            centres = r.centre[(snr > LINE_SNR) | (r.name != "")]
            if centres.size:
                nearest = np.abs(np.arange(wave.size)[:, None] - np.sort(centres)[None, :])
                good &= nearest.min(axis=1) > LINE_PIXELS
            rows.append(np.interp(TEMPLATE_LOGLAM, np.log10(wave * (1.0 + v / C_KMS)),
                                  np.where(good, x, np.nan), left=np.nan, right=np.nan))
    med = _column_median(rows)
    seen = np.isfinite(med)
    med = np.where(seen, med, 0.0)
    base = uniform_filter1d(minimum_filter1d(med, ENVELOPE), ENVELOPE)
    t = np.where(seen, np.clip(med - base, 0.0, None), 0.0)
    twave = 10.0 ** TEMPLATE_LOGLAM
    for _, lo, hi in bands:
        t[(twave >= lo) & (twave <= hi)] = 0.0
    return t / np.mean(t[seen]) if np.any(t[seen] > 0) else t


def build(blocks, config) -> dict:
    """The template of each arm from ``blocks`` (:func:`stack`, :data:`ROUNDS` rounds)."""
    TEMPLATES.columns.clear()
    out = {}
    for rnd in range(ROUNDS):
        fits = fit(blocks, config, glow=rnd > 0)
        out = {arm: stack([f for f in fits if f[0]["arm"] == arm], config.decompose.bands)
               for arm in "br"}
        TEMPLATES.columns.update(out)
    return out


def measure(fits, arm):
    """Median |d-m|/d over the camera and per bin, RCHI2, CONT sums, ms per spectrum."""
    rel, relall, rchi2, cont, glow = [], [], [], [], []
    seconds, n = 0.0, 0
    bins = None
    for b, results, dt in fits:
        if b["arm"] != arm:
            continue
        wave = 10.0 ** b["loglam"]
        bins = np.arange(np.floor(wave[0] / BIN_A) * BIN_A, wave[-1] + BIN_A, BIN_A)
        seconds += dt
        n += len(results)
        for f, iv, r in zip(b["flux"], b["ivar"], results, strict=True):
            if r.flag & NOFIT:
                continue
            rb, _, ra, _ = spectrum_metrics(wave, f, iv > 0, r, bins)
            rel.append(rb)
            relall.append(ra)
            rchi2.append(r.rchi2)
            cont.append(float(np.sum(r.CONT)))
            glow.append(r.bands.get(NIGHTGLOW, (0.0, 0.0))[0])
    per_bin = _column_median(rel)
    return {"bins": bins, "rel": per_bin, "relall": float(np.median(relall)),
            "rchi2": float(np.median(rchi2)), "cont": np.array(cont), "glow": np.array(glow),
            "ms": 1e3 * seconds / max(n, 1), "n": n}


def cross_validate(blocks, files, config):
    """Two folds by night: (label, held-out file names, arm, without, with) measurements on
    the held-out files."""
    order = np.argsort([read_mjd(p) for p in files])
    halves = (set(order[0::2].tolist()), set(order[1::2].tolist()))
    out = []
    for k, (train, test) in enumerate((halves, halves[::-1])):
        build([b for b in blocks if b["file"] in train], config)
        held = [b for b in blocks if b["file"] in test]
        without, with_ = fit(held, config, glow=False), fit(held, config, glow=True)
        names = ", ".join(files[i].name for i in sorted(test))
        for arm in "br":
            out.append((f"fold {k + 1}", names, arm,
                        measure(without, arm), measure(with_, arm)))
    return out


def read_mjd(path) -> int:
    return int(Path(path).name.split("-")[2])


def write_template(columns, files, path=TEMPLATE_PATH):
    """The bundled table: comment lines (provenance), then WAVE,B,R."""
    wave = 10.0 ** TEMPLATE_LOGLAM
    keep = (columns["b"] > 0) | (columns["r"] > 0)
    lo, hi = np.flatnonzero(keep)[[0, -1]]
    head = [
        "# skymodelling nightglow forest template (docs/decompose.md, 'The nightglow forest')",
        f"# made by benchmarks/bench_nightglow.py, skymodelling {__version__}, "
        f"{time.strftime('%Y-%m-%d')}",
        "# from the per-exposure sky of real SDSS-III BOSS spec files (plate 7338): "
        + " ".join(Path(p).name for p in files),
        "# WAVE: vacuum wavelength (Angstrom, topocentric), 1e-4 dex steps;",
        "# B, R: the faint emission that decompose's lines and continuum leave in real sky,",
        "# above its lower envelope, median over exposures; arbitrary units (mean 1 over the",
        "# arm's cover); 0 where lines fitted at S/N > 5 are or no exposure reached.",
        "WAVE,B,R"]
    body = [f"{wave[i]:.3f},{columns['b'][i]:.4g},{columns['r'][i]:.4g}"
            for i in range(lo, hi + 1)]
    tmp = Path(path).with_suffix(".csv.tmp")
    tmp.write_text("\n".join(head + body) + "\n")
    tmp.replace(path)


def report(cv) -> str:
    lines = ["Two-fold cross-validation by night on the real spec files (template made from "
             "one half of the files, measured on the other; one thread):", "",
             "| fold | arm | spectra | median \\|d-m\\|/d without | with | RCHI2 without | with "
             "| CONT with / without (median) | ms per spectrum without | with |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    held = {}
    for label, names, arm, a, b in cv:
        held[label] = names
        ratio = float(np.median(b["cont"] / a["cont"]))
        lines.append(f"| {label} | {arm} | {a['n']} | {a['relall']:.4f} | {b['relall']:.4f} | "
                     f"{a['rchi2']:.2f} | {b['rchi2']:.2f} | {ratio:.3f} | {a['ms']:.0f} | "
                     f"{b['ms']:.0f} |")
    lines += [""] + [f"Held out in {label}: {names}." for label, names in held.items()]
    for arm in "br":
        rows = [(a, b) for _, _, ar, a, b in cv if ar == arm]
        bins = rows[0][0]["bins"]
        lines += ["", f"Per 25 nm bin, arm {arm}: median \\|d-m\\|/d on the held-out files, "
                  "without / with the template (fold 1, fold 2):", "",
                  "| bin (A) | fold 1 without | with | fold 2 without | with |",
                  "|---|---|---|---|---|"]
        for j in range(bins.size - 1):
            vals = [x["rel"][j] for pair in rows for x in pair]
            if not np.any(np.isfinite(vals)):
                continue
            lines.append(f"| {bins[j]:.0f}-{bins[j + 1]:.0f} | "
                         + " | ".join(f"{v:.4f}" for v in vals) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec-dir", default=str(realsky_dir()))
    parser.add_argument("--write-template", action="store_true",
                        help="build the template from all files and write the bundled table")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--set", action="append", metavar="NAME=JSON",
                        help="change a decompose setting (experiments; RESULTS.md not written)")
    args = parser.parse_args()
    files = find_specfiles(args.spec_dir)
    if not files:
        raise SystemExit(f"{args.spec_dir}: no spec files")
    config = decompose_overrides(args.set)
    dec.nightglow_template = TEMPLATES       # the templates of this script, not the bundled
    t0 = time.perf_counter()
    with threadpool_limits(limits=1):
        blocks = load(files, config)
        if args.write_template:
            write_template(build(blocks, config), files)
            print(f"wrote {TEMPLATE_PATH}")
        cv = cross_validate(blocks, files, config)
    body = report(cv)
    print(body)
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")
    if not (args.no_write or args.set):
        update_section("nightglow", body + "\n\n" + NOTES)


NOTES = """\
The continuum is lower with the template (the ratio column): the forest's emission above its
lower envelope is airglow (LINES), not continuum; what lies below the envelope (unresolved
emission too, but indistinguishable from a continuum at this resolution) stays CONT."""


if __name__ == "__main__":
    main()
