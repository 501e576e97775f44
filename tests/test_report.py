"""skymodelling report and plot: the HTML page, its figures in headless Chromium, the errors."""
from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

mpl_image = pytest.importorskip("matplotlib.image", reason="matplotlib (extra 'plot') missing")

from skymodelling import __version__  # noqa: E402
from skymodelling.cli import main  # noqa: E402
from skymodelling.dataset import open_dataset  # noqa: E402
from skymodelling.report import html as H  # noqa: E402
from skymodelling.report import plots, write_report  # noqa: E402
from skymodelling.report._mpl import new_figure  # noqa: E402
from skymodelling.report.single import draw_one  # noqa: E402

SECTIONS = ("summary", "spectra", "lines", "moon", "conditions", "failures", "provenance")
FAILURE_REASON = "fewer than 10 good sky fibres (report test)"


@pytest.fixture(scope="module")
def finished(sim_tree, tmp_path_factory) -> Path:
    """A whole run on the session's simulated tree, plus one recorded problem."""
    from skymodelling.pipeline import run_pipeline
    from skymodelling.stages._common import FailureLog

    out = tmp_path_factory.mktemp("report") / "out"
    run_pipeline(sim_tree, out, workers=2, show=False)
    log = FailureLog("mean", plate=3985, mjd=55320)
    log.add(FAILURE_REASON, expid=114439, camera="b1", file="extract/3985/sky-3985-55320.fits")
    log.write(out)
    return out


@pytest.fixture(scope="module")
def report(finished) -> tuple[Path, str]:
    path = write_report(finished)
    return path, path.read_text()


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.images, self.missing, self.scripts = [], [], [], 0
        self._in_missing = False
        self.text = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "script":
            self.scripts += 1
        elif tag == "p" and attrs.get("class") == "missing":
            self._in_missing = True

    def handle_endtag(self, tag):
        if tag == "p":
            self._in_missing = False

    def handle_data(self, text):
        self.text.append(text)
        if self._in_missing:
            self.missing.append(text)


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def _decode(img: dict) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert img["src"].startswith(prefix)
    png = base64.b64decode(img["src"][len(prefix):], validate=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpl_image.imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (int(img["height"]), int(img["width"]))
    return pixels[..., :3]


def _copy_stages(src: Path, dst: Path, stages) -> Path:
    """Hard-link the outputs of ``stages`` of ``src`` into a new folder ``dst``."""
    for stage in stages:
        shutil.copytree(src / stage, dst / stage, copy_function=os.link)
    return dst


def test_report_has_every_section_and_valid_figures(finished, report):
    path, text = report
    assert path == finished / "report.html"
    page = _parse(text)
    assert page.sections == list(SECTIONS)
    assert page.scripts == 0 and "http://" not in text and "https://" not in text
    assert page.missing == []  # every stage ran: no section says something is missing
    cameras = sorted(set(np.char.strip(np.asarray(open_dataset(finished).means.meta["CAMERA"])
                                       .astype(str))))
    assert len(page.images) == len(cameras) + 3  # spectra per camera, lines, moon, conditions
    for img in page.images:
        pixels = _decode(img)
        # a figure, not a blank image: a good part of it is drawn
        assert (pixels.min(axis=2) < 0.9).mean() > 0.02
    words = " ".join(page.text)
    alts = [img["alt"] for img in page.images]
    assert alts[:len(cameras)] == [f"mean spectrum {cam}" for cam in cameras]
    assert FAILURE_REASON in words
    assert f"skymodelling {__version__}" in words and '"min_fibers": 10' in words


def test_report_removed_table_counts_the_catalogue(finished, report):
    from astropy.table import Table

    _, text = report
    removed = Table.read(finished / "merge" / "removed.fits", unit_parse_strict="silent")
    page = _parse(text)
    for reason in set(np.char.strip(np.asarray(removed["REASON"]).astype(str))):
        assert reason in " ".join(page.text)
    # the removed table's counts add up to the rows of removed.fits
    section = text[text.index("merge/removed.fits)"):text.index('id="provenance"')]
    counts = [int(c) for c in re.findall(r"<td>(\d+)</td></tr>", section)]
    assert sum(counts) == len(removed)


def _find(shot: np.ndarray, fig: np.ndarray, x0: int, tol: float = 0.02):
    """Top row at which ``fig`` appears pixel for pixel in ``shot`` at column x0, or None."""
    h, w = fig.shape[:2]
    if x0 + w > shot.shape[1]:
        return None
    r = int(np.argmax((fig.min(axis=2) < 0.9).sum(axis=1)))  # the busiest row
    diff = np.abs(shot[:, x0:x0 + w] - fig[r]).mean(axis=(1, 2))
    for y in np.flatnonzero(diff < tol):
        y0 = int(y) - r
        if y0 >= 0 and y0 + h <= shot.shape[0] and \
                np.abs(shot[y0:y0 + h, x0:x0 + w] - fig).mean() < tol:
            return y0
    return None


def test_report_renders_with_its_figures_in_chromium(report, tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/install-chromium)")
    path, text = report
    shot_path = tmp_path / "shot.png"
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--force-device-scale-factor=1", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={shot_path}", "--window-size=1200,3000",
                    path.resolve().as_uri()], check=True, timeout=120,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shot = mpl_image.imread(shot_path)[..., :3]
    assert shot.shape[:2] == (3000, 1200)
    figures = [_decode(img) for img in _parse(text).images]
    found = [_find(shot, fig, H.LEFT) for fig in figures]
    seen = [y for y in found if y is not None]
    # the figures that fit in the first 3000 pixels are on screen, exactly, in page order
    assert len(seen) >= 2, found
    assert seen == sorted(seen)
    assert found[0] is not None and found[0] < 800  # the first spectrum right below the summary
    # and the page is not the figures alone: the first figure sits below the text at the top
    assert (shot[:found[0], :].min(axis=2) < 0.5).any()


