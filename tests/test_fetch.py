"""skymodelling fetch: archive paths, verified resumable downloads from a loopback archive,
errors per file, streaming with deletion, and a mirror read in place (docs/fetch.md)."""
from __future__ import annotations

import filecmp
import gzip
import importlib.util
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

if importlib.util.find_spec("sdss_access") is None:   # not imported: it rewrites os.environ
    pytest.skip("sdss-access is not installed (pip install '.[fetch]')",
                allow_module_level=True)

from archive_server import ArchiveServer, archive_layout, source_files  # noqa: E402

import skymodelling  # noqa: E402
from skymodelling.cli import main  # noqa: E402
from skymodelling.errors import SkyModellingError  # noqa: E402
from skymodelling.fetch.archive import Archive, mirror_redux, plate_rows  # noqa: E402
from skymodelling.fetch.download import FetchFileError, verify_file  # noqa: E402
from skymodelling.fetch.tree import FetchRequest, fetch_tree  # noqa: E402

SAS = "/sas/dr12/boss/spectro/redux"


@pytest.fixture(autouse=True)
def _free_disk(tmp_path):
    """Downloaded trees are ~0.5 GB each: removed after each test, not left to pytest."""
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


def _wanted(tree) -> set[str]:
    """The files fetch must bring for the noiseless tree's plate: the platelist, the spPlate,
    spFrame + spCFrame of the coadded exposure 114439, and the spFluxcalib of the reference
    exposure (fixed calibration) or of every coadded exposure (exposure), which is the same
    one here; nothing of the rejected exposure 114440."""
    names = {"platelist.fits", "v5_7_0/3985/spPlate-3985-55320.fits"}
    for cam in ("b1", "b2", "r1", "r2"):
        names |= {f"v5_7_0/3985/spFrame-{cam}-00114439.fits.gz",
                  f"v5_7_0/3985/spCFrame-{cam}-00114439.fits",
                  f"v5_7_0/3985/spFluxcalib-{cam}-00114439.fits.gz"}
    return names


def _local(raw) -> set[str]:
    raw = Path(raw)
    return {p.relative_to(raw).as_posix() for p in raw.rglob("*")
            if p.is_file() and p.name != "fetch.json"}


# ---------------------------------------------------------------- paths, selection, checks

def test_archive_paths_follow_the_sas_layout(monkeypatch):
    a = Archive("dr12", base_url="http://127.0.0.1:1/")
    base = "http://127.0.0.1:1/sas/dr12/boss/spectro/redux/"
    assert a.platelist_file().url == base + "platelist.fits"
    assert a.spplate_file("v5_7_0", 3985, 55320).relpath == "v5_7_0/3985/spPlate-3985-55320.fits"
    # exposure ids are zero-padded to 8 digits, plates to 4
    f = a.frame_file("spFrame", "v5_7_0", 266, "r2", 1234)
    assert f.url == base + "v5_7_0/0266/spFrame-r2-00001234.fits.gz"
    # sdss-access's DR12 spCFrame template names the spFrame; the SAS file is not gzipped
    assert (a.frame_file("spCFrame", "v5_7_0", 3985, "b1", 114439).relpath
            == "v5_7_0/3985/spCFrame-b1-00114439.fits")
    assert (a.frame_file("spFluxcalib", "v5_7_0", 3985, "b2", 114439).relpath
            == "v5_7_0/3985/spFluxcalib-b2-00114439.fits.gz")
    assert f.local("/raw") == Path("/raw/v5_7_0/0266/spFrame-r2-00001234.fits.gz")
    # eBOSS releases live under eboss/
    assert Archive("DR17").redux == "dr17/eboss/spectro/redux"
    with pytest.raises(SkyModellingError, match="DR8.*expected one of DR9"):
        Archive("DR8")
    # SAS_BASE_DIR is the user's, not the one sdss-access sets on import
    monkeypatch.delenv("SAS_BASE_DIR", raising=False)
    assert mirror_redux(a) is None
    monkeypatch.setenv("SAS_BASE_DIR", "/global/sas")
    assert mirror_redux(Archive("DR12")) == Path("/global/sas/dr12/boss/spectro/redux")


