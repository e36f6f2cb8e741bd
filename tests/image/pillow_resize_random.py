#!/usr/bin/python3
"""Random Pillow BICUBIC resizes for tests/image/test_pillow_resample.c, written into DIR at test
time: DIR/cases.txt lists "name in_w in_h out_w out_h"; DIR/name.in and DIR/name.out hold the
uint8 input and Image.fromarray(input, "L").resize((out_w, out_h), Image.BICUBIC), row-major.
Sizes 1..160 (log-uniform, so factors from 1/160 to 160 turn up), a third of the cases keeping one
axis; contents are noise with hard 0/255 bars so that both passes clamp.

  /usr/bin/python3 tests/image/pillow_resize_random.py DIR [COUNT]
"""
import sys

import numpy as np
from PIL import Image


def main(out, count):
    rng = np.random.default_rng(9_4_0)

    def sizes():
        return max(1, int(np.exp(rng.uniform(0, np.log(160)))))

    lines = []
    for i in range(count):
        w, h, ow, oh = sizes(), sizes(), sizes(), sizes()
        if i % 3 == 1:
            ow = w
        elif i % 3 == 2:
            oh = h
        img = rng.integers(0, 256, size=(h, w)).astype(np.uint8)
        img[:, rng.random(w) < 0.2] = 255
        img[rng.random(h) < 0.1, :] = 0
        res = np.asarray(Image.fromarray(img, "L").resize((ow, oh), Image.BICUBIC))
        name = f"r{i:03d}"
        img.tofile(f"{out}/{name}.in")
        res.tofile(f"{out}/{name}.out")
        lines.append(f"{name} {w} {h} {ow} {oh}")
    with open(f"{out}/cases.txt", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 300)