def test_missing_stages_make_their_sections_say_so(finished, tmp_path):
    out = _copy_stages(finished, tmp_path / "out", ("extract", "enrich", "lines", "mean"))
    page = _parse(write_report(out).read_text())
    assert page.sections == list(SECTIONS)
    said = " ".join(page.missing)
    assert "No decomposition of the mean spectra" in said
    assert "No catalogue: run skymodelling merge OUT." in said
    # spectra still drawn (without model), and the line fluxes are the lines stage's
    assert len(page.images) >= 4
    assert "the lines stage's window fluxes" in " ".join(page.text)

    bare = _copy_stages(finished, tmp_path / "bare", ("extract",))
    page = _parse(write_report(bare).read_text())
    said = " ".join(page.missing)
    assert "No mean spectra in this folder" in said
    assert "No observing conditions" in said or "No enrich output" in said


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("skymodelling: error: ")
    return err[0]


def test_report_errors_write_nothing(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    msg = _one_line_error(capsys, ["report", str(missing)])
    assert str(missing) in msg and "no such folder" in msg
    assert not missing.exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not a pipeline output")
    msg = _one_line_error(capsys, ["report", str(other), "-o", str(tmp_path / "r.html")])
    assert "not a pipeline output folder" in msg and "skymodelling run" in msg
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    assert not (tmp_path / "r.html").exists()


def test_report_to_a_folder_is_refused(finished, tmp_path, capsys):
    msg = _one_line_error(capsys, ["report", str(finished), "-o", str(tmp_path)])
    assert str(tmp_path) in msg and "is a folder" in msg
    assert list(tmp_path.iterdir()) == []


def test_report_without_matplotlib_is_one_line(finished, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    msg = _one_line_error(capsys, ["report", str(finished), "-o", str(tmp_path / "r.html")])
    assert "skymodelling[plot]" in msg
    assert not (tmp_path / "r.html").exists()


def test_plot_draws_the_mean_spectrum_and_its_decomposition(finished, tmp_path, capsys):
    ds = open_dataset(finished)
    means = ds.means
    i = 5
    row = means.meta[i]
    key = dict(plate=int(row["PLATE"]), mjd=int(row["MJD"]), expid=int(row["IMG"]),
               camera=str(row["CAMERA"]).strip())
    fig = new_figure(11, 5)
    draw_one(fig, finished, **key)
    ax, axr = fig.axes
    spec, comps = means.spectrum(i), means.components(i)
    good = spec.IVAR > 0
    data_line = ax.lines[0].get_ydata()
    np.testing.assert_array_equal(data_line[good], spec.FLUX[good].astype(float))
    assert np.isnan(data_line[~good]).all()
    resid = (spec.FLUX - comps.CONT - comps.LINES) * np.sqrt(spec.IVAR)
    np.testing.assert_allclose(axr.lines[0].get_ydata()[good], resid[good], rtol=1e-5,
                               atol=1e-4)
    # the command writes the PNG at the figure's size
    png = tmp_path / "mean.png"
    assert main(["plot", str(finished), "--plate", str(key["plate"]), "--mjd", str(key["mjd"]),
                 "--expid", str(key["expid"]), "--camera", key["camera"], "-o", str(png)]) == 0
    assert mpl_image.imread(png).shape[:2] == (500, 1100)
    capsys.readouterr()


def test_plot_draws_a_fibre(finished, tmp_path):
    ds = open_dataset(finished)
    row = ds.meta[7]
    fig = new_figure(11, 5)
    title = draw_one(fig, finished, int(row["PLATE"]), int(row["MJD"]), int(row["IMG"]),
                     str(row["CAMERA"]).strip(), fiber=int(row["FIB"]))
    assert f"fibre {int(row['FIB'])}" in title and "not decomposed" in title
    spec = ds.spectrum(7)
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_xdata(), spec.WAVE)


@pytest.mark.slow
def test_plot_draws_a_decomposed_fibre(finished, tmp_path):
    from skymodelling.spectral.resample import loglam_edges, resample_flux
    from skymodelling.stages.decompose import run_decompose

    out = _copy_stages(finished, tmp_path / "out", ("extract", "enrich", "lines", "mean"))
    run_decompose(out, spectra="fibres", workers=2)
    ds = open_dataset(out)
    row = ds.meta[3]
    fig = new_figure(11, 5)
    title = draw_one(fig, out, int(row["PLATE"]), int(row["MJD"]), int(row["IMG"]),
                     str(row["CAMERA"]).strip(), fiber=int(row["FIB"]))
    assert "reduced chi-square" in title
    grid = fig.axes[0].lines[0].get_xdata()
    spec = ds.spectrum(3)
    flux, ivar = resample_flux(spec.WAVE, spec.FLUX, spec.IVAR, loglam_edges(np.log10(grid)))
    good = ivar > 0
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata()[good], flux[good])
    assert len(fig.axes[0].lines) == 3  # data, model, continuum


