#!/usr/bin/python3
"""Pillow peer of rd_prep_image (kernel cubic, min-max, 8 bits, centre crop), single-threaded:
open, convert("L"), resize the shorter side to SIZE with BICUBIC (torchvision's geometry), centre
crop (torchvision's offsets), min-max to uint8 with numpy (round half up).

  pillow_preprocess.py SIZE [--out DIR] FILE...
Prints "images/s: X" (per CPU second), "wall images/s" and "peak RSS MiB" (after one untimed warm-up pass over the first file). With --out,
also writes DIR/<file name>.raw (SIZE x SIZE uint8): tests/preprocess/test_preprocess_image.c checks
that this pipeline and ours agree, so the benchmark compares like with like.
"""
import os
import resource
import sys
import time

import numpy as np
from PIL import Image


def preprocess(path, size):
    im = Image.open(path).convert("L")
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    full_w, full_h = (size, new_long) if w <= h else (new_long, size)
    im = im.resize((full_w, full_h), Image.BICUBIC)
    left, top = int(round((full_w - size) / 2.0)), int(round((full_h - size) / 2.0))
    a = np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.float32)
    lo, hi = a.min(), a.max()
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.floor((a - lo) * np.float32(255.0 / (hi - lo)) + np.float32(0.5)).astype(np.uint8)


def main(argv):
    size = int(argv[0])
    files, out = argv[1:], None
    if files[:1] == ["--out"]:
        out, files = files[1], files[2:]
    preprocess(files[0], size)
    start, cpu_start = time.perf_counter(), time.process_time()
    for f in files:
        a = preprocess(f, size)
        if out:
            a.tofile(os.path.join(out, os.path.basename(f) + ".raw"))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"images/s: {len(files) / cpu:.2f}")
    print(f"wall images/s: {len(files) / seconds:.2f}")
    print(f"peak RSS MiB: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
