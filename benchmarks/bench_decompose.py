"""Accuracy and speed of the decompose stage against the simulator's truth, with a baseline.

Usage: python benchmarks/bench_decompose.py [--raw RAW --out OUT] [--seed N]

Simulates 2 plates x 3 exposures (noise on), runs extract and mean (in a temporary folder, or
in ``--raw`` / ``--out``, which are kept and reused when OUT/mean exists), then for every mean
spectrum:

* the truth continuum and lines: the plain (unweighted) mean of the sky fibres' truth CONT and
  LINES resampled onto the mean grid;
* continuum error: |mean(model) / mean(truth) - 1| in 10 nm bins over 3650-10300 A (good
  pixels), median over the bins of a spectrum, then median over the spectra of a group;
* line fluxes of [OI] 5577, [OI] 6300, Na D (D1 + D2) and Hg 5461: the truth is the flux of the
  named line(s) in the simulator's line list (``LINES`` HDU of the truth sky file, erg/s/cm2/
  arcsec2 at the telescope) times the fibre area (pi arcsec2) and 1e17, i.e. per fibre in
  1e-17 erg/s/cm2: what the per-fibre truth LINES integrate to (the simulator renders every
  line flux-conserving; checked: the integral of the fibres' truth LINES over a camera equals
  the summed list fluxes times the area within 0.05 %). This replaced an earlier estimate (the
  integral of the mean truth LINES over +-40 A times the named lines' share of the listed
  fluxes in that window), which was biased by the wings of lines inside and outside the window:
  by -0.5 % ([OI] 5577), -0.4 % ([OI] 6300), +1.2 to +1.7 % (Hg 5461) and -4.5 to -5.7 %
  (Na D) on this tree. The table also gives our median statistical error (FLUX_ERR / truth)
  and the mean and rms of error / FLUX_ERR over the spectra of a group (~0 and ~1 for an
  unbiased line with right errors), to tell noise-limited lines from biased ones;
* the baseline (the original approach): each listed line alone in its fixed window (+-SIDE_OUTER
  of data/sky_features.csv), constant + Gaussian fitted there, flux = Gaussian integral,
  continuum = the data with every window replaced by its constant;
* the core width follows the mean spectrum's DISP (``<CAM>_DISP`` of the mean output, the
  extraction's dispersion traceset), its scale fitted once per camera and file, as the stage
  does (``disp_width``, default on);
* the means of one camera and plate are decomposed together as the stage does
  (:func:`skymodelling.stages.decompose.decompose_block`): the profile fitted on the one of
  highest median S/N, then all with it (with ``stack_seeds`` every mean starts from the
  lines of the block's stack);
* speed: the block's time per mean spectrum with the profile fixed (the stage fits it once
  per camera and file), and the profile search itself, one process. Named lines are placed
  with the exposure's HELIO_RV, as the stage does;
* fibre spectra (``--spectra fibres``, about 1,100 here): every sky fibre of the extract
  outputs resampled onto the mean grid as the stage does, decomposed with the profile fitted on
  the mean spectra (:func:`skymodelling.stages.decompose.mean_profiles`): ms per spectrum
  (decompose_spectrum alone, one process), median RCHI2, and [OI] 5577 against the truth.

Groups: Moon below 10 deg ("dark") or above ("moonlit"), blue or red camera.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import decompose_overrides, update_section
from astropy.io import fits
from scipy.optimize import curve_fit

from skymodelling import open_dataset, read_truth
from skymodelling.simulate.instrument import FIBER_AREA_ARCSEC2
from skymodelling.simulate.truth import read_exposures
from skymodelling.spectral.decompose import decompose_spectrum, fit_profile
from skymodelling.spectral.features import load_features
from skymodelling.spectral.resample import loglam_edges, resample_flux
from skymodelling.stages.decompose import (
    _fibre_disp,
    _rescaled,
    _seed_pixels,
    decompose_block,
    fibre_natives,
    mean_profiles,
    mean_seeds,
    named_lines,
    width_curves,
)
from skymodelling.stages.mean import arm_grid
from skymodelling.stages.mean import output_path as mean_output

LINES = {"OI5577": ("OI5577",), "HG5461": ("HG5461",), "NAD": ("NAD1", "NAD2"),
         "OI6300": ("OI6300",)}
#: The same lines in the simulator's line list (NAME column of the truth LINES HDU).
TRUTH_NAMES = {"OI5577": ("[OI]5577",), "HG5461": ("Hg5461",), "NAD": ("NaD1", "NaD2"),
               "OI6300": ("[OI]6300",)}


def _truth_flux(raw, plate, expid, names):
    """Flux (1e-17 erg/s/cm2 per fibre) of the simulator's lines called ``names``."""
    path = Path(raw) / "truth" / f"{plate:04d}" / f"sky-{plate:04d}-{expid:08d}.fits"
    tab = fits.getdata(path, "LINES")
    listed = np.char.strip(np.asarray(tab["NAME"]).astype(str))
    return float(tab["FLUX"][np.isin(listed, names)].sum()) * FIBER_AREA_ARCSEC2 * 1e17