def test_plot_errors_name_what_exists(finished, tmp_path, capsys):
    ds = open_dataset(finished)
    row = ds.meta[0]
    base = ["plot", str(finished), "--plate", str(int(row["PLATE"])), "--mjd",
            str(int(row["MJD"])), "--camera", str(row["CAMERA"]).strip()]
    png = tmp_path / "x.png"
    msg = _one_line_error(capsys, [*base, "--expid", "1", "-o", str(png)])
    assert f"exposures {int(row['IMG'])}" in msg or str(int(row["IMG"])) in msg
    msg = _one_line_error(capsys, [*base, "--expid", str(int(row["IMG"])), "--fiber", "1000",
                                   "-o", str(png)])
    assert "not a sky fibre" in msg and str(int(row["FIB"])) in msg
    msg = _one_line_error(capsys, [*base, "--expid", str(int(row["IMG"])), "-o",
                                   str(tmp_path / "x.xyz")])
    assert "x.xyz" in msg and ".png" in msg
    assert list(tmp_path.iterdir()) == []


def test_draw_spectrum_residuals_and_counts():
    fig = new_figure(6, 4)
    ax, axr = fig.subplots(2, 1, sharex=True)
    wave = np.linspace(5000, 6000, 3000)
    cont = np.full(3000, 2.0)
    lines = 40 * np.exp(-0.5 * ((wave - 5577.3) / 1.2) ** 2)
    rng = np.random.default_rng(1)
    ivar = np.full(3000, 4.0)
    ivar[:10] = 0
    flux = cont + lines + rng.normal(0, 0.5, 3000)
    assert plots.draw_spectrum(ax, axr, wave, flux, ivar, cont, lines) == 2990
    resid = axr.lines[0].get_ydata()
    np.testing.assert_allclose(resid[10:], (flux - cont - lines)[10:] * 2.0)
    assert np.isnan(resid[:10]).all()
    # the continuum stays visible: the y range is not set by the bright line alone
    # (which runs off the top, as the sky lines of a real spectrum do)
    assert ax.get_ylim()[1] < 40


def test_draw_against_and_histogram_count_finite_points():
    fig = new_figure(6, 3)
    a, b = fig.subplots(1, 2)
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    y = np.array([1.0, np.nan, 3.0, 4.0, 5.0])
    assert plots.draw_against(a, x, y, groups=["b1", "b1", "r1", "r1", "r1"]) == 3
    assert plots.draw_histogram(b, y, label="Y", bins=4) == 4
    assert sum(p.get_height() for p in b.patches) == 4
    empty = new_figure(3, 2).add_subplot()
    assert plots.draw_against(empty, [np.nan], [1.0], empty="nothing here") == 0
    assert empty.texts[0].get_text() == "nothing here"
