"""The banded least-squares solver of the decomposition against dense linear algebra."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from skymodelling.spectral.banded import BandedNormal, border_mask


def _design(rng, npix=400, nlocal=60, nborder=3):
    """Local columns (each non-zero over <= 25 pixels) plus ``nborder`` wide ones."""
    cols = []
    for _ in range(nlocal):
        lo = int(rng.integers(0, npix - 25))
        col = np.zeros(npix)
        col[lo:lo + int(rng.integers(5, 25))] = rng.normal(size=1) + rng.random(1) + 0.5
        cols.append(col)
    x = np.linspace(-1, 1, npix)
    for k in range(nborder):
        cols.append(np.cos((k + 1) * x))
    return np.column_stack(cols)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("block", [8, 24, 64])
def test_solution_variances_and_covariance_equal_dense_least_squares(seed, block, monkeypatch):
    # (blocks of at least ``block`` columns: one block for this design at 64, several below)
    from skymodelling.spectral import banded

    monkeypatch.setattr(banded, "_MIN_BLOCK", block)
    rng = np.random.default_rng(seed)
    a = _design(rng)
    npix, ncol = a.shape
    w = rng.uniform(0.5, 2.0, npix)
    w[rng.random(npix) < 0.1] = 0.0           # masked pixels
    y = a @ rng.normal(size=ncol) + rng.normal(size=npix) / np.sqrt(np.maximum(w, 1e-9))
    border = border_mask(ncol, ncol, 3)
    system = BandedNormal(sp.csc_matrix(a), y, w, border)
    # a principal sub-system: some local columns dropped
    sel = np.sort(np.concatenate([rng.choice(ncol - 3, 45, replace=False),
                                  np.arange(ncol - 3, ncol)]))
    var_idx = np.arange(10)
    cov_idx = np.array([2, 5, 7, 46, 47])       # local columns and two of the border
    coef, var, cov = system.solve(sel, var=var_idx, cov=cov_idx)
    sub = a[:, sel]
    normal = sub.T @ (w[:, None] * sub)
    dense = np.linalg.solve(normal, sub.T @ (w * y))
    inv = np.linalg.inv(normal)
    np.testing.assert_allclose(coef, dense, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(var, np.diag(inv)[var_idx], rtol=1e-5)
    np.testing.assert_allclose(cov, inv[np.ix_(cov_idx, cov_idx)], rtol=1e-5, atol=1e-10)
    # the same factorisation for new data (ridge 1e-10 on the unit-diagonal matrix: ~1e-7)
    y2 = y + 1.0
    system.set_data(y2)
    np.testing.assert_allclose(system.solve(sel)[0],
                               np.linalg.solve(normal, sub.T @ (w * y2)), rtol=1e-5, atol=1e-7)


def test_a_column_without_data_is_zero_not_nan():
    rng = np.random.default_rng(3)
    a = _design(rng, nborder=0)
    w = np.ones(a.shape[0])
    a[:, 0] = 0.0
    a[:30, 0] = 1.0
    w[:30] = 0.0                      # column 0 sees only masked pixels
    coef = BandedNormal(sp.csc_matrix(a), rng.normal(size=a.shape[0]), w,
                        np.zeros(a.shape[1], bool)).solve()[0]
    assert np.all(np.isfinite(coef)) and coef[0] == 0.0


@pytest.mark.parametrize("fallback", [False, True])
def test_variances_of_sums_equal_dense_least_squares(fallback, monkeypatch):
    # groups of blended lines: Var(sum of coefficients) = g^T N^-1 g, border included;
    # the same from the sparse LU that replaces the block solver when a block fails
    rng = np.random.default_rng(5)
    a = _design(rng)
    npix, ncol = a.shape
    w = rng.uniform(0.5, 2.0, npix)
    y = a @ rng.normal(size=ncol) + rng.normal(size=npix) / np.sqrt(w)
    system = BandedNormal(sp.csc_matrix(a), y, w, border_mask(ncol, ncol, 3))
    def fail(*args, **kwargs):
        raise np.linalg.LinAlgError("forced")
    # the block path must hold on its own (no silent fallback), and the fallback too
    monkeypatch.setattr(system, "_block_solve" if fallback else "_lu_solve", fail)
    # groups of neighbouring local columns (as blended lines are), one across the first
    # block boundary (blocks of >= 24 columns here, so that this design has several)
    from skymodelling.spectral import banded

    monkeypatch.setattr(banded, "_MIN_BLOCK", 24)
    first = np.argmax(a[:, :-3] != 0, axis=0)
    order = np.argsort(first, kind="stable")
    sums = [order[10:12], order[22:27], order[40:43], order[[50]]]
    coef, var, cov, svar = system.solve(var=np.arange(5), sums=sums)
    inv = np.linalg.inv(a.T @ (w[:, None] * a))
    want = [inv[np.ix_(g, g)].sum() for g in sums]
    np.testing.assert_allclose(svar, want, rtol=1e-5)
    np.testing.assert_allclose(var, np.diag(inv)[:5], rtol=1e-5)
    assert len(system.solve(var=np.arange(5))) == 3     # no sums asked: three results


def test_an_extended_system_equals_the_system_of_the_whole_design():
    # the continuum block's normal matrix reused, the line columns' products added
    from skymodelling.spectral.banded import WeightedBlock

    rng = np.random.default_rng(9)
    a = _design(rng)
    npix, ncol = a.shape
    w = rng.uniform(0.5, 2.0, npix)
    w[rng.random(npix) < 0.1] = 0.0
    y = a @ rng.normal(size=ncol) + rng.normal(size=npix) / np.sqrt(np.maximum(w, 1e-9))
    base, extra = a[:, 40:], a[:, :40]          # the block first, then local columns
    whole = np.hstack([base, extra])
    border = np.zeros(ncol, bool)
    border[20:23] = True                         # the wide columns, now at 20-22
    ref = BandedNormal(sp.csc_matrix(whole), y, w, border)
    ext = BandedNormal.extend(WeightedBlock(sp.csc_matrix(base), w), sp.csc_matrix(extra),
                              y, border)
    got, want = ext.solve(var=np.arange(30)), ref.solve(var=np.arange(30))
    np.testing.assert_allclose(got[0], want[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-10)
    ext.set_data(y + 1.0)
    ref.set_data(y + 1.0)
    np.testing.assert_allclose(ext.solve()[0], ref.solve()[0], rtol=1e-10, atol=1e-12)


def test_a_reweighted_design_gives_the_systems_of_its_weights():
    # the first continuum's passes: one design, new weights each time (pixels clipped)
    from skymodelling.spectral.banded import Reweighted

    rng = np.random.default_rng(11)
    a = _design(rng)
    npix, ncol = a.shape
    y = a @ rng.normal(size=ncol) + rng.normal(size=npix)
    border = border_mask(ncol, ncol, 3)
    passes = Reweighted(sp.csc_matrix(a), border)
    for clipped in (0.02, 0.05, 0.3):
        w = rng.uniform(0.5, 2.0, npix) * (rng.random(npix) > clipped)
        got = passes.system(y, w).solve(var=np.arange(5))
        # the same as the system formed by the sparse product (to rounding, which columns
        # that see few pixels amplify: up to ~5e-6 here) ...
        want = BandedNormal(sp.csc_matrix(a), y, w, border).solve(var=np.arange(5))
        np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-6 * np.abs(want[0]).max())
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
        if clipped < 0.1:     # ... and as dense algebra where every column sees data
            sub = a.T @ (w[:, None] * a)
            np.testing.assert_allclose(got[0], np.linalg.solve(sub, a.T @ (w * y)),
                                       rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="make another"):
        passes.system(y, w).set_data(y)
