#!/usr/bin/python3
"""NumPy oracle for the k-NN probe: writes tests/reference/fixtures/knn_numpy.h5.

Run from the repository root with Debian's python3 (numpy, h5py):
    /usr/bin/python3 tests/probe/make_knn_fixture.py
The output is committed (a few kB) so that CI needs no Python.

The reference is DINOv2's KnnModule (dinov2/eval/knn.py) written out in NumPy:
    similarity = normalize(test) @ normalize(train).T
    top-k by similarity, weights exp(similarity / T)
    probability of class c = sum of weights of the neighbours of class c / sum of weights
(DINOv2 sums the one-hot labels weighted by exp(sim / T) and normalises; for 0/1 labels the
class-1 probability is the weighted mean of the labels, which is also what the C side returns
for a numeric target). Features are float32, as embeddings are; the arithmetic is float64.
"""
import h5py
import numpy as np

OUT = "tests/reference/fixtures/knn_numpy.h5"
rng = np.random.default_rng(20261205)


def knn(x, train, test, y_train, k, temperature):
    xn = x.astype(np.float64)
    xn = xn / np.linalg.norm(xn, axis=1, keepdims=True)
    sim = xn[test] @ xn[train].T
    k = min(k, len(train))
    # Stable sort of -similarity: ties go to the lower training position, as on the C side.
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(sim, order, axis=1)
    w = np.exp(top / temperature)
    return (w * y_train[order]).sum(axis=1) / w.sum(axis=1)


with h5py.File(OUT, "w") as h5:
    for name, n, d, k, temperature in (("cls", 90, 16, 20, 0.07), ("small_k", 50, 5, 3, 0.5),
                                       ("k_above_train", 30, 4, 40, 0.07)):
        centre = rng.normal(size=d)
        x = (rng.normal(size=(n, d)) + centre).astype(np.float32)
        label = (x[:, 0] + 0.5 * rng.normal(size=n) > centre[0]).astype(np.float64)
        value = x[:, 1].astype(np.float64) * 10 + 40 + rng.normal(size=n)
        perm = rng.permutation(n)
        test, train = np.sort(perm[: n // 3]), np.sort(perm[n // 3:])
        g = h5.create_group(name)
        g["x"], g["train"], g["test"] = x, train.astype(np.int32), test.astype(np.int32)
        g["label"], g["value"] = label, value
        g["k"], g["temperature"] = np.array([k], np.int32), np.array([temperature])
        g["pred_label"] = knn(x, train, test, label[train], k, temperature)
        g["pred_value"] = knn(x, train, test, value[train], k, temperature)
print("wrote", OUT)
