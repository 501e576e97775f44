"""The predictive sky model: features, both models, the file format, the CLI, real data."""
from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from skymodelling.cli import main
from skymodelling.errors import SkyModellingError
from skymodelling.model import api, boosted, evaluate, features, physical, predict
from skymodelling.model.synthetic import TRUE_PARAMS, synthetic_conditions, synthetic_sky

sklearn = pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def synth():
    table = synthetic_conditions(1500, seed=11)
    cond = features.conditions_arrays(table)
    table["C460B_CONT"] = synthetic_sky(cond, seed=12, scatter=0.03)
    table["C540B_CONT"] = synthetic_sky(cond, seed=13, scatter=0.03) * 1.3
    table["OI5577_FLUX"] = synthetic_sky(cond, seed=14, scatter=0.05) * 30
    return table, cond


def test_group_median_matches_numpy_per_group():
    rng = np.random.default_rng(0)
    n = 500
    t = Table({"PLATE": rng.integers(1, 4, n), "MJD": rng.integers(1, 3, n),
               "IMG": rng.integers(1, 5, n), "Y": rng.normal(size=n)})
    t["Y"][rng.random(n) < 0.2] = np.nan
    t["Y"][(t["PLATE"] == 1) & (t["MJD"] == 1) & (t["IMG"] == 1)] = np.nan   # all-NaN group
    agg = features.aggregate_exposures(t, ["Y"])
    for row in agg:
        sel = (t["PLATE"] == row["PLATE"]) & (t["MJD"] == row["MJD"]) & (t["IMG"] == row["IMG"])
        vals = np.asarray(t["Y"][sel])
        assert row["N_ROWS"] == sel.sum()
        if np.isfinite(vals).any():
            assert row["Y"] == pytest.approx(np.nanmedian(vals))
        else:
            assert np.isnan(row["Y"])


def test_missing_condition_column_is_a_user_error():
    t = synthetic_conditions(5)
    t.remove_column("ZODI")
    with pytest.raises(SkyModellingError, match="ZODI"):
        features.conditions_arrays(t)


def test_physical_model_recovers_the_generating_sky(synth):
    table, cond = synth
    fit = physical.fit_physical(cond, table["C460B_CONT"])
    truth = physical.predict_mean(cond, TRUE_PARAMS)
    pred, lo, hi = physical.predict_physical(fit, cond)
    assert np.median(np.abs(pred / truth - 1)) < 0.01
    moon = cond["MOON_ALT"] > 0
    assert np.median(np.abs(pred[moon] / truth[moon] - 1)) < 0.02
    # fresh draws from the same sky: the 68 % interval holds about 68 % of them
    fresh = synthetic_sky(cond, seed=99, scatter=0.03)
    inside = np.mean((fresh >= lo) & (fresh <= hi))
    assert 0.63 < inside < 0.73


def test_physical_reduced_fit_on_few_rows(synth):
    table, cond = synth
    few = {k: v[:8] for k, v in cond.items()}
    fit = physical.fit_physical(few, np.asarray(table["C460B_CONT"])[:8])
    assert fit["fitted"] == list(physical.REDUCED)
    with pytest.raises(SkyModellingError, match="at least"):
        physical.fit_physical({k: v[:3] for k, v in cond.items()},
                              np.asarray(table["C460B_CONT"])[:3])


def test_exported_trees_predict_like_sklearn():
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(3)
    X = rng.normal(size=(800, 4))
    X[rng.random((800, 4)) < 0.1] = np.nan
    y = np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) ** 2 + rng.normal(0, 0.1, 800)
    m = HistGradientBoostingRegressor(max_iter=50, random_state=0).fit(X, y)
    Xt = rng.normal(size=(300, 4))
    Xt[::5, 2] = np.nan
    np.testing.assert_allclose(boosted.predict_trees(boosted.export_trees(m), Xt, chunk=64),
                               m.predict(Xt), rtol=0, atol=1e-10)


def test_boosted_model_intervals_on_held_out_rows(synth):
    table, cond = synth
    X = features.feature_matrix(cond)
    y = np.asarray(table["C460B_CONT"])
    fit = boosted.fit_boosted(X[:1000], y[:1000], np.asarray(table["PLATE"])[:1000])
    pred, lo, hi = boosted.predict_boosted(fit, X[1000:])
    s = evaluate.score(y[1000:], pred, lo, hi)
    assert s["median"] < 0.05
    assert 0.58 < s["coverage"] < 0.78


