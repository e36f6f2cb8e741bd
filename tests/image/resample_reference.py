#!/usr/bin/python3
"""Reference resampling results for tests/image/test_resample.c, written into DIR.

cases.txt, one line per case:
  name kernel mode in_w in_h full_w full_h crop_x crop_y out_w out_h
with NAME.in (the input: uint8 for mode L, float32 for mode F) and NAME.want (float32, out_h x
out_w). Mode L: Pillow's Image.resize(BICUBIC) of an 8-bit image, cropped (8-bit results).
Mode F: Pillow's resize of a float image (double-precision weights and sums), cropped. Kernel
bspline: Pillow's algorithm (precompute_coeffs) written out here in numpy with the cubic
B-spline kernel, as matrices applied in double; the same numpy code is checked against Pillow
with the cubic kernel first, so the two agree on the algorithm.

geometry.txt: "in_w in_h size full_w full_h crop_x crop_y" as torchvision computes them:
Resize(size) then CenterCrop(size) (int() truncation, Python's round()).
"""
import math
import sys

import numpy as np
from PIL import Image


def cubic(x):
    a = -0.5
    x = abs(x)
    if x < 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def bspline(x):
    x = abs(x)
    if x < 1:
        return 2 / 3 - x * x + x ** 3 / 2
    if x < 2:
        return (2 - x) ** 3 / 6
    return 0.0


def weights(kernel, in_size, out_size):
    """Pillow's precompute_coeffs as a dense out_size x in_size matrix."""
    scale = in_size / out_size
    fs = max(scale, 1.0)
    support = 2.0 * fs
    m = np.zeros((out_size, in_size))
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        w = np.array([kernel((x - center + 0.5) / fs) for x in range(lo, hi)])
        m[i, lo:hi] = w / w.sum()
    return m


def numpy_resize(img, kernel, w, h):
    return weights(kernel, img.shape[0], h) @ img.astype(np.float64) @ weights(
        kernel, img.shape[1], w).T


def test_image(rng, w, h):
    """Smooth structure, sharp edges and noise, 0..255."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = 128 + 80 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    img[(xx // 9 + yy // 9) % 4 == 0] = 250  # edges: cubic overshoots here
    img[h // 3:h // 2, w // 4:w // 3] = 3
    img += rng.normal(0, 6, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def torchvision_geometry(in_w, in_h, size):
    short, long = (in_w, in_h) if in_w <= in_h else (in_h, in_w)
    new_long = int(size * long / short)
    full_w, full_h = (size, new_long) if in_w <= in_h else (new_long, size)
    crop_x = int(round((full_w - size) / 2.0))
    crop_y = int(round((full_h - size) / 2.0))
    return full_w, full_h, crop_x, crop_y


def main(out):
    rng = np.random.default_rng(7)
    lines = []

    def case(name, kernel, mode, src, full_w, full_h, box):
        in_h, in_w = src.shape
        cx, cy, ow, oh = box
        if mode == "L":
            want = np.asarray(Image.fromarray(src, "L").resize((full_w, full_h), Image.BICUBIC))
            src.tofile(f"{out}/{name}.in")
        else:
            f = src.astype(np.float32) / 255.0
            f.tofile(f"{out}/{name}.in")
            if kernel == "cubic":
                want = np.asarray(Image.fromarray(f, "F").resize((full_w, full_h), Image.BICUBIC))
                ref = numpy_resize(f, cubic, full_w, full_h)
                assert np.abs(ref - want).max() < 1e-5, "numpy reference disagrees with Pillow"
            else:
                want = numpy_resize(f, bspline, full_w, full_h)
        want = np.ascontiguousarray(want[cy:cy + oh, cx:cx + ow], dtype=np.float32)
        want.tofile(f"{out}/{name}.want")
        lines.append(f"{name} {kernel} {mode} {in_w} {in_h} {full_w} {full_h} {cx} {cy} {ow} {oh}")

    shapes = [("down", 97, 61, 40, 25), ("up", 23, 17, 61, 45), ("odd", 31, 17, 45, 29),
              ("mixed", 50, 20, 21, 47), ("strong_down", 300, 211, 29, 21),
              ("same", 33, 21, 33, 21), ("tiny", 3, 2, 7, 5), ("to_one", 9, 6, 1, 1)]
    for label, iw, ih, ow, oh in shapes:
        src = test_image(rng, iw, ih)
        case(f"L_cubic_{label}", "cubic", "L", src, ow, oh, (0, 0, ow, oh))
        case(f"F_cubic_{label}", "cubic", "F", src, ow, oh, (0, 0, ow, oh))
        case(f"F_bspline_{label}", "bspline", "F", src, ow, oh, (0, 0, ow, oh))
    # Shorter side to S and centre crop, as the pipeline does it.
    for iw, ih, size in ((120, 90, 37), (64, 101, 50), (1024, 1024, 518), (97, 211, 64)):
        src = test_image(rng, iw, ih)
        fw, fh, cx, cy = torchvision_geometry(iw, ih, size)
        for kernel in ("cubic", "bspline"):
            case(f"F_{kernel}_crop_{iw}x{ih}", kernel, "F", src, fw, fh, (cx, cy, size, size))
        case(f"L_cubic_crop_{iw}x{ih}", "cubic", "L", src, fw, fh, (cx, cy, size, size))

    with open(f"{out}/cases.txt", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(f"{out}/geometry.txt", "w") as f:
        for in_w, in_h, size in ((1024, 1024, 518), (2500, 2048, 518), (2048, 2500, 518),
                                 (519, 1000, 518), (1000, 3000, 518), (3000, 2999, 518),
                                 (640, 641, 224), (641, 640, 224), (100, 103, 100),
                                 (100, 105, 100), (100, 107, 100), (7, 5, 3), (1, 10, 4)):
            fw, fh, cx, cy = torchvision_geometry(in_w, in_h, size)
            f.write(f"{in_w} {in_h} {size} {fw} {fh} {cx} {cy}\n")
    assert math.isclose(sum(bspline(0.3 - n) for n in range(-3, 4)), 1.0)


if __name__ == "__main__":
    main(sys.argv[1])
