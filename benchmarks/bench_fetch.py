"""``skymodelling fetch`` over loopback, file verification, and what a DR12 run needs.

Usage: python benchmarks/bench_fetch.py [--raw RAW] [--repeat 2] [--platelist FILE]

Serves a simulated tree (``--raw``, or one simulated now: 1 plate x 1 exposure) under the
DR12 SAS layout from a local HTTP server on 127.0.0.1 (tests/archive_server.py), and times

* :func:`skymodelling.fetch.tree.fetch_tree` of its plate with 1 and 4 parallel downloads
  (each into a fresh folder; the fastest of ``--repeat`` runs counts);
* :func:`skymodelling.fetch.download.verify_file` alone on every fetched file (the CPU
  cost per byte that every download pays, whatever the network).

Loopback is not the internet: these rates are an upper bound set by this machine's CPU and
disk, not by any network. The DR12 estimate then takes the real DR12 platelist
(``../shared/reference/platelist.fits`` of the development workspace, or ``--platelist``):
the number of coadded camera-frames (sum of NEXP), the plates, and the sizes of the files
as written by the simulator (which match the SAS's: spCFrame ~75 MB, spFrame ~26-30 MB
gzipped, spPlate ~111 MB), and gives the disk and the transfer time at a few link speeds.
Results go to the section "fetch" of benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _results import update_section

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from archive_server import ArchiveServer, archive_layout  # noqa: E402

from skymodelling.fetch.download import verify_file  # noqa: E402
from skymodelling.fetch.tree import FetchRequest, fetch_tree  # noqa: E402

# ../shared of the development workspace (found above a git worktree too)
REFERENCE = next((d / "shared" / "reference" / "platelist.fits" for d in HERE.parents[1:]
                  if (d / "shared" / "reference" / "platelist.fits").is_file()),
                 HERE.parents[1] / "shared" / "reference" / "platelist.fits")
LINKS_MB_S = (10, 50, 100, 300)


def _fetch(url: str, plates, dest: Path, workers: int) -> tuple[float, int, int]:
    if dest.exists():
        shutil.rmtree(dest)
    t0 = time.perf_counter()
    s = fetch_tree(dest, FetchRequest(plates=plates, base_url=url, workers=workers,
                                      show=False))
    seconds = time.perf_counter() - t0
    if s.failures:
        raise RuntimeError("\n".join(s.failures))
    return seconds, s.n_bytes, s.n_downloaded


def _sizes(raw: Path) -> dict[str, float]:
    """Mean file size (MB) per product in a tree."""
    out = {}
    for product, pattern in (("spFrame", "spFrame-*.fits.gz"), ("spCFrame", "spCFrame-*.fits"),
                             ("spFluxcalib", "spFluxcalib-*.fits.gz"),
                             ("spPlate", "spPlate-*.fits")):
        files = list(raw.glob(f"v*/[0-9]*/{pattern}"))
        out[product] = sum(f.stat().st_size for f in files) / len(files) / 1e6
    return out


def _dr12(platelist: Path, sizes: dict[str, float]) -> str:
    from astropy.table import Table

    t = Table.read(platelist, hdu=1)
    nexp = int(t["NEXP"].sum())
    n_plates = len(t)
    fixed = nexp * (sizes["spFrame"] + sizes["spCFrame"]) + n_plates * sizes["spPlate"]
    exposure = fixed + nexp * sizes["spFluxcalib"]
    per_plate = t["NEXP"] * (sizes["spFrame"] + sizes["spCFrame"]) + sizes["spPlate"]
    largest = float(per_plate.max())
    ref = float(per_plate[t["PLATE"] == 3985].sum())      # kept: the fixed calibration
    rows = [f"| {mb} MB/s | {fixed / mb / 3600:.0f} h ({fixed / mb / 86400:.1f} days) |"
            for mb in LINKS_MB_S]
    return (
        f"DR12 (`{platelist.name}`: {n_plates} plate-MJDs, {nexp} coadded camera-frames = "
        f"sum of NEXP), files as fetched (spPlate, spFrame and spCFrame of every coadded "
        f"camera-frame; the reference exposure's 4 spFluxcalib are negligible):\n\n"
        f"| | disk |\n|---|---|\n"
        f"| whole tree, `--calibration fixed` (default) | **{fixed / 1e6:.2f} TB** |\n"
        f"| whole tree, `--calibration exposure` (+ every spFluxcalib) | "
        f"{exposure / 1e6:.2f} TB |\n"
        f"| `--stream --delete-raw`: raw files on disk at any time (largest plate, "
        f"NEXP {max(t['NEXP'])}) plus the reference plate 3985, which is kept "
        f"({ref / 1e3:.1f} GB) | {(largest + ref) / 1e3:.1f} GB |\n\n"
        f"Transfer time of the whole tree (fixed) at a sustained link speed (assumed speeds, "
        f"not measured: the SAS and your network decide):\n\n"
        f"| link | time |\n|---|---|\n" + "\n".join(rows) + "\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=None, help="simulated tree (default: simulate)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--platelist", type=Path, default=REFERENCE)
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-fetch-"))
    try:
        raw = args.raw
        if raw is None:
            from skymodelling.simulate.tree import simulate_tree

            raw = work / "raw"
            simulate_tree(raw, n_plates=1, n_exposures=1, seed=7, noiseless=True)
        archive_layout(raw, work / "srv")
        from astropy.table import Table

        plates = sorted({int(p) for p in Table.read(raw / "platelist.fits")["PLATE"]
                         if (raw / "v5_7_0" / f"{int(p):04d}").is_dir()})
        results = {}
        with ArchiveServer(work / "srv") as server:
            for _ in range(args.repeat):
                for workers in (1, 4):
                    r = _fetch(server.url, plates, work / f"dl{workers}", workers)
                    if workers not in results or r[0] < results[workers][0]:
                        results[workers] = r
        files = [p for p in (work / "dl4").rglob("*") if p.is_file()]
        t0 = time.perf_counter()
        for p in files:
            verify_file(p)
        t_verify = time.perf_counter() - t0
        n_bytes = sum(p.stat().st_size for p in files)
        sizes = _sizes(raw)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mb = results[1][1] / 1e6
    lines = [
        f"`python benchmarks/bench_fetch.py`: plates {', '.join(map(str, plates))} of a "
        f"simulated tree served under the DR12 SAS layout by a local HTTP server on 127.0.0.1; "
        f"{results[1][2]} files, {mb:.0f} MB per fetch (fastest of {args.repeat}). "
        "**Loopback is not the internet**: these are this machine's CPU/disk limits (server, "
        "client and verification share its cores), an upper bound for a real link.",
        "",
        "| measurement | time (s) | MB/s |",
        "|---|---|---|",
    ]
    for workers in (1, 4):
        s, b, _ = results[workers]
        lines.append(f"| `fetch_tree`, {workers} parallel download(s), verified | {s:.2f} | "
                     f"{b / 1e6 / s:.0f} |")
    lines.append(f"| `verify_file` alone on the {len(files)} files (gzip CRC + every FITS HDU) "
                 f"| {t_verify:.2f} | {n_bytes / 1e6 / t_verify:.0f} |")
    lines += ["", "Simulated file sizes (MB, mean): " + ", ".join(
        f"{k} {v:.1f}" for k, v in sizes.items()) + ".", ""]
    if args.platelist.is_file():
        lines.append(_dr12(args.platelist, sizes))
    else:
        lines.append(f"(no DR12 estimate: {args.platelist} not found)")
    body = "\n".join(lines)
    print(body)
    update_section("fetch", body)


if __name__ == "__main__":
    main()