def _baseline(wave, flux, ivar, feats, arm):
    cont = flux.copy()
    fluxes = {}
    for f in feats[(feats["KIND"] == "line") & (feats["CAMERA"] == arm)]:
        w0, side = float(f["WAVE"]), float(f["SIDE_OUTER"])
        m = (np.abs(wave - w0) < side) & (ivar > 0)
        if m.sum() < 8:
            continue

        def model(x, c, a, mu, s):
            return c + a * np.exp(-0.5 * ((x - mu) / s) ** 2)

        try:
            p, _ = curve_fit(model, wave[m], flux[m], sigma=1 / np.sqrt(ivar[m]),
                             p0=(np.median(flux[m]), flux[m].max() - np.median(flux[m]), w0, 1.5),
                             maxfev=2000)
        except RuntimeError:
            continue
        fluxes[str(f["NAME"])] = p[1] * abs(p[3]) * np.sqrt(2 * np.pi)
        cont[np.abs(wave - w0) < side] = p[0]
    fluxes["NAD"] = fluxes.get("NAD", np.nan)
    return cont, fluxes


def _bin_errors(wave, model, truth, good):
    """Signed error mean(model) / mean(truth) - 1 in each 10 nm bin (3650-10300 A)."""
    bins = np.floor(wave / 100.0)
    errs = []
    for b in np.unique(bins[good & (wave > 3650) & (wave < 10300)]):
        m = good & (bins == b)
        if m.sum() >= 20:
            errs.append(model[m].mean() / truth[m].mean() - 1)
    return np.array(errs)


def _cont_error(wave, model, truth, good):
    return float(np.median(np.abs(_bin_errors(wave, model, truth, good))))


#: Regions of the issue's continuum targets (A); the camera ends are added per spectrum.
REGIONS = {"O2 A 755-770": (7550, 7700), "O2 (0-1) 860-870": (8600, 8700),
           "H2O 900-1000": (9000, 10000)}


def _region_errors(wave, model, truth, good):
    """|mean model / mean truth - 1| in the issue's regions and the first and last 20 nm of
    good pixels."""
    lo, hi = wave[good][0], wave[good][-1]
    out = {}
    for name, (a, b) in {**REGIONS, "first 20 nm": (lo, lo + 200),
                         "last 20 nm": (hi - 200, hi)}.items():
        m = good & (wave >= a) & (wave <= b)
        if m.sum() >= 20:
            out[name] = abs(model[m].mean() / truth[m].mean() - 1)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--raw")
    parser.add_argument("--out")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--set", action="append", metavar="NAME=JSON",
                        help="change a decompose setting (experiments; RESULTS.md not written)")
    args = parser.parse_args()
    tmp = None
    if args.raw and args.out:
        raw, out = Path(args.raw), Path(args.out)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="bench-decompose-"))
        raw, out = tmp / "raw", tmp / "out"
    if not (out / "mean").is_dir():     # a new tree (kept when --raw/--out were given)
        from skymodelling.simulate.tree import simulate_tree
        from skymodelling.stages.extract import run_extract
        from skymodelling.stages.mean import run_mean

        simulate_tree(raw, n_plates=2, n_exposures=3, seed=args.seed, workers=2)
        run_extract(raw, out, workers=2)
        run_mean(out, workers=2)
    try:
        cfg = decompose_overrides(args.set)
        rows, times, prof_times = _measure(raw, out, cfg)
        fibres = _measure_fibres(raw, out, cfg)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    _report(rows, times, prof_times, fibres, write=not args.set)


