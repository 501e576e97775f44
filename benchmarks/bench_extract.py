"""Time and check ``extract``: speed against the original algorithm and a bare read,
peak memory per plate, and accuracy against the simulator's truth.

Usage: python benchmarks/bench_extract.py [--plates 2] [--exposures 3] [--keep DIR]
                                          [--original-frames 4] [--repeats 3]

In one run it

1. simulates a tree (default 2 plates x 3 exposures, seed 1, noise on) and a
   noiseless tree (1 plate x 2 exposures, seed 2) in a temporary folder (or in
   ``--keep DIR``, where existing trees are reused and new ones are kept);
2. times ``run_extract(raw, out, Config(), workers=1)`` into a fresh folder;
3. times a reference implementation of the original SkyModelling algorithm
   (spframe_flux.py, 2018 version, as described in the data-model notes
   section 4; SPPIXMASK decoded per pixel in Python as util/bitmask.py did) on
   the first ``--original-frames`` camera-frames;
4. times the bare read of the inputs ``extract`` reads (spFrame HDUs 0-6
   decompressed in memory as ``open_fits`` does, spCFrame HDU2 rows of the sky
   fibres, the exposure's spFluxcalib rows (the default reads them for the telluric
   bands); separately the reference-calibration inputs);
5. measures the peak memory of ``extract_plate`` for one plate in a fresh
   subprocess (VmHWM; the reference calibration is loaded by the parent);
6. compares the noiseless tree's extracted spectra with the truth, with the
   fixed reference calibration (default) and with ``--calibration exposure``.

(2) and (4) are repeated ``--repeats`` times (interleaved) and the medians are
used. Figures are printed and recorded in benchmarks/RESULTS.md, section
"extract".
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import update_section
from astropy.io import fits

import skymodelling
from skymodelling.config import Config
from skymodelling.io import paths, sppixmask
from skymodelling.io.fitsutil import open_fits
from skymodelling.io.plugmap import is_sky
from skymodelling.io.spplate import read_spplate
from skymodelling.simulate.tree import simulate_tree
from skymodelling.stages.extract import discover_plates, load_reference, run_extract

TARGET_VS_ORIGINAL = 100.0   # ours / original, spectra per second
TARGET_VS_BARE = 2.0         # ours time / bare-read time
TARGET_ACCURACY = 0.005      # median |relative error|, noiseless tree, fixed calibration
BADFLUXFACTOR = sppixmask.bitmask("BADFLUXFACTOR")

# ------------------------------------------------------------------ trees


def _tree(folder: Path, n_plates: int, n_exposures: int, seed: int, noiseless: bool) -> tuple:
    """Simulate a tree into ``folder`` unless one is already there; (seconds, reused)."""
    if (folder / "platelist.fits").is_file():
        return 0.0, True
    t0 = time.perf_counter()
    simulate_tree(folder, n_plates=n_plates, n_exposures=n_exposures, seed=seed,
                  noiseless=noiseless, workers=min(os.cpu_count() or 1, 4))
    return time.perf_counter() - t0, False


def _frames(raw: Path) -> list[tuple[Path, str, int]]:
    """(plate folder, camera, expid) of every camera-frame extract reads, in its order."""
    frames = []
    for task in discover_plates(raw):
        if task.spplate is None:
            continue
        sp = read_spplate(task.spplate)
        for camera, expid in sorted({(e.camera, e.expid) for e in sp.exposures}):
            frames.append((task.folder, camera, expid))
    return frames


# ------------------------------------------------------------ our extract


def _time_ours(raw: Path, scratch: Path, config: Config) -> tuple[float, int]:
    out = Path(tempfile.mkdtemp(prefix="out-", dir=scratch))
    try:
        t0 = time.perf_counter()
        run_extract(raw, out, config, workers=1)
        seconds = time.perf_counter() - t0
        n = sum(len(fits.getdata(p, "META")) for p in (out / "extract").glob("*/sky-*.fits"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return seconds, n


# ------------------------------------------------------------ bare read


def _bare_read_frames(frames) -> tuple[float, int]:
    """Read (no computation) the frame HDUs extract reads, the way it reads them."""
    n = 0
    t0 = time.perf_counter()
    for folder, camera, expid in frames:
        with open_fits(paths.find_frame(folder, "spFrame", camera, expid)) as hdul:
            data = [hdul[i].data for i in range(7)]
            rows = np.flatnonzero(is_sky(data[5]))
            npix = data[0].shape[1]
        with open_fits(paths.find_frame(folder, "spCFrame", camera, expid)) as hdul:
            cmask = np.asarray(hdul[2].section[rows, :npix])
        assert cmask.shape == (rows.size, npix)
        if Config().extract.reads_exposure_calibration:   # the exposure's own spFluxcalib
            with open_fits(paths.find_frame(folder, "spFluxcalib", camera, expid)) as hdul:
                calib = np.asarray(hdul[0].section[rows, :npix])
            assert calib.shape == (rows.size, npix)
        n += rows.size
    return time.perf_counter() - t0, n


def _bare_read_reference(raw: Path, config: Config) -> float:
    """Read the reference exposure's inputs load_reference reads (spFluxcalib HDU0 and
    spFrame HDU3 of each camera)."""
    cfg = config.extract
    t0 = time.perf_counter()
    for camera in paths.CAMERAS:
        name = paths.spfluxcalib_name(camera, cfg.reference_expid)
        calib = sorted(raw.glob(f"*/{cfg.reference_plate:04d}/{name}"))[0]
        with open_fits(calib) as hdul:
            hdul[0].data  # noqa: B018 - reading is the point
        with open_fits(paths.find_frame(calib.parent, "spFrame", camera,
                                        cfg.reference_expid)) as hdul:
            hdul[3].data  # noqa: B018
    return time.perf_counter() - t0


# ----------------------------------------- the original algorithm (reference)

#: util/bitmask.py's SPPIXMASK reverse map: bit offset -> name.
_SPPIXMASK_NAMES = {
    0: "NOPLUG", 1: "BADTRACE", 2: "BADFLAT", 3: "BADARC", 4: "MANYBADCOLUMNS",
    5: "MANYREJECTED", 6: "LARGESHIFT", 7: "BADSKYFIBER", 8: "NEARWHOPPER", 9: "WHOPPER",
    10: "SMEARIMAGE", 11: "SMEARHIGHSN", 12: "SMEARMEDSN", 16: "NEARBADPIXEL", 17: "LOWFLAT",
    18: "FULLREJECT", 19: "PARTIALREJECT", 20: "SCATTEREDLIGHT", 21: "CROSSTALK", 22: "NOSKY",
    23: "BRIGHTSKY", 24: "NODATA", 25: "COMBINEREJ", 26: "BADFLUXFACTOR", 27: "BADSKYCHI",
    28: "REDMONSTER",
}
_ORIGINAL_BAD = ("FULLREJECT", "COMBINEREJ", "BADSKYFIBER", "NOSKY", "BADTRACE", "NOPLUG",
                 "BADFLAT")
_ORIGINAL_LIMITS = {"b": (365.0, 635.0), "r": (565.0, 1040.0)}   # nm
_ORIGINAL_DIFFUSE = 1.027356


def _decode_bitmask(value) -> list:
    """The flag names set in one mask value, bit by bit in Python."""
    names = []
    value = int(value) & 0xFFFFFFFF
    for offset in range(32):
        if (value >> offset) & 1:
            names.append(_SPPIXMASK_NAMES.get(offset, f"1<<{offset}"))
    return names


def _original_calib_vectors(raw: Path, config: Config) -> dict:
    """The original's CalibVector: the reference spFluxcalib HDU0, pixel-indexed by row."""
    cfg = config.extract
    vectors = {}
    for camera in paths.CAMERAS:
        name = paths.spfluxcalib_name(camera, cfg.reference_expid)
        path = sorted(raw.glob(f"*/{cfg.reference_plate:04d}/{name}"))[0]
        with fits.open(path) as hdul:
            vectors[camera] = np.array(hdul[0].data)
    return vectors


