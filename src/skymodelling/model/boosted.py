"""The gradient-boosted model: scikit-learn trees, stored and evaluated as arrays.

For one target, a :class:`~sklearn.ensemble.HistGradientBoostingRegressor`
(squared error) learns ``ln y`` from the features of
:data:`skymodelling.model.features.FEATURES`. Its uncertainty: out-of-fold
residuals ``r = ln(pred / obs)`` from an inner K-fold split (grouped by plate
when groups are given) train a second regressor with quantile loss at 0.68
on ``|r|``, the half-width ``s`` of the 68 % interval
``pred exp(-s) .. pred exp(+s)``.

scikit-learn is needed to fit (the optional extra ``model``). A fitted
ensemble is exported by :func:`export_trees` to plain arrays (feature index,
threshold, children, leaf values; no pickle) and evaluated by
:func:`predict_trees` in numpy, so a saved model predicts without
scikit-learn and identically to it (sklearn sends NaN to the side recorded
in ``missing_go_to_left`` and a value ``<= threshold`` to the left child).
"""
from __future__ import annotations

import logging

import numpy as np

from ..errors import SkyModellingError

log = logging.getLogger(__name__)

POINT_PARAMS = {"max_iter": 600, "learning_rate": 0.03, "max_leaf_nodes": 31,
                "min_samples_leaf": 20, "l2_regularization": 1.0, "early_stopping": False}
SPREAD_PARAMS = {"loss": "quantile", "quantile": 0.68, "max_iter": 100, "learning_rate": 0.05,
                 "max_depth": 3, "min_samples_leaf": 50, "early_stopping": False}
INNER_FOLDS = 4
TREE_ARRAYS = ("feature", "threshold", "missing_left", "left", "right", "is_leaf", "value")


def _sklearn():
    try:
        from sklearn.ensemble import HistGradientBoostingRegressor
        from sklearn.model_selection import GroupKFold, KFold
    except ImportError:
        raise SkyModellingError(
            "fitting the boosted model needs scikit-learn: pip install "
            "'skymodelling[model]' (or fit --kind physical)") from None
    return HistGradientBoostingRegressor, GroupKFold, KFold


def export_trees(model) -> dict[str, np.ndarray]:
    """A fitted HistGradientBoostingRegressor as flat arrays.

    Returns
    -------
    dict of numpy.ndarray
        ``baseline`` (1,), ``tree_start`` (n_trees,) and, over all nodes of
        all trees, :data:`TREE_ARRAYS` (children are global node indices).
    """
    nodes = [pred.nodes for (pred,) in model._predictors]
    if any(n["is_categorical"].any() for n in nodes):
        raise SkyModellingError("categorical splits are not supported by the exporter")
    sizes = np.array([len(n) for n in nodes])
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    allnodes = np.concatenate(nodes)
    offset = np.repeat(start, sizes)
    return {"baseline": np.atleast_1d(np.asarray(model._baseline_prediction,
                                                 dtype=float).ravel()),
            "tree_start": start.astype(np.int64),
            "feature": allnodes["feature_idx"].astype(np.int16),
            "threshold": allnodes["num_threshold"].astype(float),
            "missing_left": allnodes["missing_go_to_left"].astype(bool),
            "left": (allnodes["left"] + offset).astype(np.int64),
            "right": (allnodes["right"] + offset).astype(np.int64),
            "is_leaf": allnodes["is_leaf"].astype(bool),
            "value": allnodes["value"].astype(float)}


