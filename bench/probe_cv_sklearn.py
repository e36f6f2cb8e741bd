#!/usr/bin/python3
"""Peer of bench/probe_cv.c: the same nested grouped CV with scikit-learn, on the data and
folds the C benchmark wrote (DIR N D): for each outer fold, GridSearchCV over the same
penalty grid with the same inner folds (PredefinedSplit), a StandardScaler in the pipeline,
scoring by squared error / log-loss, refit on the outer training set. Prints RESULT lines."""
import sys
import time

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, PredefinedSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

d_dir, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x = np.fromfile(f"{d_dir}/x.f32", dtype=np.float32).reshape(n, d).astype(np.float64)
lambdas = 10.0 ** (-2.0 + 0.5 * np.arange(17))
for name, target, make, grid, scoring in [
    ("ridge_age", "age", lambda: Ridge(), {"ridge__alpha": lambdas}, "neg_mean_squared_error"),
    ("logistic_sex", "sex", lambda: LogisticRegression(max_iter=1000),
     {"logisticregression__C": 1.0 / lambdas}, "neg_log_loss"),
]:
    y = np.fromfile(f"{d_dir}/{target}.f64")
    folds = np.fromfile(f"{d_dir}/folds_{target}.i32", dtype=np.int32).reshape(-1, len(y))
    rows, outer, inner = folds[0], folds[1], folds[2:]
    xs, ys = x[rows], y[rows]
    start = time.perf_counter()
    for o in range(inner.shape[0]):
        train = outer != o
        search = GridSearchCV(make_pipeline(StandardScaler(), make()), grid, scoring=scoring,
                              cv=PredefinedSplit(inner[o][train]), refit=True)
        search.fit(xs[train], ys[train])
        if name.startswith("logistic"):
            search.decision_function(xs[~train])
        else:
            search.predict(xs[~train])
    print(f"RESULT sklearn_nested_cv_{name}_{n}x{d}: {time.perf_counter() - start:.3f} s")