def _original_frame(spframe: Path, spcframe: Path, calib_vect) -> tuple:
    """spframe_flux.py for one camera-frame: per fibre and per pixel in Python.

    Returns the outputs and the seconds spent opening and reading the files.
    """
    t0 = time.perf_counter()
    raw_meta, flux_output, wave_output, ivar_output = [], [], [], []
    sp_hdu = fits.open(spframe)
    for hdu in sp_hdu:            # the original touched every HDU it opened
        hdu.data  # noqa: B018
    hdr = sp_hdu[0].header
    camera = hdr["CAMERAS"].strip()
    eflux = sp_hdu[0].data + sp_hdu[6].data      # 0 is the residual, 6 the sky
    plug = sp_hdu[5].data
    fibers = [i for i in range(len(plug)) if plug["OBJTYPE"][i].strip() == "SKY"]
    spc_hdu = fits.open(spcframe)
    ivars = spc_hdu[1].data
    masks = spc_hdu[2].data
    waves = spc_hdu[3].data
    lo, hi = _ORIGINAL_LIMITS[camera[0]]
    npix = eflux.shape[1]
    t_io = time.perf_counter() - t0
    for fiber_id in fibers:
        logwave = waves[fiber_id]
        sky = eflux[fiber_id]
        mask = masks[fiber_id]
        ivar = ivars[fiber_id]
        calib = calib_vect[fiber_id]
        flux_fib, wave_fib, ivar_fib = [], [], []
        for i in range(npix):
            names = _decode_bitmask(mask[i])
            bad = any(name in names for name in _ORIGINAL_BAD)
            dlog = logwave[i] - logwave[i - 1] if i > 0 else logwave[1] - logwave[0]
            rate = 1e-4 / dlog
            c = float(calib[i])
            if bad or c == 0.0:
                value = math.nan
            else:
                value = float(sky[i]) * rate / c * _ORIGINAL_DIFFUSE
            wave = 10.0 ** float(logwave[i]) / 10.0
            if lo < wave < hi:
                flux_fib.append(value)
                wave_fib.append(wave)
                ivar_fib.append(float(ivar[i]))
        raw_meta.append([hdr["PLATEID"], fiber_id + 1, hdr["EXPOSURE"], hdr["TAI-BEG"],
                         hdr["TAI-END"], hdr["RA"], hdr["DEC"], camera, hdr["AIRMASS"],
                         hdr["ALT"], hdr["EXPTIME"]])
        flux_output.append(flux_fib)
        wave_output.append(wave_fib)
        ivar_output.append(ivar_fib)
    sp_hdu.close()
    spc_hdu.close()
    return (raw_meta, flux_output, wave_output, ivar_output), t_io