@pytest.mark.slow
def test_epoch_input_learns_a_change_in_time(synth):
    """A sky that brightens by 30 % half-way through the survey: TAI-MID lets the
    boosted model see it; without TAI-MID the epoch is a missing, unused input."""
    table, cond = synth
    t = table.copy()
    mjd0 = 55200.0
    mjd = mjd0 + np.random.default_rng(5).uniform(0, 4 * 365.25, len(t))
    t["TAI-MID"] = mjd * 86400.0
    y = np.asarray(t["C460B_CONT"]) * np.where(mjd > mjd0 + 2 * 365.25, 1.3, 1.0)
    c = features.conditions_arrays(t)
    assert np.allclose(c["EPOCH"], mjd)
    assert np.allclose(c["SEASON_SIN"] ** 2 + c["SEASON_COS"] ** 2, 1.0)
    fit = boosted.fit_boosted(features.feature_matrix(c), y, np.asarray(t["PLATE"]))
    early, late = c.copy(), c.copy()
    early["EPOCH"] = np.full(len(t), mjd0 + 365.0)
    late["EPOCH"] = np.full(len(t), mjd0 + 3 * 365.0)
    ratio = (boosted.predict_boosted(fit, features.feature_matrix(late))[0]
             / boosted.predict_boosted(fit, features.feature_matrix(early))[0])
    assert 1.2 < np.median(ratio) < 1.4
    assert np.isnan(cond["EPOCH"]).all()          # the fixture has no TAI-MID
    fit = boosted.fit_boosted(features.feature_matrix(cond)[:300], y[:300])
    pred = boosted.predict_boosted(fit, features.feature_matrix(cond)[300:400])[0]
    assert np.isfinite(pred).all()


@pytest.mark.slow
def test_save_load_roundtrip_and_checks(synth, tmp_path):
    table, _ = synth
    model = api.fit_model(table[:600], kind="both")
    assert set(model.targets) == {"C460B_CONT", "C540B_CONT", "OI5577_FLUX"}
    path = model.save(tmp_path / "m")
    assert path.name == "m.json" and (tmp_path / "m.npz").exists()
    doc = json.loads(path.read_text())
    assert doc["format"] == "skymodelling-model" and doc["training"]["rows"] == 600
    assert doc["targets"]["OI5577_FLUX"]["unit"] == "1e-17 erg s-1 cm-2"
    loaded = api.load_model(path)
    for kind in ("physical", "boosted"):
        a, b = model.predict(table[600:700], kind=kind), loaded.predict(table[600:700], kind=kind)
        for c in a.colnames:
            np.testing.assert_array_equal(a[c], b[c])
    doc["features"] = doc["features"][:16]          # a model of an older version
    (tmp_path / "old.json").write_text(json.dumps(doc))
    (tmp_path / "old.npz").write_bytes((tmp_path / "m.npz").read_bytes())
    doc["arrays"] = "old.npz"
    (tmp_path / "old.json").write_text(json.dumps(doc))
    with pytest.raises(SkyModellingError, match="refit"):
        api.load_model(tmp_path / "old.json")
    (tmp_path / "m.npz").write_bytes(b"corrupt")
    with pytest.raises(SkyModellingError, match="checksum"):
        api.load_model(path)
    with pytest.raises(SkyModellingError, match="not a skymodelling model"):
        (tmp_path / "x.json").write_text("{}")
        api.load_model(tmp_path / "x.json")


