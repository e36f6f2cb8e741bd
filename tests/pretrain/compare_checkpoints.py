#!/usr/bin/env python3
"""Compares two rdino checkpoints dataset by dataset.

    compare_checkpoints.py A.h5 B.h5 exact          every dataset bit-identical
    compare_checkpoints.py A.h5 B.h5 RTOL [PREFIX]  per tensor max|a - b| <= RTOL * max|a|
                                                    (datasets under PREFIX..., default student/
                                                    and teacher/)
Prints the worst tensor; exit status 0 when within tolerance, 1 otherwise, 2 on a read error."""
import sys

import h5py
import numpy as np


def datasets(f):
    out = {}
    f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def main():
    a_path, b_path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    prefixes = tuple(sys.argv[4:]) or ("student/", "teacher/")
    try:
        with h5py.File(a_path, "r") as fa, h5py.File(b_path, "r") as fb:
            a, b = datasets(fa), datasets(fb)
            a_steps, b_steps = fa.attrs["steps_completed"], fb.attrs["steps_completed"]
    except OSError as e:
        print(f"cannot read: {e}")
        return 2
    if a.keys() != b.keys():
        print(f"different datasets: {sorted(set(a) ^ set(b))[:5]}")
        return 1
    if a_steps != b_steps:
        print(f"different steps: {a_steps} vs {b_steps}")
        return 1
    if mode == "exact":
        differ = [k for k in sorted(a) if a[k].tobytes() != b[k].tobytes()]
        print(f"{len(a)} datasets, {len(differ)} differ" + (f": {differ[:5]}" if differ else ""))
        return 1 if differ else 0
    rtol = float(mode)
    worst, worst_name = 0.0, ""
    for k in sorted(a):
        if not k.startswith(prefixes) or a[k].dtype.kind not in "fiu":
            continue
        x, y = a[k].astype(np.float64), b[k].astype(np.float64)
        scale = np.abs(x).max()
        rel = np.abs(x - y).max() / scale if scale > 0 else np.abs(x - y).max()
        if not rel <= worst:
            worst, worst_name = rel, k
    print(f"worst relative difference {worst:.3g} in {worst_name} (tolerance {rtol:g})")
    return 0 if worst <= rtol else 1


if __name__ == "__main__":
    sys.exit(main())