def _measure_fibres(raw, out, cfg):
    """ms, RCHI2 and [OI] 5577 error of every sky-fibre spectrum (profile from the means)."""
    named = named_lines(None)
    ds = open_dataset(out)
    exposures = read_exposures(raw)
    moon = {int(e): float(a)
            for e, a in zip(exposures["EXPID"], exposures["MOON_ALT"], strict=True)}
    recs = []
    for k, path in enumerate(ds.files):
        meta = ds.meta[np.asarray(ds.meta["FILE"]) == k]
        plate, mjd = int(meta["PLATE"][0]), int(meta["MJD"][0])
        profiles = mean_profiles(mean_output(out, plate, mjd), cfg, curves=True)
        # each fibre's line search from the lines of its exposure's mean, as the stage does
        seeds = (mean_seeds(mean_output(out, plate, mjd), cfg, profiles)
                 if cfg.decompose.fibre_seeds else {})
        cams = np.asarray(meta["CAMERA"]).astype(str)
        with fits.open(path) as hdul:
            for cam in sorted(set(cams)):
                sel = np.flatnonzero(cams == cam)
                rows = np.asarray(meta["ROW"])[sel]
                loglam = arm_grid(cam[0], cfg)
                flux, ivar, corr = resample_flux(
                    hdul[f"{cam.upper()}_WAVE"].data[rows].astype(float),
                    hdul[f"{cam.upper()}_FLUX"].data[rows].astype(float),
                    hdul[f"{cam.upper()}_IVAR"].data[rows].astype(float),
                    loglam_edges(loglam), correlation=True)
                nsel = named[np.asarray(named["CAMERA"]).astype(str) == cam[0]]
                # each fibre's own DISP shapes its width, as the stage does
                lsf, lsf_curve = profiles.get(cam, (None, None))
                wave = hdul[f"{cam.upper()}_WAVE"].data[rows].astype(float)
                disp = hdul[f"{cam.upper()}_DISP"].data[rows].astype(float)
                curves = width_curves(loglam, _fibre_disp(wave, disp, loglam), cfg)
                if lsf_curve is None:
                    curves = [None] * len(rows)
                # each fibre's lines as its resampling made them (native_pixels)
                lsf, natives = fibre_natives(lsf, wave, disp, cfg)
                natives = natives or [None] * len(rows)
                fseeds = _seed_pixels(seeds, cam, np.asarray(meta["IMG"])[sel], loglam)
                ftruth = {}
                for img in set(np.asarray(meta["IMG"])[sel].tolist()):
                    tr = read_truth(raw, plate, int(img), cam)
                    ftruth[int(img)] = {int(f): (np.asarray(w), np.asarray(c)) for f, w, c in
                                       zip(tr["FIBERID"], tr["WAVE"], tr["CONT"], strict=True)}
                edges = loglam_edges(loglam)
                for j, i in enumerate(sel):
                    t0 = time.perf_counter()
                    d = decompose_spectrum(loglam, flux[j], ivar[j], arm=cam[0],
                                           config=cfg.decompose, named=nsel,
                                           lsf=_rescaled(lsf, curves[j], lsf_curve),
                                           velocity=float(meta["HELIO_RV"][i]),
                                           width_curve=curves[j], native_wave=natives[j],
                                           seeds=fseeds[j], noise_corr=corr[j])
                    ms = (time.perf_counter() - t0) * 1e3
                    if d.flag & 1:
                        continue
                    rec = {"arm": cam[0], "ms": ms, "rchi2": d.rchi2,
                           "dark": moon[int(meta["IMG"][i])] <= 10}
                    tw, tcont = ftruth[int(meta["IMG"][i])][int(meta["FIB"][i])]
                    tc = resample_flux(tw[None], tcont[None], np.ones_like(tw)[None],
                                       edges)[0][0]
                    err = _bin_errors(10 ** loglam, d.CONT, tc, (ivar[j] > 0) & (tc > 0))
                    rec["cont"] = (float(np.median(err)), float(np.median(np.abs(err))))
                    if cam[0] == "b":
                        f, e = d.named_flux(["OI5577"])
                        truth = _truth_flux(raw, plate, int(meta["IMG"][i]), ["[OI]5577"])
                        rec["oi"] = (f / truth - 1, e / truth)
                    recs.append(rec)
    return recs