def test_conditions_from_a_time_are_enrichs():
    from skymodelling.stages.enrich import enrich_meta

    t = predict.conditions_from_time("2011-03-05T06:00:00", 180.0, 30.0)
    meta = Table({"PLATE": [0], "MJD": [0], "IMG": [0], "CAMERA": ["b1"], "FIB": [0],
                  "ROW": [0], "FIBER_RA": [180.0], "FIBER_DEC": [30.0],
                  "TAI-BEG": t["TAI-MID"] - 450, "TAI-END": t["TAI-MID"] + 450})
    ref = enrich_meta(meta)
    for c in ("MOON_ALT", "MOON_SEP", "SUN_ALT", "OBS_ZENITH", "ZODI", "HOUR"):
        assert float(t[c][0]) == pytest.approx(float(ref[c][0]))
    # 2011-03-05 06:00 UTC: 1 day before new Moon, the Sun well below the horizon at APO
    assert float(t["MOON_ILL"][0]) < 0.05 and float(t["SUN_ALT"][0]) < -18
    with pytest.raises(SkyModellingError, match="ISO"):
        predict.conditions_from_time("yesterday", 1.0, 2.0)


def _catalogue(table, n_fibres=4, seed=0):
    """Per-fibre rows: each exposure repeated with fibre noise on the targets."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(len(table)), n_fibres)
    cat = table[rows]
    for c in ("C460B_CONT", "C540B_CONT", "OI5577_FLUX"):
        cat[c] = cat[c] * rng.normal(1, 0.05, len(cat))
    cat["IMG"] = cat["IMG"] + 100000
    return cat


def test_cli_fit_predict_spectrum(synth, tmp_path, capsys):
    table, _ = synth
    cat = _catalogue(table[:400])
    cat.write(tmp_path / "cat.fits")
    model = tmp_path / "model.json"
    assert main(["model", "fit", str(tmp_path / "cat.fits"), "--out", str(model),
                 "--kind", "physical"]) == 0
    loaded = api.load_model(model)
    assert loaded.targets["C460B_CONT"]["physical"]["n_fit"] == 400   # one row per exposure
    capsys.readouterr()
    spec = tmp_path / "spec.fits"
    assert main(["model", "predict", str(model), "--moon-ill", "0.8", "--moon-alt", "40",
                 "--moon-sep", "50", "--airmass", "1.2", "--spectrum", str(spec),
                 "--output", str(tmp_path / "pred.csv")]) == 0
    out = capsys.readouterr().out
    assert "C460B_CONT" in out and "OI5577_FLUX" in out
    pred = Table.read(tmp_path / "pred.csv")
    with fits.open(spec) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "CONDITIONS", "SPECTRUM_B"]
        s = hdul["SPECTRUM_B"].data
        wave, flux = s["WAVE"], s["FLUX"]
        assert hdul["CONDITIONS"].data["MOON_ILL"][0] == pytest.approx(0.8)
    # continuum at the band centre is the predicted band; the line adds its flux
    assert np.interp(4600.0, wave, flux) == pytest.approx(pred["C460B_CONT"][0], rel=2e-3)
    near = np.abs(wave - 5578.9) < 15
    cont = np.interp(wave[near], [4600, 5400], [pred["C460B_CONT"][0], pred["C540B_CONT"][0]])
    excess = np.trapezoid(flux[near] - np.exp(np.interp(wave[near], [4600, 5400], np.log(
        [pred["C460B_CONT"][0], pred["C540B_CONT"][0]]))), wave[near])
    assert excess == pytest.approx(pred["OI5577_FLUX"][0], rel=0.01)
    assert np.all(flux[near] >= 0.99 * cont.min())
    # a moonlit sky is brighter than the dark default
    assert main(["model", "predict", str(model), "--output", str(tmp_path / "dark.csv")]) == 0
    assert Table.read(tmp_path / "dark.csv")["C460B_CONT"][0] < pred["C460B_CONT"][0]


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["model", "predict", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("skymodelling: error:") and err.count("\n") == 1
    Table({"PLATE": [1], "MJD": [1], "IMG": [1]}).write(tmp_path / "c.fits")
    assert main(["model", "fit", str(tmp_path / "c.fits"), "--out", str(tmp_path / "m")]) == 2
    assert "lacks column(s) MOON_ILL" in capsys.readouterr().err


# ------------------------------------------------------------------ real BOSS data

@pytest.fixture(scope="module")
def real(reference_dir):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_model import training_conditions

    table, cond = training_conditions(reference_dir)
    keep = np.isin(np.asarray(table["PLATE"]).astype(int) % 7, [0, 1, 2])   # ~40 %
    return table[keep], cond[keep]


def test_real_boss_cross_validation_beats_the_baselines(real):
    table, cond_table = real
    cond = features.conditions_arrays(cond_table)
    y = np.asarray(table["SKY_VALUE"], dtype=float)
    cv = evaluate.cross_validate(cond, y, np.asarray(table["PLATE"]).astype(int),
                                 kinds=("constant", "ks91", "physical"), n_splits=3, wave=4700.0)
    moon = evaluate.sky_class(cond)["moonlit"]
    s = {k: {n: evaluate.score(y[m], *[a[m] for a in v])
             for n, m in (("dark", ~moon), ("moonlit", moon))} for k, v in cv.items()}
    # measured on the whole file (benchmarks/RESULTS.md): dark 6.6 %, moonlit 8.4 %
    assert s["physical"]["dark"]["median"] < 0.08
    assert s["physical"]["moonlit"]["median"] < 0.6 * s["ks91"]["moonlit"]["median"]
    assert s["ks91"]["moonlit"]["median"] < 0.6 * s["constant"]["moonlit"]["median"]
    assert 0.6 < s["physical"]["dark"]["coverage"] < 0.76


# ------------------------------------------------------------- simulated pipeline run

@pytest.fixture(scope="session")
def pipeline_out(tmp_path_factory):
    from skymodelling.pipeline import run_pipeline
    from skymodelling.simulate.tree import simulate_tree

    base = tmp_path_factory.mktemp("model_run")
    simulate_tree(base / "raw", n_plates=2, n_exposures=3, seed=1)
    run_pipeline(base / "raw", base / "out", show=False)
    yield base / "out"
    import shutil

    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_fit_on_a_simulated_catalogue(pipeline_out, tmp_path, capsys):
    clean = pipeline_out / "merge" / "clean.fits"
    cat = Table.read(clean, hdu=1)
    targets = api.catalogue_targets(cat.colnames)
    assert "C460B_CONT" in targets and "OI5577_FLUX" in targets
    model_path = tmp_path / "sim.json"
    assert main(["model", "fit", str(clean), "--out", str(model_path)]) == 0
    model = api.load_model(model_path)
    # 6 exposures: the reduced physical fit only (boosted needs 30)
    info = model.targets["C460B_CONT"]
    assert info["physical"]["n_fit"] == 6 and "boosted" not in info
    per_exp = features.aggregate_exposures(cat, [*features.CONDITION_NAMES, "C460B_CONT"])
    pred = model.predict(per_exp)
    ratio = np.asarray(pred["C460B_CONT"]) / np.asarray(per_exp["C460B_CONT"])
    assert np.all(np.abs(ratio - 1) < 0.3)
    capsys.readouterr()
    assert main(["model", "predict", str(model_path), "--time", "2010-04-10T06:00:00",
                 "--ra", "200", "--dec", "30", "--spectrum", str(tmp_path / "s.fits")]) == 0
    with fits.open(tmp_path / "s.fits") as hdul:
        assert "SPECTRUM_B" in [h.name for h in hdul]


def test_physical_spread_is_fitted_on_out_of_fold_residuals():
    """With plates given, the physical model's interval comes from residuals of fits that
    did not see the plate (larger than the in-sample ones); the folds share no plate."""
    from skymodelling.model.features import conditions_arrays
    from skymodelling.model.physical import _group_folds, fit_physical, spread
    from skymodelling.model.synthetic import synthetic_conditions, synthetic_sky

    groups = np.repeat(np.arange(60), 5)
    folds = _group_folds(groups, 4)
    test_rows = np.concatenate([te for _, te in folds])
    assert np.array_equal(np.sort(test_rows), np.arange(groups.size))
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert abs(test.size - groups.size / 4) <= 5
    cond = conditions_arrays(synthetic_conditions(groups.size, seed=5))
    y = synthetic_sky(cond, seed=6)
    inside = fit_physical(cond, y)
    oof = fit_physical(cond, y, groups)
    assert inside["rms_log_oof"] is None
    assert oof["rms_log_oof"] > oof["rms_log"]
    assert oof["params"] == inside["params"]            # the same point model
    s_in = spread(cond, list(inside["params"].values()), list(inside["spread"].values()))
    s_oof = spread(cond, list(oof["params"].values()), list(oof["spread"].values()))
    assert np.median(s_oof) > np.median(s_in)