def _time_original(raw: Path, frames, config: Config) -> tuple[float, float, int]:
    """Seconds in all, seconds opening and reading files, spectra."""
    calib_vectors = _original_calib_vectors(raw, config)   # once per run, as the original
    t0 = time.perf_counter()
    meta, flux, wave = [], [], []
    t_io = 0.0
    for folder, camera, expid in frames:
        got, io_s = _original_frame(paths.find_frame(folder, "spFrame", camera, expid),
                                    paths.find_frame(folder, "spCFrame", camera, expid),
                                    calib_vectors[camera])
        t_io += io_s
        meta += got[0]
        flux += [np.array(f, dtype=np.float32) for f in got[1]]
        wave += [np.array(w) for w in got[2]]
    seconds = time.perf_counter() - t0
    return seconds, t_io, len(meta)


# ------------------------------------------------------------------ memory

#: Run in a fresh process: extract_plate of the first plate; the reference calibration
#: (small) is loaded by the parent and pickled, so that the high-water mark is the plate's.
#: ru_maxrss is not used: on Linux it survives fork + exec, so a child started from this
#: (large) process reports at least the parent's RSS. VmHWM (/proc) belongs to the new
#: process image; it is reset after the imports where the kernel allows it.
_MEMORY_SCRIPT = r"""
import json, pickle, sys
from pathlib import Path
from skymodelling.config import Config
from skymodelling.stages.extract import discover_plates, extract_plate

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])  # kB
    raise KeyError(key)

raw, out, refs_file = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
config = Config()
task = [t for t in discover_plates(raw) if t.spplate is not None][0]
refs = pickle.loads(refs_file.read_bytes())
hwm_imports = status("VmHWM")
try:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current RSS
    reset = True
except OSError:
    reset = False
rss_before = status("VmRSS")
res = extract_plate((task, config, refs, out, True, True))
print(json.dumps({"plate": task.name, "n_spectra": res["n_spectra"], "rss_before_kb": rss_before,
                  "hwm_imports_kb": hwm_imports, "rss_peak_kb": status("VmHWM"),
                  "reset": reset}))
"""


def _memory(raw: Path, scratch: Path, config: Config) -> dict:
    """Peak RSS (VmHWM) of extract_plate for one plate in a fresh process (Linux)."""
    out = Path(tempfile.mkdtemp(prefix="out-mem-", dir=scratch))
    refs_file = out / "refs.pickle"
    refs_file.write_bytes(pickle.dumps(load_reference(raw, config)))
    try:
        proc = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(raw),
                               str(out / "out"), str(refs_file)],
                              capture_output=True, text=True, check=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- accuracy