def _measure(raw, out, cfg):
    feats = load_features(None)
    named = named_lines(None)
    exposures = read_exposures(raw)
    moon = {int(e): float(a)
            for e, a in zip(exposures["EXPID"], exposures["MOON_ALT"], strict=True)}
    means = open_dataset(out).means
    meta = means.meta
    cams = np.asarray(meta["CAMERA"]).astype(str)
    prof_times = []
    rows, times = [], []
    # the means of each camera and plate decomposed together, as the stage does: the
    # profile fitted on the one of highest median S/N (timed apart), then every mean with
    # it (decompose_block: with stack_seeds every mean starts from the lines of their stack)
    groups = {}
    for i in range(len(meta)):
        groups.setdefault((int(meta["PLATE"][i]), int(meta["MJD"][i]), cams[i]), []).append(i)
    results, row_ms = {}, {}
    for (plate, mjd, cam), idx in groups.items():
        spectra = [means.spectrum(i) for i in idx]
        loglam = np.log10(spectra[0].WAVE)
        flux = np.array([sp.FLUX for sp in spectra], dtype=float)
        ivar = np.array([sp.IVAR for sp in spectra], dtype=float)
        vel = np.array([float(meta["HELIO_RV"][i]) for i in idx])
        sel = named[np.asarray(named["CAMERA"]).astype(str) == cam[0]]
        # the mean DISP of the spectra (mean output), as the stage uses it
        with fits.open(mean_output(out, plate, mjd)) as hdul:
            mrows = [int(meta["ROW"][i]) for i in idx]
            disp = (hdul[f"{cam.upper()}_DISP"].data[mrows]
                    .astype(float) if f"{cam.upper()}_DISP" in hdul else None)
            # the means' noise correlation between neighbouring pixels, as the stage uses it
            corr = (hdul[f"{cam.upper()}_CORR"].data[mrows].astype(float)
                    if f"{cam.upper()}_CORR" in hdul else None)
        curves = width_curves(loglam, disp, cfg)
        snr = [np.median((f * np.sqrt(iv))[iv > 0]) for f, iv in zip(flux, ivar, strict=True)]
        best = int(np.argmax(snr))
        curve = None if curves is None else curves[best]
        t0 = time.perf_counter()
        lsf = fit_profile(loglam, flux[best], ivar[best], arm=cam[0], config=cfg.decompose,
                          named=sel, velocity=float(vel[best]), width_curve=curve)[0]
        prof_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = decompose_block(loglam, flux, ivar, cam[0], cfg, named, vel, lsf=lsf,
                              curves=curves, lsf_curve=curve, noise_corr=corr)
        dt = (time.perf_counter() - t0) / len(idx)
        for i, d in zip(idx, res, strict=True):
            results[i] = d
            row_ms[i] = dt * 1e3
            times.append(dt)
    for i in range(len(meta)):
        row, cam = meta[i], cams[i]
        plate, expid = int(row["PLATE"]), int(row["IMG"])
        s = means.spectrum(i)
        loglam = np.log10(s.WAVE)
        sel = named[np.asarray(named["CAMERA"]).astype(str) == cam[0]]
        d = results[i]
        tr = read_truth(raw, plate, expid, cam)
        edges = loglam_edges(loglam)
        tw = np.asarray(tr["WAVE"])
        one = np.ones_like(tw)
        tc = resample_flux(tw, np.asarray(tr["CONT"]), one, edges)[0].mean(0)
        good = s.good
        base_cont, base_flux = _baseline(s.WAVE, s.FLUX, s.IVAR, feats, cam[0])
        berr = _bin_errors(s.WAVE, d.CONT, tc, good)
        rec = {"group": ("moonlit" if moon[expid] > 10 else "dark", cam[0]),
               "cont": float(np.median(np.abs(berr))),
               "cont_p90": float(np.percentile(np.abs(berr), 90)),
               "cont_signed": float(np.median(berr)),
               "regions": _region_errors(s.WAVE, d.CONT, tc, good),
               "cont_base": _cont_error(s.WAVE, base_cont, tc, good),
               "cont_smooth": _cont_error(s.WAVE, d.CONT_SMOOTH, tc, good),
               "rchi2": d.rchi2, "ms": row_ms[i]}
        for name, parts in LINES.items():
            if not np.all(np.isin(parts, np.asarray(sel["NAME"]).astype(str))):
                continue
            truth = _truth_flux(raw, plate, expid, TRUTH_NAMES[name])
            ours, err = d.named_flux(parts)
            base = (base_flux.get(parts[0], np.nan) + base_flux.get(parts[1], 0.0)
                    if len(parts) == 2 else base_flux.get(parts[0], np.nan))
            rec[name] = (ours / truth - 1, base / truth - 1, err / truth)
        rows.append(rec)
    return rows, times, prof_times


