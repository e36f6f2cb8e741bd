#!/usr/bin/python3
"""same_outputs.py A B [IGNORE...]: exit 0 when A and B (two folders, or two files) hold the same
files with the same contents: HDF5 files dataset for dataset and attribute for attribute (HDF5
keeps object times and layout that differ between equal writes), every other file byte for byte.
Files or folders whose name is one of IGNORE are left out (logs with times, journals). Prints
the names of files in only one of them, or the first differing dataset, attribute or file.

same_outputs.py --published A B [IGNORE...]: B is what a stopped run left; every file it
published under a final name (temporary .NAME.tmp files aside) must be in A with the same
contents, i.e. nothing half-written is visible."""
import os
import sys

import h5py
import numpy as np


def files(root, ignore):
    if os.path.isfile(root):
        return {""}
    out = set()
    for d, dirs, names in os.walk(root):
        dirs[:] = [x for x in dirs if x not in ignore]
        for n in names:
            if n not in ignore:
                out.add(os.path.relpath(os.path.join(d, n), root))
    return out


def same_attrs(a, b, where):
    if set(a.attrs) != set(b.attrs):
        return f"{where}: attributes {sorted(set(a.attrs) ^ set(b.attrs))}"
    for k in a.attrs:
        if not np.array_equal(np.asarray(a.attrs[k]), np.asarray(b.attrs[k])):
            return f"{where}: attribute {k}"
    return None


def same_h5(pa, pb):
    with h5py.File(pa, "r") as a, h5py.File(pb, "r") as b:
        names_a, names_b = [], []
        a.visit(names_a.append)
        b.visit(names_b.append)
        if sorted(names_a) != sorted(names_b):
            return f"objects {sorted(set(names_a) ^ set(names_b))}"
        why = same_attrs(a, b, "/")
        for n in names_a:
            if why:
                break
            why = same_attrs(a[n], b[n], n)
            if not why and isinstance(a[n], h5py.Dataset):
                x, y = a[n][()], b[n][()]
                if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                    why = f"dataset {n}"
        return why


def is_temporary(rel):
    name = os.path.basename(rel)
    return name.startswith(".") and name.endswith(".tmp")


def main(a, b, ignore, published_only=False):
    fa, fb = files(a, ignore), files(b, ignore)
    if published_only:
        fb = {rel for rel in fb if not is_temporary(rel)}
        if fb - fa:
            print("published but not in the reference:", sorted(fb - fa))
            return 1
        fa = fb
    elif fa != fb:
        print("files in only one:", sorted(fa ^ fb))
        return 1
    for rel in sorted(fa):
        pa, pb = (os.path.join(a, rel), os.path.join(b, rel)) if rel else (a, b)
        if pa.endswith(".h5"):
            why = same_h5(pa, pb)
        else:
            with open(pa, "rb") as x, open(pb, "rb") as y:
                why = None if x.read() == y.read() else "bytes"
        if why:
            print(f"{rel}: {why}")
            return 1
    return 0


if __name__ == "__main__":
    published = sys.argv[1] == "--published"
    argv = sys.argv[2:] if published else sys.argv[1:]
    sys.exit(main(argv[0], argv[1], set(argv[2:]), published))