def _accuracy(raw: Path, scratch: Path, config: Config) -> dict:
    """Median |relative error| of unmasked pixels against the truth, per camera and overall."""
    out = Path(tempfile.mkdtemp(prefix="out-acc-", dir=scratch))
    try:
        run_extract(raw, out, config, workers=1)
        ds = skymodelling.open_dataset(out)
        truths = {}
        errors = {cam: [] for cam in paths.CAMERAS}
        identical = True
        missing = 0
        outliers, badflux = [], []
        for i in range(len(ds)):
            row = ds.meta[i]
            key = (int(row["PLATE"]), int(row["IMG"]), str(row["CAMERA"]))
            if key not in truths:
                t = skymodelling.read_truth(raw, *key)
                truths[key] = {int(f): k for k, f in enumerate(t["FIBERID"])}, t
            index, table = truths[key]
            k = index.get(int(row["FIB"]))
            if k is None:
                missing += 1
                continue
            spec = ds.spectrum(i)
            good = spec.good
            if not good.any():
                continue
            twave = np.asarray(table["WAVE"][k], dtype=np.float64)
            tsky = np.asarray(table["SKY"][k], dtype=np.float64)
            start = int(np.searchsorted(twave, spec.WAVE[0] * (1 - 1e-9)))
            stop = start + spec.WAVE.size
            if stop <= twave.size and np.allclose(twave[start:stop], spec.WAVE, rtol=1e-9,
                                                  atol=0):
                truth = tsky[start:stop]
            else:
                identical = False
                truth = np.interp(spec.WAVE, twave, tsky)
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.abs(spec.FLUX[good] / truth[good] - 1.0)
            keep = np.isfinite(rel)
            errors[key[2]].append(rel[keep])
            # pixels off by > 1%: distance (pixels) to the nearer end of the good span, and
            # whether the spCFrame flagged them BADFLUXFACTOR
            span = np.flatnonzero(good)
            idx = span[keep][rel[keep] > 0.01]
            outliers.append(np.minimum(idx - span[0], span[-1] - idx))
            badflux.append((spec.MASK[idx] & BADFLUXFACTOR) != 0)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    result = {"n_spectra": len(ds), "identical_grids": identical, "missing_truth": missing}
    pooled = []
    for cam in paths.CAMERAS:
        if errors[cam]:
            e = np.concatenate(errors[cam])
            result[cam] = float(np.median(e))
            result[f"n_{cam}"] = int(e.size)
            pooled.append(e)
    allpix = np.concatenate(pooled)
    result["all"] = float(np.median(allpix))
    result["n_all"] = int(allpix.size)
    edge = np.concatenate(outliers)
    result["n_over_1pc"] = int(edge.size)
    result["over_1pc_max_edge"] = int(edge.max()) if edge.size else -1
    result["over_1pc_badflux"] = int(np.concatenate(badflux).sum())
    return result


# -------------------------------------------------------------------- main


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _pct(x: float) -> str:
    """A small relative error as per cent, readable at any magnitude."""
    return f"{100 * x:.1e}%" if x < 1e-4 else f"{100 * x:.3f}%"