def predict_trees(trees: dict, X: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
    """Evaluate exported trees on the rows of ``X`` (n, n_features).

    Examples
    --------
    >>> trees = {"baseline": np.array([1.0]), "tree_start": np.array([0]),
    ...          "feature": np.array([0, 0, 0]), "threshold": np.array([0.5, 0, 0]),
    ...          "missing_left": np.array([True, False, False]),
    ...          "left": np.array([1, 0, 0]), "right": np.array([2, 0, 0]),
    ...          "is_leaf": np.array([False, True, True]), "value": np.array([0, -1.0, 1.0])}
    >>> predict_trees(trees, np.array([[0.0], [1.0], [np.nan]])).tolist()
    [0.0, 2.0, 0.0]
    """
    X = np.asarray(X, dtype=float)
    out = np.empty(len(X))
    start = np.asarray(trees["tree_start"])
    feature, threshold = np.asarray(trees["feature"]), np.asarray(trees["threshold"])
    miss_left, is_leaf = np.asarray(trees["missing_left"]), np.asarray(trees["is_leaf"])
    left, right, value = (np.asarray(trees[k]) for k in ("left", "right", "value"))
    for lo in range(0, len(X), chunk):
        x = X[lo:lo + chunk]
        rows = np.arange(len(x))[:, None]
        node = np.broadcast_to(start, (len(x), start.size)).copy()
        while True:
            inner = ~is_leaf[node]
            if not inner.any():
                break
            v = x[rows, feature[node]]
            with np.errstate(invalid="ignore"):
                go_left = np.where(np.isnan(v), miss_left[node], v <= threshold[node])
            node = np.where(inner, np.where(go_left, left[node], right[node]), node)
        out[lo:lo + chunk] = trees["baseline"][0] + value[node].sum(axis=1)
    return out


def _fit_one(X, y, params, seed):
    regressor, _, _ = _sklearn()
    # An input with no value at all (TAI-MID absent: epoch and season) cannot be
    # binned; a constant is never split on, so predictions ignore it.
    empty = ~np.isfinite(X).any(axis=0)
    if empty.any():
        X = X.copy()
        X[:, empty] = 0.0
    return regressor(random_state=seed, **params).fit(X, y)


def fit_boosted(X: np.ndarray, y, groups=None, *, seed: int = 0) -> dict:
    """Fit the point and spread ensembles for positive targets ``y``.

    Parameters
    ----------
    X : numpy.ndarray
        Feature matrix (:func:`skymodelling.model.features.feature_matrix`).
    y : array_like
        Targets; rows not finite and positive are ignored.
    groups : array_like, optional
        Group labels (plates) for the inner split that gives the out-of-fold
        residuals; without them a shuffled K-fold.
    seed : int

    Returns
    -------
    dict
        ``point`` and ``spread`` (exported trees), ``n_fit``, ``rms_log_oof``
        (rms of the out-of-fold ln residuals).
    """
    _, group_kfold, kfold = _sklearn()
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(y) & (y > 0)
    X, logy = np.asarray(X, dtype=float)[ok], np.log(y[ok])
    oof = np.full(len(logy), np.nan)
    if groups is not None and len(np.unique(np.asarray(groups)[ok])) >= INNER_FOLDS:
        splits = group_kfold(n_splits=INNER_FOLDS).split(X, logy, np.asarray(groups)[ok])
    else:
        splits = kfold(n_splits=INNER_FOLDS, shuffle=True, random_state=seed).split(X)
    for train, test in splits:
        oof[test] = _fit_one(X[train], logy[train], POINT_PARAMS, seed).predict(X[test])
    resid = np.abs(oof - logy)
    point = _fit_one(X, logy, POINT_PARAMS, seed)
    spread = _fit_one(X, resid, SPREAD_PARAMS, seed)
    log.debug("boosted fit: %d rows, out-of-fold rms %.4f", ok.sum(),
              np.sqrt(np.mean(resid**2)))
    return {"point": export_trees(point), "spread": export_trees(spread),
            "n_fit": int(ok.sum()), "rms_log_oof": float(np.sqrt(np.mean(resid**2)))}


def predict_boosted(fit: dict, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prediction and 68 % interval (lower, upper) of a fitted boosted model."""
    mean = np.exp(predict_trees(fit["point"], X))
    s = np.maximum(predict_trees(fit["spread"], X), 1e-4)
    return mean, mean * np.exp(-s), mean * np.exp(s)