def test_plate_selection_from_the_platelist():
    t = Table({"PLATE": [3985, 3664, 4055, 266, 3985],
               "MJD": [55320, 55245, 55359, 51630, 55321],
               "RUN2D": ["v5_7_0", "v5_7_0", "v5_7_2", "26    ", "v5_7_0"]})
    assert plate_rows(t) == [("v5_7_0", 3664, 55245), ("v5_7_0", 3985, 55320),
                             ("v5_7_0", 3985, 55321), ("v5_7_2", 4055, 55359)]
    assert plate_rows(t, plates=[4055]) == [("v5_7_2", 4055, 55359)]
    assert plate_rows(t, plate_range=(3700, 4000)) == [("v5_7_0", 3985, 55320),
                                                        ("v5_7_0", 3985, 55321)]
    with pytest.raises(SkyModellingError, match=r"plates \[1, 266\] are not in the platelist"):
        plate_rows(t, plates=[1, 266, 3985])
    with pytest.raises(SkyModellingError, match="exactly one of"):
        FetchRequest(plates=[1], all=True).check()
    with pytest.raises(SkyModellingError, match="first plate is after the last"):
        FetchRequest(plate_range=(5, 1)).check()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["fetch", str(tmp_path / "raw")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["skymodelling: error: give exactly one of --plates, --plate-range, --all"]
    assert main(["run", "raw", str(tmp_path / "out"), "--stream"]) == 2
    assert "--stream, --delete-raw, --all, --plate-range and --mirror need --fetch" in \
        capsys.readouterr().err
    # a server that is not there: the platelist cannot be fetched
    code = main(["fetch", str(tmp_path / "raw"), "--all", "--base-url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) <= 2           # the per-file log line and the final error
    assert err[-1].startswith("skymodelling: error: http://127.0.0.1:9/sas/dr12/boss/spectro/"
                              "redux/platelist.fits: cannot connect")


def test_verify_file_catches_truncated_corrupt_and_bad_checksum(tmp_path):
    good = tmp_path / "x.fits"
    hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.arange(5000.0))])
    hdul.writeto(good, checksum=True)
    verify_file(good, expected_size=good.stat().st_size)
    data = good.read_bytes()
    with pytest.raises(FetchFileError, match="server announced"):
        verify_file(good, expected_size=len(data) + 1)
    short = tmp_path / "short.fits"
    short.write_bytes(data[:-2880 * 2])
    with pytest.raises(FetchFileError, match="not a readable FITS file"):
        verify_file(short)
    flipped = bytearray(data)
    flipped[-2000] ^= 0xFF                       # inside the image data: DATASUM mismatch
    bad = tmp_path / "bad.fits"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(FetchFileError, match="not a readable FITS file.*(?i:checksum|datasum)"):
        verify_file(bad)
    gz = tmp_path / "x.fits.gz"
    gz.write_bytes(gzip.compress(data))
    verify_file(gz)
    raw = bytearray(gz.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    gz.write_bytes(bytes(raw))
    with pytest.raises(FetchFileError, match="gzip stream is incomplete or corrupt"):
        verify_file(gz)


# ---------------------------------------------------------------- a loopback archive

@pytest.fixture(scope="module")
def archive(noiseless_tree, tmp_path_factory):
    """The noiseless simulated tree under the DR12 SAS layout, served on 127.0.0.1."""
    root = tmp_path_factory.mktemp("archive")
    archive_layout(noiseless_tree, root)
    with ArchiveServer(root) as server:
        yield server


def _kill_mid_transfer(args, part_glob: Path, min_bytes: int, timeout=120.0):
    """Run ``python -m skymodelling ARGS``; SIGKILL it once a .part holds >= min_bytes."""
    proc = subprocess.Popen([sys.executable, "-m", "skymodelling", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            parts = [p for p in part_glob.parent.glob(part_glob.name)
                     if p.stat().st_size >= min_bytes]
            if parts:
                return parts
            time.sleep(0.01)
        return []
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_fetch_downloads_verifies_and_resumes_a_killed_transfer(archive, noiseless_tree,
                                                                tmp_path, capsys):
    raw = tmp_path / "raw"
    # slow the spCFrames down so that the kill lands inside one
    archive.throttle("spCFrame", 0.002)
    try:
        parts = _kill_mid_transfer(["fetch", raw, "--plates", "3985", "--base-url",
                                    archive.url, "--fetch-workers", "1"],
                                   raw / "v5_7_0" / "3985" / "spCFrame-*.part", 1 << 21)
    finally:
        archive.throttle(None)
    assert len(parts) == 1, "the transfer was not caught in the middle"
    part = parts[0]
    offset = part.stat().st_size
    name = part.name[:-len(".part")]
    size = (noiseless_tree / "v5_7_0" / "3985" / name).stat().st_size
    assert 0 < offset < size
    assert not (part.parent / name).exists()     # an unverified file never has its name
    before = _local(raw) - {part.relative_to(raw).as_posix()}
    n_requests = len(archive.requests)

    summary = fetch_tree(raw, FetchRequest(plates=[3985], base_url=archive.url, show=False))
    assert summary.failures == []
    assert _local(raw) == _wanted(noiseless_tree)      # no .part left, nothing else fetched
    src = source_files(noiseless_tree)
    for rel in _wanted(noiseless_tree):
        assert filecmp.cmp(raw / rel, src[rel], shallow=False), rel
    # the cut file was resumed with a Range request from where it stopped
    new = archive.requests[n_requests:]
    assert (f"{SAS}/v5_7_0/3985/{name}", f"bytes={offset}-") in new
    fetched = _wanted(noiseless_tree) - before
    expected = sum(src[r].stat().st_size for r in fetched) - offset
    assert summary.n_downloaded == len(fetched)
    assert summary.n_bytes == expected
    # files keep the archive's modification times (seconds)
    assert int((raw / "platelist.fits").stat().st_mtime) == \
        int(src["platelist.fits"].stat().st_mtime)

    record = json.loads((raw / "fetch.json").read_text())
    assert record["skymodelling_version"] == skymodelling.__version__
    assert record["plate_mjds"] == [["v5_7_0", 3985, 55320]]
    assert record["bytes_downloaded"] == expected and record["failures"] == []
    assert record["configuration"]["extract"]["calibration"] == "fixed"

    # a rerun finds everything verified and fetches nothing
    n_requests = len(archive.requests)
    assert main(["fetch", str(raw), "--plates", "3985", "--base-url", archive.url]) == 0
    out = capsys.readouterr().out
    assert "14 files present (0 downloaded, 0.0 MB" in out
    assert len(archive.requests) == n_requests


def test_corrupt_and_missing_files_fail_alone(archive, noiseless_tree, tmp_path, capsys,
                                             caplog):
    redux = Path(archive.root) / SAS.lstrip("/")
    missing = redux / "v5_7_0/3985/spCFrame-b2-00114439.fits"
    corrupt = redux / "v5_7_0/3985/spFrame-r1-00114439.fits.gz"
    good_missing, good_corrupt = missing.readlink(), corrupt.readlink()
    missing.unlink()
    data = bytearray(good_corrupt.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)     # same size, bad deflate/CRC
    corrupt.unlink()
    corrupt.write_bytes(bytes(data))
    raw = tmp_path / "raw"
    try:
        code = main(["fetch", str(raw), "--all", "--base-url", archive.url])
    finally:
        corrupt.unlink()
        corrupt.symlink_to(good_corrupt)
        missing.symlink_to(good_missing)
    assert code == 1
    cap = capsys.readouterr()
    # one log line per file (stderr in the shell; pytest's log capture here)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    url = archive.url + SAS
    expected = {f"skymodelling: error: {url}/v5_7_0/3985/spCFrame-b2-00114439.fits: "
                "not found on the archive (HTTP 404)"}
    expected |= {f"skymodelling: error: {url}/v5_7_0/{p}/spPlate-{p}-{m}.fits: not found on "
                 "the archive (HTTP 404)" for p, m in ((7500, 56700), (7501, 56703),
                                                        (7502, 56706))}
    corrupt_lines = [e for e in errors if e not in expected]
    assert set(errors) - set(corrupt_lines) == expected and len(errors) == 5
    assert len(corrupt_lines) == 1
    assert corrupt_lines[0].startswith(f"skymodelling: error: {url}/v5_7_0/3985/spFrame-r1-"
                                       "00114439.fits.gz: gzip stream is incomplete or corrupt")
    assert "4 plate-MJDs, 12 files present (12 downloaded" in cap.out and "5 failed" in cap.out
    # the other files arrived intact; the bad ones left nothing behind
    src = source_files(noiseless_tree)
    bad = {"v5_7_0/3985/spCFrame-b2-00114439.fits", "v5_7_0/3985/spFrame-r1-00114439.fits.gz"}
    assert _local(raw) == _wanted(noiseless_tree) - bad
    for rel in _local(raw):
        assert filecmp.cmp(raw / rel, src[rel], shallow=False), rel
    # once the archive is right again, a rerun fetches exactly the two files
    n_requests = len(archive.requests)
    summary = fetch_tree(raw, FetchRequest(plates=[3985], base_url=archive.url, show=False))
    assert summary.failures == [] and summary.n_downloaded == 2
    assert sorted(p for p, _ in archive.requests[n_requests:]) == sorted(
        f"{SAS}/{b}" for b in bad)
    assert _local(raw) == _wanted(noiseless_tree)


def _data_of(path):
    """Every HDU's data (tables as plain arrays) of a FITS file."""
    with fits.open(path) as hdul:
        return [None if h.data is None else np.array(h.data) for h in hdul]


def _same_dataset(a: Path, b: Path) -> list[str]:
    """Relative paths of the FITS outputs of two runs; asserts their data are identical."""
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*.fits"))
    assert files == sorted(p.relative_to(b).as_posix() for p in b.rglob("*.fits"))
    for rel in files:
        for x, y in zip(_data_of(a / rel), _data_of(b / rel), strict=True):
            if x is None:
                assert y is None, rel
            elif x.dtype.names:
                for col in x.dtype.names:
                    np.testing.assert_array_equal(x[col], y[col], err_msg=f"{rel} {col}")
            else:
                np.testing.assert_array_equal(x, y, err_msg=rel)
    return files


@pytest.mark.slow      # 12-32 s here: two whole runs of the pipeline
def test_streaming_deletes_raw_files_and_a_mirror_gives_the_same_dataset(
        archive, noiseless_tree, tmp_path, capsys, monkeypatch):
    cfg = tmp_path / "config.json"      # per-exposure calibration: plate 3985 is then
    cfg.write_text(json.dumps({"extract": {"calibration": "exposure"}}))   # not kept
    raw, out = tmp_path / "raw", tmp_path / "out-stream"
    monkeypatch.delenv("SAS_BASE_DIR", raising=False)
    n_requests = len(archive.requests)
    args = ["run", str(raw), str(out), "--fetch", "--stream", "--delete-raw", "--plates", "3985",
            "--base-url", archive.url, "--config", str(cfg), "--executor", "serial"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "stream: 1 plate-MJDs processed, 0 done earlier, 0 not processed, raw files " \
           "deleted for 1" in text
    assert "catalogue: 196 spectra of 1 plates" in text
    fetched = {p for p, _ in archive.requests[n_requests:]}
    assert fetched == {f"{SAS}/{rel}" for rel in _wanted(noiseless_tree)}
    assert _local(raw) == {"platelist.fits"}     # the plate's raw files are gone
    assert (out / "extract/3985/sky-3985-55320.fits.done").is_file()
    # a rerun does not fetch the plate again
    n_requests = len(archive.requests)
    assert main(args) == 0
    assert "0 plate-MJDs processed, 1 done earlier" in capsys.readouterr().out
    assert len(archive.requests) == n_requests

    # the same run on a mirror (SAS_BASE_DIR, as at NERSC): read in place, nothing copied
    monkeypatch.setenv("SAS_BASE_DIR", str(Path(archive.root) / "sas"))
    raw2, out2 = tmp_path / "raw-unused", tmp_path / "out-mirror"
    n_requests = len(archive.requests)
    assert main(["run", str(raw2), str(out2), "--fetch", "--plates", "3985",
                 "--base-url", "http://127.0.0.1:9", "--config", str(cfg),
                 "--executor", "serial"]) == 0
    assert "catalogue: 196 spectra of 1 plates" in capsys.readouterr().out
    assert not raw2.exists() and len(archive.requests) == n_requests
    files = _same_dataset(out, out2)
    assert "extract/3985/sky-3985-55320.fits" in files and "merge/clean.fits" in files


def test_fetch_from_a_mirror_copies_nothing(archive, noiseless_tree, tmp_path, capsys,
                                            monkeypatch):
    monkeypatch.setenv("SAS_BASE_DIR", str(Path(archive.root) / "sas"))
    raw = tmp_path / "raw"
    assert main(["fetch", str(raw), "--plates", "3985", "--base-url", "http://127.0.0.1:9"]) == 0
    out = capsys.readouterr().out
    redux = Path(archive.root) / SAS.lstrip("/")
    assert "14 files present (0 downloaded" in out and f"tree in {redux}" in out
    assert not raw.exists()
    # a file missing from the mirror is named
    shutil.move(redux / "v5_7_0/3985/spCFrame-r2-00114439.fits", tmp_path / "away")
    try:
        assert main(["fetch", str(raw), "--plates", "3985", "--mirror",
                     str(Path(archive.root) / "sas")]) == 1
    finally:
        shutil.move(tmp_path / "away", redux / "v5_7_0/3985/spCFrame-r2-00114439.fits")
    assert f"{redux}/v5_7_0/3985/spCFrame-r2-00114439.fits: not in the mirror" in \
        capsys.readouterr().out


def test_an_incomplete_spplate_takes_its_frames_from_the_folder_listing(
        archive, noiseless_tree, tmp_path, caplog):
    """IDL writes EXPID cards 100 and above on one EXPID** card (DR12: one plate-MJD, NEXP
    136); then the spCFrames in the plate folder's HTML index say which frames to fetch."""
    redux = Path(archive.root) / SAS.lstrip("/")
    sp = redux / "v5_7_0/3985/spPlate-3985-55320.fits"
    good = sp.readlink()
    sp.unlink()
    shutil.copyfile(good, sp)
    with fits.open(sp, mode="update") as hdul:
        assert hdul[0].header["NEXP"] == 4
        del hdul[0].header["EXPID03"], hdul[0].header["EXPID04"]
    raw = tmp_path / "raw"
    try:
        summary = fetch_tree(raw, FetchRequest(plates=[3985], base_url=archive.url,
                                               show=False))
    finally:
        sp.unlink()
        sp.symlink_to(good)
    assert summary.failures == []
    assert _local(raw) == _wanted(noiseless_tree)       # all four cameras, not two
    assert f"{SAS}/v5_7_0/3985/" in {p for p, _ in archive.requests}
    assert any("EXPID cards list 2 of NEXP=4 frames; the plate folder has 4 spCFrames"
               in r.getMessage() for r in caplog.records)