def _cams(a: dict) -> str:
    return " / ".join(_pct(a[c]) for c in paths.CAMERAS if c in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", type=int, default=2)
    parser.add_argument("--exposures", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None,
                        help="folder for the simulated trees: reused if present, kept after")
    parser.add_argument("--original-frames", type=int, default=4,
                        help="camera-frames the (slow) original algorithm is timed on: the "
                        "first N in (exposure, camera) order, i.e. by default all four "
                        "cameras of the first exposure")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-extract-"))
    base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-extract-out-"))
    raw = base / f"raw-{args.plates}x{args.exposures}-seed1"
    raw_nl = base / "raw-noiseless-1x2-seed2"
    config = Config()
    try:
        sim_s, reused = _tree(raw, args.plates, args.exposures, 1, False)
        print(f"tree: {raw} ({'reused' if reused else f'simulated in {sim_s:.1f} s'})")
        sim_nl, reused_nl = _tree(raw_nl, 1, 2, 2, True)
        print(f"noiseless tree: {raw_nl} "
              f"({'reused' if reused_nl else f'simulated in {sim_nl:.1f} s'})")
        frames = _frames(raw)
        print(f"{len(frames)} camera-frames listed in the spPlates")

        # (2) and (4), interleaved so that both see the same cache state
        ours, bare, ref_read = [], [], []
        n_ours = n_bare = 0
        for rep in range(args.repeats):
            b, n_bare = _bare_read_frames(frames)
            r = _bare_read_reference(raw, config)
            s, n_ours = _time_ours(raw, scratch, config)
            bare.append(b)
            ref_read.append(r)
            ours.append(s)
            print(f"  repeat {rep + 1}: extract {s:.2f} s, bare read {b:.2f} s "
                  f"(+ reference-calibration inputs {r:.2f} s)")
        t_ours = statistics.median(ours)
        t_bare = statistics.median(bare)
        t_ref = statistics.median(ref_read)
        if n_bare != n_ours:
            print(f"WARNING: bare read saw {n_bare} sky spectra, extract wrote {n_ours}")
        rate_ours = n_ours / t_ours
        rate_bare = n_bare / t_bare
        print(f"our extract: {n_ours} spectra in {t_ours:.2f} s (median of {args.repeats}) "
              f"= {rate_ours:.1f} spectra/s")
        print(f"bare read: {n_bare} spectra in {t_bare:.2f} s = {rate_bare:.1f} spectra/s; "
              f"reference-calibration inputs {t_ref:.2f} s more")

        # (3)
        subset = sorted(frames, key=lambda f: (str(f[0]), f[2], f[1]))[:args.original_frames]
        subset_desc = ", ".join(f"{f.name}/{c}-{e:08d}" for f, c, e in subset)
        t_orig, t_orig_io, n_orig = _time_original(raw, subset, config)
        rate_orig = n_orig / t_orig
        print(f"original algorithm: {n_orig} spectra ({len(subset)} camera-frames: "
              f"{subset_desc}) in {t_orig:.2f} s = {rate_orig:.2f} spectra/s "
              f"({t_orig_io:.2f} s opening/reading files, {t_orig - t_orig_io:.2f} s in the "
              f"per-pixel Python loop); all {n_ours} spectra would take "
              f"~{n_ours / rate_orig:.0f} s")

        speedup = rate_ours / rate_orig
        bare_vs_orig = rate_bare / rate_orig
        vs_bare = t_ours / t_bare
        vs_bare_ref = t_ours / (t_bare + t_ref)
        print(f"ours / original: {speedup:.1f}x (target >= {TARGET_VS_ORIGINAL:.0f}x: "
              f"{_met(speedup >= TARGET_VS_ORIGINAL)}); the bare read alone is "
              f"{bare_vs_orig:.1f}x the original")
        print(f"ours time / bare-read time: {vs_bare:.2f}x (target <= {TARGET_VS_BARE:.0f}x: "
              f"{_met(vs_bare <= TARGET_VS_BARE)}); {vs_bare_ref:.2f}x counting the "
              "reference-calibration inputs in the bare read")

        # (5)
        mem = _memory(raw, scratch, config)
        rss_mb = mem["rss_peak_kb"] / 1024
        rss_before_mb = mem["rss_before_kb"] / 1024
        mem_note = ("" if mem["reset"] else
                    f"; VmHWM could not be reset, {mem['hwm_imports_kb'] / 1024:.0f} MB "
                    "already reached during the imports")
        print(f"peak memory, extract_plate of plate {mem['plate']} ({mem['n_spectra']} spectra) "
              f"in a fresh process: {rss_mb:.0f} MB peak RSS (VmHWM; {rss_before_mb:.0f} MB "
              f"resident after the imports, so {rss_mb - rss_before_mb:.0f} MB for the plate)"
              f"{mem_note}")

        # (6)
        acc = _accuracy(raw_nl, scratch, config)
        acc_exp = _accuracy(raw_nl, scratch, config.replace("extract", calibration="exposure"))
        for label, a in (("fixed", acc), ("exposure", acc_exp)):
            where = (f" ({a['over_1pc_badflux']} flagged BADFLUXFACTOR; all within "
                     f"{a['over_1pc_max_edge']} pixels of an end of the unmasked span)"
                     if a["n_over_1pc"] and label == "fixed" else "")
            print(f"accuracy ({label} calibration, noiseless tree, {a['n_spectra']} spectra, "
                  f"{a['n_all']} unmasked pixels): median |rel. error| {_pct(a['all'])} "
                  f"(b1 / b2 / r1 / r2: {_cams(a)}); {a['n_over_1pc']} pixels off by > 1%"
                  f"{where}; pixel grids identical to truth: {a['identical_grids']}"
                  + (f"; {a['missing_truth']} spectra without truth" if a["missing_truth"]
                     else ""))
        acc_ok = acc["all"] < TARGET_ACCURACY
        print(f"accuracy target < {100 * TARGET_ACCURACY:.1f}% (fixed calibration): "
              f"{_met(acc_ok)}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)

    verdict = (f"Targets: ours/original >= {TARGET_VS_ORIGINAL:.0f}x "
               f"{_met(speedup >= TARGET_VS_ORIGINAL)} ({speedup:.1f}x); ours/bare read <= "
               f"{TARGET_VS_BARE:.0f}x {_met(vs_bare <= TARGET_VS_BARE)} ({vs_bare:.2f}x); "
               f"accuracy < {100 * TARGET_ACCURACY:.1f}% {_met(acc_ok)} ({_pct(acc['all'])}).")
    print(verdict)
    if speedup < TARGET_VS_ORIGINAL:
        why = (f"The {TARGET_VS_ORIGINAL:.0f}x target is out of reach for any implementation "
               f"that reads these files: the bare read alone is only {bare_vs_orig:.1f}x the "
               f"original, whose time is {100 * t_orig_io / t_orig:.0f}% file reading "
               "(astropy's streaming gzip) and the rest its per-pixel Python loop.")
        print(why)
    else:
        why = ""
    share = 100 * acc["n_over_1pc"] / acc["n_all"]
    outl_note = (f" {acc['n_over_1pc']} unmasked pixels ({share:.2f}%) are off by more than 1%,"
                 f" all within {acc['over_1pc_max_edge']} pixels of an end of the spectrum's "
                 f"unmasked span ({acc['over_1pc_badflux']} of them flagged BADFLUXFACTOR in the "
                 "spCFrame, a bit the default mask does not use)."
                 if acc["n_over_1pc"] else " No unmasked pixel is off by more than 1%.")
    update_section("extract", f"""
`python benchmarks/bench_extract.py --plates {args.plates} --exposures {args.exposures}`:
{args.plates} plate(s) x {args.exposures} coadded exposures (seed 1, noise on,
{len(frames)} camera-frames, {n_ours} sky spectra), one worker process. Extract and bare read
are medians of {args.repeats} interleaved repeats; the original is timed once on
{len(subset)} camera-frame(s) ({subset_desc}).

| measurement | time (s) | spectra | spectra/s |
|---|---|---|---|
| our extract (`run_extract`, `Config()`, workers=1) | {t_ours:.2f} | {n_ours} | {rate_ours:.1f} |
| bare read (spFrame HDUs 0-6 via `open_fits`, spCFrame HDU2, spFluxcalib sky rows) \
| {t_bare:.2f} \
| {n_bare} | {rate_bare:.1f} |
| reference-calibration inputs, bare read (once per run) | {t_ref:.2f} | - | - |
| original algorithm (per-pixel Python mask decoding; {t_orig_io:.2f} s of it reading files) \
| {t_orig:.2f} | {n_orig} | {rate_orig:.2f} |

| figure | value | target |
|---|---|---|
| ours / original (spectra/s) | {speedup:.1f}x (bare read / original: {bare_vs_orig:.1f}x) \
| >= {TARGET_VS_ORIGINAL:.0f}x |
| ours time / bare-read time | {vs_bare:.2f}x ({vs_bare_ref:.2f}x with the reference inputs \
in the bare read) | <= {TARGET_VS_BARE:.0f}x |
| peak RSS, `extract_plate` of plate {mem['plate']} ({mem['n_spectra']} spectra), fresh \
process (VmHWM) | {rss_mb:.0f} MB ({rss_before_mb:.0f} MB of it imports) | - |
| median abs. rel. error, fixed calibration, noiseless (all; b1 / b2 / r1 / r2) \
| {_pct(acc['all'])} ({_cams(acc)}) | < {100 * TARGET_ACCURACY:.1f}% |
| same with `--calibration exposure` | {_pct(acc_exp['all'])} ({_cams(acc_exp)}) \
| finding, not a target |

Accuracy: noiseless tree (1 plate x 2 exposures, seed 2, {acc['n_all']} unmasked pixels of
{acc['n_spectra']} spectra) against the simulator's truth SKY; pixel grids identical to the
truth: {acc['identical_grids']}.{outl_note} The per-exposure calibration folds the standard
stars' seeing-dependent fibre losses into the diffuse sky, hence its bias.

{verdict} {why}
""")


if __name__ == "__main__":
    main()
