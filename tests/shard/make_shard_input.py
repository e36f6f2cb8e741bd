"""Writes a small rdino-preprocess-style folder for the rdino-shard tests:
DIR/manifest.csv + DIR/images/*.png (grey, SIZE x SIZE, 8 or 16 bits), PATIENTS patients with
1-3 images each, some unknown ages/sexes/views, ids with commas and quotes (RFC 4180).
    python3 make_shard_input.py DIR PATIENTS SIZE BITS"""
import csv
import os
import sys

import numpy as np
from PIL import Image

out, patients, size, bits = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.makedirs(os.path.join(out, "images", "sub"), exist_ok=True)
rng = np.random.default_rng(1234)
rows, source_row = [], 2
for p in range(patients):
    for f in range(1 + p % 3):
        image_id = f'img{p:05d}_{f:03d}{"," if p == 3 else ""}{chr(34) if p == 4 else ""}.png'
        rel = f"images/sub/{image_id}" if p % 2 else f"images/{image_id}"
        if bits == 16:
            pixels = rng.integers(0, 65536, (size, size), dtype=np.uint16)
            Image.fromarray(pixels, mode="I;16").save(os.path.join(out, rel))
        else:
            pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(os.path.join(out, rel))
        age = "" if p % 7 == 0 else f"{20 + p % 70}.{f}"
        sex = "" if p % 11 == 0 else "MF"[p % 2]
        view = ["PA", "AP", ""][(p + f) % 3]
        rows.append([image_id, rel, f"P{p:06d}", age, sex, view, size, size, source_row])
        source_row += 1 + p % 2
with open(os.path.join(out, "manifest.csv"), "w", newline="") as fh:
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(["image_id", "file", "patient_id", "age", "sex", "view", "width", "height",
                "source_row"])
    w.writerows(rows)
print(len(rows))