def _report(rows, times, prof_times, fibres, write=True):
    groups = sorted({r["group"] for r in rows})
    lines = ["| condition | camera | spectra | continuum error: CONT | CONT_SMOOTH | baseline | "
             "median RCHI2 |", "|---|---|---|---|---|---|---|"]
    for g in groups:
        rs = [r for r in rows if r["group"] == g]
        lines.append(f"| {g[0]} | {g[1]} | {len(rs)} | "
                     f"{100 * np.median([r['cont'] for r in rs]):.2f} % | "
                     f"{100 * np.median([r['cont_smooth'] for r in rs]):.2f} % | "
                     f"{100 * np.median([r['cont_base'] for r in rs]):.2f} % | "
                     f"{np.median([r['rchi2'] for r in rs]):.1f} |")
    names = ["O2 A 755-770", "O2 (0-1) 860-870", "H2O 900-1000", "first 20 nm", "last 20 nm"]
    lines += ["", "Continuum against the issue's targets (ours, CONT; per spectrum over its 10 nm "
              "bins, then the median over the group's spectra; regions: |error| of the region's "
              "mean):", "",
              "| condition | camera | median \\|error\\| (<= 1 %) | 90th pct (<= 3 %) | "
              "median signed (blue within 0.3 %) | " + " | ".join(names) + " |",
              "|---|---|---|---|---|" + "---|" * len(names)]
    for g in groups:
        rs = [r for r in rows if r["group"] == g]
        reg = []
        for n in names:
            v = [r["regions"][n] for r in rs if n in r["regions"]]
            reg.append(f"{100 * np.median(v):.1f} %" if v else "-")
        lines.append(f"| {g[0]} | {g[1]} | {100 * np.median([r['cont'] for r in rs]):.2f} % | "
                     f"{100 * np.median([r['cont_p90'] for r in rs]):.2f} % | "
                     f"{100 * np.median([r['cont_signed'] for r in rs]):+.2f} % | "
                     + " | ".join(reg) + " |")
    lines += ["", "| line | condition | spectra | median abs error, ours | worst | "
              "our stat. error (median) | mean error / stat. | rms error / stat. | baseline | "
              "worst |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name in LINES:
        for cond in ("dark", "moonlit"):
            v = np.array([r[name] for r in rows if name in r and r["group"][0] == cond])
            if not v.size:
                continue
            lines.append(f"| {name} | {cond} | {len(v)} | {100 * np.median(np.abs(v[:, 0])):.2f} % "
                         f"| {100 * np.max(np.abs(v[:, 0])):.2f} % "
                         f"| {100 * np.median(v[:, 2]):.2f} % "
                         f"| {np.mean(v[:, 0] / v[:, 2]):+.1f} "
                         f"| {np.sqrt(np.mean((v[:, 0] / v[:, 2]) ** 2)):.1f} "
                         f"| {100 * np.median(np.abs(v[:, 1])):.2f} % "
                         f"| {100 * np.max(np.abs(v[:, 1])):.2f} % |")
    t = np.array(times) * 1e3
    tb = [r["ms"] for r in rows if r["group"][1] == "b"]
    tr = [r["ms"] for r in rows if r["group"][1] == "r"]
    speed = (f"Speed (one process): {np.median(t):.0f} ms per mean spectrum with the profile "
             f"fixed (the block's time / its spectra, the stack's decomposition included; "
             f"median; blue {np.median(tb):.0f} ms, red {np.median(tr):.0f} ms; "
             f"{len(t)} spectra), plus {np.median(prof_times) * 1e3:.0f} ms per profile search "
             f"(once per camera and file).")
    text = "\n".join(lines)
    fms = {a: [r["ms"] for r in fibres if r["arm"] == a] for a in "br"}
    oi = np.array([r["oi"] for r in fibres if np.isfinite(r.get("oi", (np.nan,))[0])])
    fib = (f"Fibre spectra (`--spectra fibres`, profile from the means): "
           f"{np.median([r['ms'] for r in fibres]):.0f} ms per spectrum (median; blue "
           f"{np.median(fms['b']):.0f} ms, red {np.median(fms['r']):.0f} ms; mean "
           f"{np.mean([r['ms'] for r in fibres]):.0f} ms; {len(fibres)} spectra); median RCHI2 "
           f"blue {np.median([r['rchi2'] for r in fibres if r['arm'] == 'b']):.2f}, red "
           f"{np.median([r['rchi2'] for r in fibres if r['arm'] == 'r']):.2f}; [OI] 5577: median "
           f"error {100 * np.median(oi[:, 0]):+.2f} %, median abs "
           f"{100 * np.median(np.abs(oi[:, 0])):.2f} %"
           f" (stat. {100 * np.median(oi[:, 1]):.2f} %), pull spread "
           f"{np.std(oi[:, 0] / oi[:, 1]):.2f}; continuum against each fibre's truth "
           f"(median over 10 nm bins, then over fibres; signed / abs): " + "; ".join(
               f"{cond} {arm} {100 * np.median([r['cont'][0] for r in rs]):+.2f} / "
               f"{100 * np.median([r['cont'][1] for r in rs]):.2f} %"
               for cond, dark in (("dark", True), ("moonlit", False)) for arm in "br"
               if (rs := [r for r in fibres if r["arm"] == arm and r["dark"] == dark]))
           + ".")
    print(text)
    print(speed)
    print(fib)
    if not write:
        return
    update_section("decompose", f"""
`python benchmarks/bench_decompose.py`: 2 simulated plates x 3 exposures (noise on, seed 3),
extract + mean, then the means of each camera and plate decomposed together as the stage does
(profile fitted on the one of highest S/N; with `stack_seeds` every mean starts from the lines
of their stack) and compared with the simulator's truth (continuum: the plain mean of the sky
fibres' truth CONT resampled onto the mean grid; lines: the listed flux of the named line(s)
times the fibre area, see the script's docstring).
Continuum error: median over 10 nm bins (3650-10300 A) of |mean model / mean truth - 1|,
median over the spectra of a group. "dark": Moon below 10 deg altitude; "moonlit": Moon at
~47 deg. Named lines placed with the exposure's HELIO_RV. Baseline:
each listed line alone in its fixed window, constant + Gaussian, window replaced by the
constant (the original approach). Targets: continuum <= 1 %, line fluxes within 2 %,
<= 50 ms per spectrum.

{text}

{speed}

{fib}
""")


if __name__ == "__main__":
    main()
