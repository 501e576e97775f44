"""Stage enrich: accuracy against PyEphem, edge cases, PHOTO, ZODI, solar flux, bad input,
resumability, units."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time

from skymodelling import open_dataset
from skymodelling.cli import main
from skymodelling.conditions.clouds import (
    PhotometricityTable,
    photometric_flag,
    read_photometricity,
)
from skymodelling.conditions.site import tai_seconds_to_time
from skymodelling.conditions.zodiacal import zodi_s10
from skymodelling.config import Config, EnrichConfig, load_config
from skymodelling.errors import SkyModellingError
from skymodelling.io.fitsutil import write_hdus
from skymodelling.io.products import table_hdu
from skymodelling.stages import _common, keys
from skymodelling.stages.enrich import (
    COLUMNS,
    KEY_COLUMNS,
    EnrichInputError,
    enrich_meta,
    output_path,
    read_conditions,
    run_enrich,
)
from skymodelling.stages.extract import output_path as extract_path
from skymodelling.stages.extract import run_extract

#: ephem.Date counts days from 1899 Dec 31 12:00 UT, i.e. MJD 15019.5.
EPHEM_MJD0 = 15019.5


def _tai(iso_utc: str) -> float:
    """TAI seconds since MJD 0 of a UTC date."""
    return float(Time(iso_utc, scale="utc").tai.mjd * 86400.0)


def _meta(ra, dec, beg, end=None, plate=1, mjd=55000, img=None):
    """A synthetic extract META table."""
    ra, dec, beg = np.broadcast_arrays(np.asarray(ra, float), np.asarray(dec, float),
                                       np.asarray(beg, float))
    n = ra.size
    end = beg + 900.0 if end is None else np.broadcast_to(np.asarray(end, float), (n,))
    return Table({"PLATE": np.full(n, plate, "i4"), "MJD": np.full(n, mjd, "i4"),
                  "IMG": np.arange(n, dtype="i4") if img is None else np.full(n, img, "i4"),
                  "CAMERA": np.full(n, "b1"), "FIB": np.arange(1, n + 1, dtype="i4"),
                  "ROW": np.arange(n, dtype="i4"), "FIBER_RA": ra.ravel(),
                  "FIBER_DEC": dec.ravel(), "TAI-BEG": beg.ravel(), "TAI-END": end,
                  "RA": ra.ravel(), "DEC": dec.ravel()})


def _write_extract(out, meta, plate, mjd):
    """A minimal complete extract output holding ``meta``."""
    path = extract_path(out, plate, mjd)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = Config()
    write_hdus(path, [_common.primary_hdu("extract", config), table_hdu(meta, "META", {})])
    _common.mark_complete(path, "extract", config, n_spectra=len(meta))
    return path


@pytest.fixture(scope="module")
def ephem():
    return pytest.importorskip("ephem")


def _observer(ephem, mjd_utc, horizon="0"):
    obs = ephem.Observer()
    obs.lat, obs.lon, obs.elevation = "32:46:49.30", "-105:49:13.50", 2788.0
    obs.pressure = 0.0
    obs.horizon = horizon
    obs.date = ephem.Date(mjd_utc - EPHEM_MJD0)
    return obs


def _ephem_values(ephem, ra, dec, tai_mid):
    mjd = tai_seconds_to_time(tai_mid).utc.mjd
    obs = _observer(ephem, mjd)
    moon, sun, star = ephem.Moon(obs), ephem.Sun(obs), ephem.FixedBody()
    star._ra, star._dec, star._epoch = np.radians(ra), np.radians(dec), ephem.J2000
    star.compute(obs)
    set_obs = _observer(ephem, mjd, horizon="-0:50")
    sunset = set_obs.previous_setting(ephem.Sun(), use_center=True) + EPHEM_MJD0
    sunrise = set_obs.next_rising(ephem.Sun(), use_center=True) + EPHEM_MJD0
    return {"MOON_SEP": np.degrees(ephem.separation((moon.az, moon.alt), (star.az, star.alt))),
            "MOON_ALT": np.degrees(moon.alt), "MOON_ILL": moon.moon_phase,
            "SUN_ALT": np.degrees(sun.alt), "OBS_ZENITH": 90.0 - np.degrees(star.alt),
            "SUN_SET": sunset, "SUN_RISE": sunrise}


def _compare(ephem, cond, ra, dec, tolerances):
    """Largest |ours - PyEphem| per column (SUN_SET/SUN_RISE in minutes, as UTC MJD)."""
    worst = {}
    for i in range(len(cond)):
        ref = _ephem_values(ephem, ra[i], dec[i], cond["TAI-MID"][i])
        for name in tolerances:
            ours = float(cond[name][i])
            if name in ("SUN_SET", "SUN_RISE"):
                ours = Time(ours, format="mjd", scale="tai").utc.mjd
                diff = abs(ours - ref[name]) * 1440.0
            else:
                diff = abs(ours - ref[name])
            worst[name] = max(worst.get(name, 0.0), diff)
    for name, tol in tolerances.items():
        assert worst[name] < tol, (name, worst[name])
    return worst


TOLERANCES = {"MOON_SEP": 0.1, "MOON_ALT": 0.1, "MOON_ILL": 0.01, "SUN_ALT": 0.05,
              "OBS_ZENITH": 0.05, "SUN_SET": 2.0, "SUN_RISE": 2.0}


# ------------------------------------------------------ on a real extract output

@pytest.fixture(scope="module")
def clouds_csv(tmp_path_factory):
    return tmp_path_factory.mktemp("clouds") / "clouds.csv"


@pytest.fixture(scope="module")
def enriched(sim_tree, tmp_path_factory, clouds_csv):
    out = tmp_path_factory.mktemp("enrich") / "out"
    run_extract(sim_tree, out, workers=2)
    meta = open_dataset(out).meta
    mid = 0.5 * (meta["TAI-BEG"] + meta["TAI-END"])
    first = np.sort(np.unique(mid))
    # a photometric window over the first exposure, a cloudy one over the second
    clouds_csv.write_text("MJD,STARTTAI,ENDTAI,PHOTOMETRIC\n"
                          f"0,{first[0] - 10},{first[0] + 10},1\n"
                          f"0,{first[1] - 10},{first[1] + 10},0\n")
    summary = run_enrich(out, clouds=clouds_csv, workers=2)
    return out, summary


def test_stage_outputs_and_headers(enriched):
    out, summary = enriched
    assert summary.n_done == 2 and summary.n_failures == 0 and summary.n_spectra > 0
    files = sorted((out / "enrich").glob("*/cond-*.fits"))
    assert len(files) == 2
    with fits.open(files[0]) as hdul:
        assert hdul[0].header["SMSTAGE"] == "enrich"
        assert hdul[0].header["SMCFGSUM"] == keys.stage_digest("enrich", Config())
        assert hdul[0].header["PHOTFILE"] == "clouds.csv"
        assert hdul[1].header["EXTNAME"] == "CONDITIONS"
        units = {hdul[1].header[f"TTYPE{i}"]: hdul[1].header.get(f"TUNIT{i}")
                 for i in range(1, hdul[1].header["TFIELDS"] + 1)}
    assert list(units)[:6] == list(KEY_COLUMNS)
    expected = {"MOON_SEP": "deg", "MOOND": "km", "MOON_PHASE": "rad", "SUN_SET": "d",
                "HOUR": "h", "ZODI": None, "ISL": None, "SOLARFLUX": "10**-22 W m-2 Hz-1",
                "TAI-MID": "s", "MOON_ILL": None, "PHOTO": None, "MONTH": None}
    for name, unit in expected.items():
        assert units[name] == unit, name
    assert set(units) == set(KEY_COLUMNS) | {c[0] for c in COLUMNS}
    # S10 is no FITS unit: it travels as TCOMMn and comes back as the S10 unit
    with fits.open(files[0]) as hdul:
        comments = {hdul[1].header[f"TTYPE{i}"]: hdul[1].header.get(f"TCOMM{i}", "")
                    for i in range(1, hdul[1].header["TFIELDS"] + 1)}
    assert comments["ZODI"].startswith("unit: S10") and comments["ISL"].startswith("unit: S10")
    assert str(read_conditions(files[0])["ZODI"].unit) == "S10"


def test_dataset_joins_conditions(enriched):
    out, _ = enriched
    meta = open_dataset(out).meta
    assert np.all(np.isfinite(meta["MOON_SEP"])) and np.all(np.isfinite(meta["ZODI"]))
    assert np.array_equal(meta["TAI-MID"], 0.5 * (meta["TAI-BEG"] + meta["TAI-END"]))
    # what all fibres of an exposure share is the same; what depends on the pointing is not
    grouped = meta.group_by(["PLATE", "IMG"])
    for group in grouped.groups:
        assert np.ptp(group["MOON_ALT"]) == 0 and np.ptp(group["SOLARFLUX"]) == 0
        assert np.ptp(group["MOON_SEP"]) > 0.1   # fibres spread over the 3-deg plate
        assert np.all(np.abs(group["FIBER_DEC"] - group["DEC"]) < 1.5)
    assert np.all(np.isin(meta["PHOTO"], (0.0, 0.5, 1.0)))
    assert set(np.unique(meta["PHOTO"])) == {0.0, 0.5, 1.0}


def test_accuracy_against_pyephem(enriched, ephem):
    out, _ = enriched
    meta = open_dataset(out).meta
    pick = np.random.default_rng(4).choice(len(meta), 40, replace=False)
    sample = meta[pick]
    _compare(ephem, sample, np.asarray(sample["FIBER_RA"]), np.asarray(sample["FIBER_DEC"]),
             TOLERANCES)
    assert np.all(sample["SUN_ALT"] < -12)           # simulated exposures are at night
    assert np.all((sample["HOUR"] > 0) & (sample["HOUR"] < 15))


def test_rerun_skips_and_changed_extract_is_redone(enriched, sim_tree, clouds_csv):
    out, _ = enriched
    again = run_enrich(out, clouds=clouds_csv)
    assert again.n_skipped == 2 and again.n_done == 0
    assert run_enrich(out).n_done == 2          # another (no) photometricity table: redone
    assert run_enrich(out).n_skipped == 2
    assert run_enrich(out, clouds=clouds_csv).n_done == 2   # as the other tests expect


def test_cli(enriched, clouds_csv, tmp_path):
    out, _ = enriched
    assert main(["enrich", str(out), "--clouds", str(clouds_csv), "--workers", "2"]) == 0
    assert main(["enrich", str(out), "--clouds", str(tmp_path / "none.csv")]) == 2
    assert main(["enrich", str(tmp_path)]) == 2     # no extract output


# ----------------------------------------------------------- pure edge cases

def test_exposures_across_local_midnight(ephem):
    # night of 2012-03-31 (local), local midnight ~07:00 UTC on 2012-04-01
    beg = np.array([_tai("2012-04-01T06:20:00"), _tai("2012-04-01T07:10:00")])
    meta = _meta([200.0, 200.0], [30.0, 30.0], beg)
    cond = enrich_meta(meta)
    assert cond["SUN_SET"][0] == cond["SUN_SET"][1]
    assert cond["SUN_RISE"][0] == cond["SUN_RISE"][1]
    assert cond["HOUR"][1] - cond["HOUR"][0] == pytest.approx(50 / 60, abs=1e-6)
    assert list(cond["MONTH"]) == [3, 3]
    _compare(ephem, cond, [200.0, 200.0], [30.0, 30.0], TOLERANCES)


def test_polar_pointings_and_moon_below_horizon(ephem):
    # first-quarter Moon set before this time (its altitude -18 deg), Sun at -44 deg
    tai = _tai("2012-03-01T10:00:00")
    ra = np.array([0.0, 123.0, 250.0, 10.0, 300.0])
    dec = np.array([90.0, 89.99, -89.0, -30.0, 60.0])
    cond = enrich_meta(_meta(ra, dec, np.full(5, tai)))
    assert np.all(cond["MOON_ALT"] < -10)
    for name, _dtype, _unit, _dep in COLUMNS:
        assert np.all(np.isfinite(cond[name])), name
    # the celestial pole is at zenith distance 90 - latitude (J2000 pole vs date: 0.16 deg)
    assert cond["OBS_ZENITH"][0] == pytest.approx(90 - 32.7804, abs=0.2)
    assert cond["OBS_ZENITH"][2] > 90     # never rises
    _compare(ephem, cond, ra, dec, TOLERANCES)


def test_zodi_depends_on_elongation():
    # the autumn equinox point (ecliptic latitude ~0) seen in March (opposite the Sun)
    # and in August (~50 deg from the Sun)
    beg = np.array([_tai("2012-03-20T06:00:00"), _tai("2012-08-01T06:00:00")])
    cond = enrich_meta(_meta([180.0, 180.0], [0.0, 0.0], beg))
    assert abs(cond["ECL_LAT"][0] - cond["ECL_LAT"][1]) < 0.1
    assert abs(abs(cond["ECL_LON_SUN"][0]) - 180) < 2
    assert 40 < abs(cond["ECL_LON_SUN"][1]) < 60
    expected = zodi_s10(cond["ECL_LON_SUN"], cond["ECL_LAT"], fill="nearest")
    np.testing.assert_allclose(cond["ZODI"], expected)
    assert cond["ZODI"][1] > 1.5 * cond["ZODI"][0]
    assert np.all(cond["ISL"] > 0)


def test_solar_flux_known_date():
    cond = enrich_meta(_meta([150.0], [20.0], [_tai("2012-03-01T05:00:00")]))
    assert float(cond["SOLARFLUX"][0]) == pytest.approx(103.4)
    assert float(cond["SOLARFLUX_81"][0]) == pytest.approx(112.0)


def test_boresight_pointing():
    meta = _meta([150.0], [20.0], [_tai("2012-03-01T05:00:00")])
    meta["FIBER_RA"] = [151.0]
    a = enrich_meta(meta)
    b = enrich_meta(meta, config=EnrichConfig(pointing="boresight"))
    c = enrich_meta(_meta([150.0], [20.0], [_tai("2012-03-01T05:00:00")]))
    assert a["MOON_SEP"][0] != b["MOON_SEP"][0] and b["MOON_SEP"][0] == c["MOON_SEP"][0]
    with pytest.raises(SkyModellingError, match="pointing"):
        EnrichConfig(pointing="moon")


# -------------------------------------------------------------------- PHOTO

def test_photo_rule():
    tab = PhotometricityTable.from_arrays([100, 200, 250, 400, 500], [200, 300, 260, 500, 600],
                                          [1, 1, 0, 1, 0])
    t = [50, 100, 150, 200, 255, 280, 300, 350, 450, 500, 550, 600, 601, np.nan]
    expected = [0.5, 1, 1, 1, 0, 1, 1, 0.5, 1, 0, 0, 0, 0.5, np.nan]
    np.testing.assert_array_equal(photometric_flag(t, tab), expected)
    np.testing.assert_array_equal(photometric_flag([1.0, np.nan], None), [0.5, np.nan])


def test_photo_tables_from_files(tmp_path):
    csv = tmp_path / "w.csv"
    csv.write_text("starttai,endtai,photometric\n0,10,1\n10,20,0\n")
    Table({"MJD": [0.0, 0.0], "STARTTAI": [0.0, 10.0], "ENDTAI": [10.0, 20.0],
           "PHOTOMETRIC": [1.0, 0.0]}).write(tmp_path / "w.fits")
    for path in (csv, tmp_path / "w.fits"):
        tab = read_photometricity(path)
        np.testing.assert_array_equal(photometric_flag([5, 10, 15, 25], tab), [1, 0, 0, 0.5])
    (tmp_path / "bad.csv").write_text("STARTTAI,ENDTAI\n0,10\n")
    with pytest.raises(SkyModellingError, match="PHOTOMETRIC"):
        read_photometricity(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("STARTTAI,ENDTAI,PHOTOMETRIC\n0,10,2\n")
    with pytest.raises(SkyModellingError, match="0 or 1"):
        read_photometricity(tmp_path / "bad2.csv")
    with pytest.raises(SkyModellingError, match="not found"):
        read_photometricity(tmp_path / "none.fits")


def test_photo_in_enrich_meta():
    beg = np.array([1000.0, 5000.0, 9000.0]) + 4.8e9
    tab = PhotometricityTable.from_arrays([4.8e9, 4.8e9 + 5000], [4.8e9 + 2000, 4.8e9 + 6000],
                                          [1, 0])
    cond = enrich_meta(_meta([10.0] * 3, [20.0] * 3, beg, beg + 900), photometricity=tab)
    np.testing.assert_array_equal(cond["PHOTO"], [1.0, 0.0, 0.5])
    assert np.all(enrich_meta(_meta([10.0] * 3, [20.0] * 3, beg))["PHOTO"] == 0.5)


def test_real_photometricity_table(reference_dir):
    path = reference_dir / "apo_photometricity.fits"
    tab = read_photometricity(path)
    raw = Table.read(path)
    inner = 0.5 * (raw["STARTTAI"] + raw["ENDTAI"])
    ok = raw["ENDTAI"] - raw["STARTTAI"] > 2   # midpoints strictly inside one window
    np.testing.assert_array_equal(photometric_flag(inner[ok], tab), raw["PHOTOMETRIC"][ok])
    assert photometric_flag([raw["STARTTAI"].min() - 1e6], tab)[0] == 0.5


# --------------------------------------------------------- bad input, resuming

def test_bad_rows_are_nan_with_one_problem_per_kind():
    tai = _tai("2012-03-01T05:00:00")
    beg = np.array([tai, np.nan, np.nan, 0.0, tai, tai, tai])
    dec = np.array([20.0, 20.0, 20.0, 20.0, 95.0, 20.0, -91.0])
    problems = []
    cond = enrich_meta(_meta(10.0, dec, beg), problems=problems)
    assert len(problems) == 3 and all("rows" in p for p in problems)
    assert any("TAI-BEG: NaN" in p and "2 of 7" in p for p in problems)
    assert any("TAI-BEG: zero" in p for p in problems)
    assert any("FIBER_DEC" in p and "2 of 7" in p for p in problems)
    assert np.all(np.isnan(cond["MOON_ALT"][1:4])) and np.all(cond["MONTH"][1:4] == -1)
    assert np.all(np.isnan(cond["PHOTO"][1:4]))
    assert np.all(np.isfinite(cond["GAL_LAT"][1:4]))     # pointing-only columns kept
    assert np.all(np.isnan(cond["MOON_SEP"][[4, 6]])) and np.all(np.isnan(cond["ZODI"][[4, 6]]))
    assert np.all(np.isfinite(cond["MOON_ALT"][[0, 4, 5, 6]]))
    end_before = _meta([10.0], [20.0], [tai], [tai - 1])
    problems = []
    assert np.isnan(enrich_meta(end_before, problems=problems)["SUN_ALT"][0])
    assert "before TAI-BEG" in problems[0]
    with pytest.raises(EnrichInputError, match="FIBER_DEC"):
        enrich_meta(_meta(10.0, 20.0, [tai])[["PLATE", "MJD", "IMG", "CAMERA", "FIB", "ROW",
                                               "FIBER_RA", "TAI-BEG", "TAI-END"]])


@pytest.fixture
def fake_out(tmp_path):
    out = tmp_path / "out"
    tai = _tai("2012-03-01T05:00:00") + np.repeat([0.0, 1000.0], 3)
    good = _meta(np.linspace(10, 11, 6), 20.0, tai, plate=1, img=7)
    _write_extract(out, good, 1, 55987)
    no_dec = good[["PLATE", "MJD", "IMG", "CAMERA", "FIB", "ROW", "FIBER_RA", "TAI-BEG",
                   "TAI-END"]]
    no_dec["PLATE"] = 2
    _write_extract(out, no_dec, 2, 55987)
    bad = good.copy()
    bad["PLATE"] = 3
    bad["TAI-BEG"][0] = np.nan
    bad["FIBER_DEC"][1:3] = 99.0
    _write_extract(out, bad, 3, 55987)
    return out


def test_bad_input_recorded_rest_proceeds(fake_out, capsys):
    assert main(["enrich", str(fake_out)]) == 1
    assert "failures" in capsys.readouterr().err
    assert output_path(fake_out, 1, 55987).is_file()
    assert not output_path(fake_out, 2, 55987).exists()
    assert output_path(fake_out, 3, 55987).is_file()
    failures = _common.read_failures(fake_out, "enrich")
    assert sorted(failures["PLATE"]) == [2, 3, 3]
    reasons = " | ".join(failures["REASON"])
    assert "plate 2 MJD 55987: META lacks column(s) FIBER_DEC" in reasons
    assert "TAI-BEG: NaN (missing) in 1 of 6 rows" in reasons
    assert "FIBER_DEC: NaN or |value| > 90 deg in 2 of 6 rows" in reasons
    meta = open_dataset(fake_out).meta
    assert np.isnan(meta["MOON_ALT"][(meta["PLATE"] == 3)][0])
    assert np.ma.is_masked(meta["MOON_ALT"][meta["PLATE"] == 2][0])   # not enriched
    with pytest.raises(SkyModellingError, match="FIBER_DEC"):
        run_enrich(fake_out, strict=True, plates=[2])


def test_resume_and_input_change(fake_out):
    first = run_enrich(fake_out)
    assert first.n_done == 3 and first.n_failures == 3
    again = run_enrich(fake_out)
    assert again.n_skipped == 2 and again.n_done == 1 and again.n_failures == 3  # 2 redone
    target = output_path(fake_out, 1, 55987)
    stamp = target.stat().st_mtime_ns
    # the extract output changes: plate 1 is redone with the new times
    meta = Table.read(extract_path(fake_out, 1, 55987), hdu="META")
    meta["TAI-BEG"] += 3600.0
    meta["TAI-END"] += 3600.0
    _write_extract(fake_out, meta, 1, 55987)
    third = run_enrich(fake_out, plates=[1])
    assert third.n_done == 1 and target.stat().st_mtime_ns != stamp
    assert read_conditions(target)["TAI-MID"][0] == pytest.approx(
        meta["TAI-BEG"][0] + 450.0)
    # a killed run: marker gone and a temporary file left behind
    _common.invalidate(target)
    part = target.with_name(f".{target.name}.abc123.part.fits")
    part.write_bytes(b"junk")
    assert run_enrich(fake_out, plates=[1]).n_done == 1 and not part.exists()
    # another configuration: redone
    config = Config().replace("enrich", zodi_fill="nan")
    assert run_enrich(fake_out, config, plates=[1]).n_done == 1


def test_incomplete_extract_output_is_reported(fake_out):
    _common.invalidate(extract_path(fake_out, 1, 55987))
    run_enrich(fake_out, plates=[1])
    failures = _common.read_failures(fake_out, "enrich")
    assert "incomplete" in failures["REASON"][0]


def test_config_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"enrich": {"pointing": "boresight"}}')
    assert load_config(path).enrich.pointing == "boresight"
    path.write_text('{"enrich": {"zodi": 1}}')
    with pytest.raises(SkyModellingError, match="zodi"):
        load_config(path)
