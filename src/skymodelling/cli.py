"""Command line: ``skymodelling <command> ...``.

Each subcommand lives in its own small function; :func:`main` takes ``argv``
so tests call it directly.  Errors from the package are printed on one line
(``skymodelling: error: ...``) with a non-zero exit code, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from . import __version__
from .errors import SkyModellingError
from .stages import registry

log = logging.getLogger("skymodelling")


_positive_int = registry.positive_int
_plates = registry.plate_list


def _cmd_simulate(args) -> int:
    from pathlib import Path

    from .simulate.tree import _check_target, simulate_tree

    _check_target(Path(args.raw))   # a user error is one line, before the start line
    extra = " (+1 per plate rejected from the coadd)" if args.rejected else ""
    print(f"simulating {args.plates} plate(s) x {args.exposures} exposures{extra} into "
          f"{args.raw}; about 0.4 GB per exposure, as real BOSS files", file=sys.stderr,
          flush=True)
    summary = simulate_tree(
        args.raw,
        n_plates=args.plates,
        n_exposures=args.exposures,
        seed=args.seed,
        noiseless=args.noiseless,
        workers=args.workers,
        rejected=args.rejected,
    )
    print(summary.describe())
    return 0


def _cmd_extract_spec(args) -> int:
    from .config import load_config
    from .stages.specfiles import run_extract_specfiles

    summary = run_extract_specfiles(args.dir, args.out, load_config(args.config),
                                    workers=args.workers, strict=args.strict, force=args.force)
    return _report(summary, args.out)


def _cmd_inspect(args) -> int:
    from .io.inspect import describe_file, format_description

    info = describe_file(args.path)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(format_description(info))
    return 0


def _report(summary, out) -> int:
    """Print a stage summary (or a list of them); exit code 1 when problems were recorded."""
    parts = summary if isinstance(summary, list) else [summary]
    for part in parts:
        print(part.describe())
    if any(part.n_failures for part in parts):
        print(f"problems are listed in {out}/failures/", file=sys.stderr)
        return 1
    return 0


def _cmd_stage(args) -> int:
    """Any one stage (``skymodelling extract|enrich|lines|mean|decompose|merge``)."""
    from .config import load_config

    stage = args.stage
    config = stage.configure(load_config(args.config), args)
    run_options = {name: getattr(args, name, None) for name in stage.takes}
    if stage.name == "merge":
        run_options["verbose"] = True
        stage.run(None, args.out, config, force=args.force, **run_options)
        return 0
    summary = stage.run(getattr(args, "raw", None), args.out, config, strict=args.strict,
                        force=args.force, **run_options)
    return _report(summary, args.out)


def _forced(values):
    """``run --force`` alone: every stage; ``--force STAGE [--force STAGE]``: those."""
    if values is None:
        return ()
    return True if "all" in values else tuple(values)


def _add_force(p) -> None:
    p.add_argument("--force", action="store_true",
                   help="redo every output, even those complete and current")


def _cmd_run(args) -> int:
    from .config import load_config
    from .executors import make_executor
    from .pipeline import run_pipeline

    if args.executor != "dask" and (args.scheduler or args.dask_workers):
        raise SkyModellingError("--scheduler and --dask-workers need --executor dask")
    if args.executor != "slurm" and args.jobs:
        raise SkyModellingError("--jobs needs --executor slurm")
    config = load_config(args.config)
    from .pipeline import _stage_range, check_inputs

    check_inputs(args.raw, args.out, _stage_range(args.first, args.last), args.plates)
    with make_executor(args.executor, workers=args.workers, scheduler=args.scheduler,
                       dask_workers=args.dask_workers, jobs=args.jobs) as executor:
        print(f"running {args.first} -> {args.last} on {executor.describe()}; "
              f"log in {args.out}/run.log", flush=True)
        summary = run_pipeline(args.raw, args.out, config, first=args.first, last=args.last,
                               executor=executor, clouds=args.clouds, plates=args.plates,
                               strict=args.strict, force=_forced(args.force),
                               decompose_spectra=args.decompose_spectra)
    print()
    print(summary.describe())
    return 1 if summary.n_failures else 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(args.dir, seed=args.seed, workers=args.workers, n_plates=args.plates,
                    n_exposures=args.exposures)


def _cmd_model(args) -> int:
    from .model import api, predict, spectrum

    if args.model_command == "fit":
        targets = [t for t in args.targets.split(",") if t] if args.targets else None
        model = api.fit_catalogue(args.catalogue, kind=args.kind, targets=targets)
        path = model.save(args.out)
        print(f"fitted {len(model.targets)} target(s) ({args.kind}) -> {path}")
        return 0
    model = api.load_model(args.model)
    values = {c: getattr(args, predict.option_name(c)) for c in predict.CONDITION_NAMES}
    if args.conditions:
        cond = api.read_table(args.conditions)
    elif args.time:
        if args.ra is None or args.dec is None:
            raise SkyModellingError("--time needs --ra and --dec (degrees, J2000)")
        cond = predict.conditions_from_time(args.time, args.ra, args.dec)
    else:
        cond = predict.conditions_from_values(values, airmass=args.airmass, mjd=args.mjd)
    pred = model.predict(cond, kind=args.kind)
    print(predict.format_prediction(model, pred))
    if args.output:
        predict.write_table(args.output, pred)
    if args.spectrum:
        spectra = spectrum.predicted_spectrum(model, cond[:1], kind=args.kind)
        spectrum.write_spectrum(args.spectrum, spectra, cond[:1], model_path=args.model)
        print(f"spectrum ({', '.join(spectra)} arms) -> {args.spectrum}")
    return 0


def _plate_range(text: str) -> tuple[int, int]:
    try:
        first, last = (int(v) for v in text.replace(":", "-").split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a plate range like 3985-4100, got {text}") from None
    return first, last


def _cmd_fetch(args) -> int:
    """``skymodelling fetch`` and ``skymodelling run --fetch`` (docs/fetch.md)."""
    from .config import load_config
    from .fetch.tree import FetchRequest, fetch_tree

    if args.command == "run" and not args.fetch:
        if args.stream or args.delete_raw or args.all or args.plate_range or args.mirror:
            raise SkyModellingError("--stream, --delete-raw, --all, --plate-range and --mirror "
                                    "need --fetch")
        return _cmd_run(args)
    config = load_config(args.config)
    if args.command == "fetch" and args.calibration:
        config = config.replace("extract", calibration=args.calibration)
    request = FetchRequest(release=args.release, plates=args.plates,
                           plate_range=args.plate_range, all=args.all, base_url=args.base_url,
                           workers=args.fetch_workers, mirror=args.mirror,
                           show=sys.stderr.isatty())
    if args.command == "fetch":
        summary = fetch_tree(args.raw, request, config)
        print(summary.describe())
        print(f"tree in {summary.root}: skymodelling run {summary.root} OUT")
        return 1 if summary.failures else 0
    if args.delete_raw and not args.stream:
        raise SkyModellingError("--delete-raw needs --stream")
    if args.stream:
        from .executors import make_executor
        from .fetch.stream import run_streaming

        if args.first != "extract":
            raise SkyModellingError("--stream runs from extract; leave out --from")
        with make_executor(args.executor, workers=args.workers, scheduler=args.scheduler,
                           dask_workers=args.dask_workers) as executor:
            result = run_streaming(args.raw, args.out, request, config, executor=executor,
                                   delete_raw=args.delete_raw, last=args.last,
                                   clouds=args.clouds, strict=args.strict)
        print(result.describe())
        return 1 if (result.fetch.failures or result.n_failures or result.plates_failed) else 0
    fetched = fetch_tree(args.raw, request, config)
    print(fetched.describe(), flush=True)
    args.raw = fetched.root
    if not args.all:
        args.plates = sorted({plate for _, plate, _ in fetched.plates})
    code = _cmd_run(args)
    return max(code, 1 if fetched.failures else 0)


def _cmd_report(args) -> int:
    """``report OUT [-o FILE]`` and ``plot OUT --plate P --mjd M --expid E --camera C``."""
    from .report import plot_spectrum, write_report

    if args.command == "report":
        path = write_report(args.out, args.output)
    else:
        path = plot_spectrum(args.out, args.plate, args.mjd, args.expid, args.camera,
                             fiber=args.fiber, path=args.output)
    print(f"{args.command} written to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skymodelling",
        description="Calibrated night-sky spectra from SDSS-III BOSS sky fibres.",
    )
    parser.add_argument("--version", action="version", version=f"skymodelling {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress in detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("demo", help="simulate a small BOSS tree and run the pipeline on it")
    p.add_argument("dir", nargs="?", default="skymodelling-demo",
                   help="working folder (default: ./skymodelling-demo)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="parallel processes (default: CPUs, at most 4)")
    p.add_argument("--plates", type=_positive_int, default=1,
                   help="plates to simulate (default 1)")
    p.add_argument("--exposures", type=_positive_int, default=2,
                   help="coadded exposures per plate (default 2; each writes about 0.4 GB, "
                        "as real BOSS files are large)")
    p.set_defaults(func=_cmd_demo)

    from .executors import EXECUTORS
    from .pipeline import STAGES

    p = sub.add_parser("run", help="run every stage (extract ... merge) on a BOSS tree",
                       description="Run extract, enrich, lines, mean, decompose and merge in "
                                   "order; each is resumable. Log: OUT/run.log.")
    p.add_argument("raw", help="BOSS reduction tree (RAW/<run2d>/<plate>/...)")
    p.add_argument("out", help="output folder")
    p.add_argument("--from", dest="first", choices=STAGES, default=STAGES[0],
                   help="first stage to run (default extract)")
    p.add_argument("--to", dest="last", choices=STAGES, default=STAGES[-1],
                   help="last stage to run (default merge)")
    p.add_argument("--executor", choices=EXECUTORS, default="process",
                   help="local process pool (default), a Dask cluster, Dask workers as SLURM "
                        "jobs (dask-jobqueue), or serial in this process")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="processes of the local pool (default: CPUs, at most 4)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler address (tcp://host:8786) or scheduler file")
    p.add_argument("--dask-workers", type=_positive_int, default=None, metavar="N",
                   help="without --scheduler: start a local Dask cluster of N processes")
    p.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                   help="with --executor slurm: submit N batch jobs of Dask workers (default 1; "
                        "sizes from jobqueue.slurm in the Dask configuration)")
    p.add_argument("--plates", type=_plates, default=None,
                   help="only these plates (extract and enrich): P1,P2,...")
    p.add_argument("--clouds", default=None, metavar="FILE",
                   help="photometricity table for enrich (see skymodelling enrich)")
    p.add_argument("--decompose-spectra", choices=("mean", "fibres", "both"), default=None,
                   help="what decompose decomposes: the mean spectra (default), every "
                        "sky-fibre spectrum, or both (means first)")
    p.add_argument("--config", default=None, help="JSON configuration file")
    p.add_argument("--strict", action="store_true", help="stop at the first problem")
    p.add_argument("--force", nargs="?", action="append", const="all", metavar="STAGE",
                   choices=(*STAGES, "all"),
                   help="redo outputs even when complete and current: every stage run "
                        "(--force alone) or STAGE (repeatable)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("simulate", help="write a simulated BOSS reduction tree with its truth")
    p.add_argument("raw", help="output folder (must be new or empty)")
    p.add_argument("--plates", type=_positive_int, default=2, help="number of plates (default 2)")
    p.add_argument("--exposures", type=_positive_int, default=3,
                   help="science exposures per plate listed in the spPlate (default 3)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--noiseless", action="store_true",
                   help="no photon or read noise (flux equals the truth exactly)")
    p.add_argument("--no-rejected", dest="rejected", action="store_false",
                   help="leave out the extra exposure per plate that the coadd rejects "
                        "(saves 0.1 GB per plate)")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="parallel processes (default: CPUs, at most 4; the output does not "
                        "depend on it)")
    p.set_defaults(func=_cmd_simulate)

    for stage in registry.STAGES:
        p = sub.add_parser(stage.name, help=stage.help)
        if stage.needs_raw:
            p.add_argument("raw", help="BOSS reduction tree (RAW/<run2d>/<plate>/...)")
        p.add_argument("out", help="output folder" if stage.needs_raw
                       else "output folder of the earlier stages")
        for opt in stage.options:
            p.add_argument(*opt.flags, **opt.kwargs)
        if "workers" in stage.takes:
            p.add_argument("--workers", type=_positive_int, default=1,
                           help="parallel processes")
        p.add_argument("--config", default=None, help="JSON configuration file")
        if stage.name != "merge":
            p.add_argument("--strict", action="store_true", help="stop at the first problem")
        _add_force(p)
        p.set_defaults(func=_cmd_stage, stage=stage)

    p = sub.add_parser("model", help="fit or apply a predictive sky model (docs/model.md)")
    msub = p.add_subparsers(dest="model_command", required=True, metavar="{fit,predict}")
    q = msub.add_parser("fit", help="fit continuum bands and line fluxes against the conditions")
    q.add_argument("catalogue", help="merged catalogue (OUT/merge/clean.fits or .parquet) or any "
                                     "table with PLATE, MJD, IMG, the enrich columns and targets")
    q.add_argument("--out", required=True, help="model file to write (MODEL.json + MODEL.npz)")
    q.add_argument("--kind", choices=("physical", "boosted", "both"), default="both")
    q.add_argument("--targets", default=None, metavar="COL1,COL2",
                   help="target columns (default: every <NAME>_CONT and main <NAME>_FLUX)")
    q.set_defaults(func=_cmd_model)
    q = msub.add_parser("predict", help="predict the sky (with 68%% intervals) for conditions")
    q.add_argument("model", help="model file written by 'model fit'")
    q.add_argument("--conditions", default=None, help="table (FITS/Parquet/CSV) of enrich columns")
    q.add_argument("--time", default=None, help="UTC time (ISO); conditions computed by enrich")
    q.add_argument("--ra", type=float, default=None, help="pointing RA, deg (with --time)")
    q.add_argument("--dec", type=float, default=None, help="pointing Dec, deg (with --time)")
    q.add_argument("--airmass", type=float, default=None, help="sets OBS_ZENITH")
    q.add_argument("--mjd", type=float, default=None,
                   help="TAI MJD of the exposure midpoint: sets TAI-MID (epoch and season)")
    from .model.columns import CONDITION_COLUMNS
    for name, unit, text in CONDITION_COLUMNS:
        q.add_argument("--" + name.lower().replace("_", "-"), type=float, default=None,
                       metavar="X", help=f"{text}{' (' + unit + ')' if unit else ''}")
    q.add_argument("--kind", choices=("physical", "boosted"), default=None,
                   help="default: boosted where fitted")
    q.add_argument("--output", default=None, help="write the predictions (FITS, or CSV)")
    q.add_argument("--spectrum", default=None, metavar="OUT.fits",
                   help="write the predicted spectrum on the camera grids")
    q.set_defaults(func=_cmd_model)

    p = sub.add_parser("fetch", help="download the BOSS files extract needs from the SDSS "
                                     "archive (or check a local mirror)",
                       description="Fetch the platelist, spPlate, spFrame, spCFrame (and "
                                   "spFluxcalib) files of a release's plates into RAW, in "
                                   "parallel, resumable, verified (docs/fetch.md).")
    p.add_argument("raw", help="local tree to fill (RAW/platelist.fits, RAW/<run2d>/<plate>/)")
    p.add_argument("--calibration", choices=("fixed", "exposure"), default=None,
                   help="fixed (default): fetch the reference exposure's files; exposure: "
                        "fetch every exposure's spFluxcalib")
    p.add_argument("--config", default=None, help="JSON configuration file")
    p.add_argument("--plates", type=_plates, default=None, help="these plates: P1,P2,...")
    p.set_defaults(func=_cmd_fetch)
    run_parser = sub.choices["run"]
    run_parser.add_argument("--fetch", action="store_true",
                            help="fetch the plates first (RAW is where they go; "
                                 "docs/fetch.md); --plates, --plate-range or --all")
    run_parser.add_argument("--stream", action="store_true",
                            help="with --fetch: fetch and process one plate at a time")
    run_parser.add_argument("--delete-raw", action="store_true",
                            help="with --stream: delete each plate's raw files after its "
                                 "successful extract")
    run_parser.set_defaults(func=_cmd_fetch)
    for q in (p, run_parser):
        g = q.add_argument_group("archive")
        g.add_argument("--release", default="DR12", help="data release DR9 ... DR17 "
                                                         "(default DR12)")
        g.add_argument("--plate-range", type=_plate_range, default=None, metavar="FIRST-LAST",
                       help="the platelist's plates FIRST to LAST (inclusive)")
        g.add_argument("--all", action="store_true", help="every plate of the platelist")
        g.add_argument("--base-url", default="https://data.sdss.org",
                       help="archive server (default https://data.sdss.org; the files are "
                            "under URL/sas/)")
        g.add_argument("--mirror", default=None, metavar="SAS_BASE_DIR",
                       help="a local SAS mirror read in place (default: $SAS_BASE_DIR when "
                            "set); nothing is copied")
        g.add_argument("--fetch-workers", type=_positive_int, default=4, metavar="N",
                       help="parallel downloads (default 4)")


    p = sub.add_parser("extract-spec", help="extract-format sky spectra from BOSS spec files",
                       description="Each exposure's sky in spec-PLATE-MJD-FIBER.fits files "
                                   "becomes one extract-format spectrum on the camera grids "
                                   "(docs/specfile.md); then run lines, mean --min-fibers 1, "
                                   "decompose on OUT.")
    p.add_argument("dir", help="folder with spec-PLATE-MJD-FIBER.fits[.gz] files (recursive)")
    p.add_argument("out", help="output folder")
    p.add_argument("--workers", type=_positive_int, default=1, help="parallel processes")
    p.add_argument("--config", default=None, help="JSON configuration file")
    p.add_argument("--strict", action="store_true", help="stop at the first problem")
    _add_force(p)
    p.set_defaults(func=_cmd_extract_spec)


    p = sub.add_parser("report", help="one self-contained HTML page of figures of an output "
                                      "folder (docs/report.md)")
    p.add_argument("out", help="output folder of skymodelling run")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="HTML file to write (default OUT/report.html)")
    p.set_defaults(func=_cmd_report)
    p = sub.add_parser("plot", help="draw one spectrum (a mean, or a sky fibre) and its "
                                    "decomposition")
    p.add_argument("out", help="output folder of skymodelling run")
    p.add_argument("--plate", type=int, required=True)
    p.add_argument("--mjd", type=int, required=True)
    p.add_argument("--expid", type=int, required=True, help="exposure number")
    p.add_argument("--camera", required=True, choices=("b1", "b2", "r1", "r2"))
    p.add_argument("--fiber", type=int, default=None,
                   help="a sky fibre's FIBERID (default: the mean spectrum)")
    p.add_argument("-o", "--output", default="spectrum.png", metavar="FILE",
                   help="figure to write, format from the suffix (default spectrum.png)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("inspect", help="say what a file or folder is and what it holds")
    p.add_argument("path", help="a BOSS file (spPlate, spFrame, spCFrame, spFluxcalib, "
                                "platelist), an output of the pipeline (any stage's file, a "
                                "catalogue .fits/.parquet, a .done marker), or a folder (RAW "
                                "or OUT)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        # the terminal gets warnings and the printed summaries; progress detail goes to
        # OUT/run.log (and to the terminal with --verbose)
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(message)s" if not args.verbose else "%(asctime)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except SkyModellingError as exc:
        print(f"skymodelling: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("skymodelling: interrupted", file=sys.stderr)
        return 130
