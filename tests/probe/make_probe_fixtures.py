#!/usr/bin/python3
"""scikit-learn oracle for the probe module: writes tests/reference/fixtures/probe_sklearn.h5.

Run from the repository root with Debian's python3 (numpy, scipy, h5py, sklearn 1.2):
    /usr/bin/python3 tests/probe/make_probe_fixtures.py
The output is committed (a few kB) so that CI needs no Python. Features are rounded to
float32 so the C side (float32 embeddings) sees exactly the same numbers.

Conventions the C side must match:
  Ridge(alpha=lam, fit_intercept=True) minimises ||y - Xw - b||^2 + lam ||w||^2.
  LogisticRegression(C=1/lam) minimises sum log-loss + lam/2 ||w||^2 (sklearn's objective
  0.5 ||w||^2 + C sum log-loss divided by C); the intercept is not penalised.
"""
import sys

import h5py
import numpy as np
import scipy.stats
import sklearn
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, mean_absolute_error, r2_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

OUT = "tests/reference/fixtures/probe_sklearn.h5"
rng = np.random.default_rng(20240611)


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def ridge_case(h5, name, n, d, lambdas):
    x = f32(rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d) + rng.normal(size=d))
    y = x @ rng.normal(size=d) + 0.5 * rng.normal(size=n) + 3.0
    g = h5.create_group(name)
    g["x"], g["y"], g["lambda"] = x, y, np.array(lambdas, dtype=np.float64)
    w, b = [], []
    for lam in lambdas:
        m = Ridge(alpha=lam, fit_intercept=True, solver="svd").fit(x, y)
        w.append(m.coef_)
        b.append(m.intercept_)
    g["w"], g["b"] = np.array(w), np.array(b)


def logistic_grad(x, y, lam, w, b):
    p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
    return np.concatenate([x.T @ (p - y) + lam * w, [np.sum(p - y)]])


def logistic_case(h5, name, x, y, lambdas):
    g = h5.create_group(name)
    g["x"], g["y"], g["lambda"] = x, y.astype(np.float64), np.array(lambdas, dtype=np.float64)
    w, b = [], []
    for lam in lambdas:
        m = LogisticRegression(penalty="l2", C=1.0 / lam, fit_intercept=True,
                               solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(x, y)
        grad = np.max(np.abs(logistic_grad(x, y, lam, m.coef_[0], m.intercept_[0])))
        # The fixture is only as good as sklearn's convergence: refuse a loose solution.
        if grad > 1e-9 * len(y):
            sys.exit(f"{name} lambda {lam}: sklearn gradient {grad:.3g} too large")
        w.append(m.coef_[0])
        b.append(m.intercept_[0])
    g["w"], g["b"] = np.array(w), np.array(b)


def main():
    with h5py.File(OUT, "w") as h5:
        h5.attrs["sklearn_version"] = sklearn.__version__
        h5.attrs["generator"] = "tests/probe/make_probe_fixtures.py"
        ridge_case(h5, "ridge_primal", 30, 5, [0.1, 3.0, 100.0])
        ridge_case(h5, "ridge_dual", 8, 12, [0.5, 10.0])

        x = f32(rng.normal(size=(60, 4)) * [1.0, 2.0, 0.5, 3.0] + [0.0, 1.0, -2.0, 5.0])
        y = (x @ [1.0, -0.5, 2.0, 0.3] - 1.5 + rng.logistic(size=60) > 0).astype(int)
        logistic_case(h5, "logistic_primal", x, y, [100.0, 1.0, 0.01])
        x = f32(rng.normal(size=(10, 15)))
        y = np.array([0, 1] * 5)
        logistic_case(h5, "logistic_dual", x, y, [10.0, 1.0, 0.1])
        x = f32(np.concatenate([rng.normal(size=(10, 2)) + 3, rng.normal(size=(10, 2)) - 3]))
        y = np.array([1] * 10 + [0] * 10)
        logistic_case(h5, "logistic_separable", x, y, [1.0, 0.1])

        # Scores with many ties, integer weights (bootstrap multiplicities).
        g = h5.create_group("classification")
        label = rng.integers(0, 2, size=300)
        score = np.round(rng.normal(size=300) + 0.8 * label, 1)
        weight = rng.integers(0, 4, size=300).astype(np.float64)
        g["score"], g["label"], g["weight"] = score, label.astype(np.float64), weight
        g["auroc"] = roc_auc_score(label, score)
        g["auroc_weighted"] = roc_auc_score(label, score, sample_weight=weight)
        g["accuracy"] = accuracy_score(label, score > 0)
        g["accuracy_weighted"] = accuracy_score(label, score > 0, sample_weight=weight)

        g = h5.create_group("regression")
        yt = rng.normal(50, 15, size=200)
        pred = 0.6 * yt + rng.normal(20, 8, size=200)
        weight = rng.integers(0, 4, size=200).astype(np.float64)
        g["y"], g["pred"], g["weight"] = yt, pred, weight
        g["mae"] = mean_absolute_error(yt, pred)
        g["mae_weighted"] = mean_absolute_error(yt, pred, sample_weight=weight)
        g["r2"] = r2_score(yt, pred)
        g["r2_weighted"] = r2_score(yt, pred, sample_weight=weight)
        g["pearson"] = scipy.stats.pearsonr(yt, pred)[0]

        g = h5.create_group("standardize")
        x = f32(rng.normal(size=(25, 4)) * [1.0, 10.0, 0.1, 1.0] + [0.0, 100.0, -3.0, 0.0])
        x[:, 3] = 0.7  # constant column
        x = f32(x)
        sc = StandardScaler().fit(x)
        g["x"], g["mean"], g["scale"] = x, sc.mean_, sc.scale_
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
