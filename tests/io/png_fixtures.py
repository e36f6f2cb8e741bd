#!/usr/bin/python3
"""Writes PNG decoding fixtures for tests/io/test_png.c into DIR.

Every valid colour type / bit depth combination, each plain and Adam7-interlaced, written by a
small encoder here (Pillow cannot write interlaced, 2/4-bit grey or 16-bit colour PNGs), plus a
few files saved by Pillow itself (adaptive filters). For each NAME.png, NAME.expected holds the
grey image the decoder must return, little-endian uint8 or uint16, and DIR/cases.txt lists
"name width height color_type bit_depth interlaced out_depth".

Expected values come from Pillow, Image.open(f).convert("L") (or mode I;16 for 16-bit grey),
except for 16-bit colour and grey+alpha, which Pillow truncates to 8 bits: there they are the
documented formula, (19595 R + 38470 G + 7471 B + 32768) >> 16 on the 16-bit values, or the grey
channel.
"""
import struct
import sys
import warnings
import zlib

import numpy as np
from PIL import Image

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def pack_rows(samples, depth):
    """samples: [h, w * channels] ints -> filter-0 scanlines."""
    out = bytearray()
    for row in samples:
        out.append(0)
        if depth == 16:
            out += np.asarray(row, dtype=">u2").tobytes()
        elif depth == 8:
            out += np.asarray(row, dtype=np.uint8).tobytes()
        else:
            per_byte = 8 // depth
            padded = list(row) + [0] * (-len(row) % per_byte)
            for i in range(0, len(padded), per_byte):
                byte = 0
                for v in padded[i:i + per_byte]:
                    byte = (byte << depth) | int(v)
                out.append(byte)
    return bytes(out)


def encode(path, samples, color_type, depth, interlaced, plte=None, trns=None):
    """samples: [h, w, channels] array of stored values (palette indices for type 3)."""
    h, w, c = samples.shape
    raw = bytearray()
    if interlaced:
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += pack_rows(sub.reshape(sub.shape[0], -1), depth)
    else:
        raw += pack_rows(samples.reshape(h, w * c), depth)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, int(interlaced))
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    if plte is not None:
        data += chunk(b"PLTE", bytes(np.asarray(plte, dtype=np.uint8).ravel()))
    if trns is not None:
        data += chunk(b"tRNS", trns)
    data += chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def pillow_grey(path):
    im = Image.open(path)
    if im.mode in ("I;16", "I;16B", "I"):
        return np.asarray(im).astype(np.uint16), 16
    return np.asarray(im.convert("L")), 8


def luma16(rgb):
    r, g, b = (rgb[..., i].astype(np.uint64) for i in range(3))
    return ((19595 * r + 38470 * g + 7471 * b + 32768) >> 16).astype(np.uint16)


def main(out_dir):
    warnings.simplefilter("ignore")  # Pillow's note on palette transparency
    rng = np.random.default_rng(20240117)
    cases = []

    def add(name, w, h, color_type, depth, interlaced, expected, out_depth):
        dtype = "<u2" if out_depth == 16 else np.uint8
        assert expected.shape == (h, w), name
        expected.astype(dtype).tofile(f"{out_dir}/{name}.expected")
        cases.append(f"{name} {w} {h} {color_type} {depth} {int(interlaced)} {out_depth}")

    for w, h in ((37, 29), (3, 2)):  # 3x2: several Adam7 passes are empty
        combos = [(0, d) for d in (1, 2, 4, 8, 16)] + [(3, d) for d in (1, 2, 4, 8)]
        combos += [(t, d) for t in (2, 4, 6) for d in (8, 16)]
        for color_type, depth in combos:
            c = CHANNELS[color_type]
            top = (1 << depth) - 1
            samples = rng.integers(0, top + 1, size=(h, w, c), dtype=np.int64)
            plte = trns = None
            if color_type == 3:
                plte = rng.integers(0, 256, size=(1 << depth, 3))
                samples = rng.integers(0, 1 << depth, size=(h, w, 1))
            for interlaced in (0, 1):
                name = f"t{color_type}_d{depth}_{w}x{h}_{'adam7' if interlaced else 'plain'}"
                path = f"{out_dir}/{name}.png"
                encode(path, samples, color_type, depth, interlaced, plte, trns)
                if depth == 16 and color_type != 0:
                    grey = luma16(samples) if color_type in (2, 6) else samples[..., 0]
                    add(name, w, h, color_type, depth, interlaced, grey.astype(np.uint16), 16)
                else:
                    expected, out_depth = pillow_grey(path)
                    add(name, w, h, color_type, depth, interlaced, expected, out_depth)

    # tRNS on palette (becomes alpha, then dropped), grey and RGB (a transparent colour key).
    w, h = 19, 11
    idx = rng.integers(0, 16, size=(h, w, 1))
    plte = rng.integers(0, 256, size=(16, 3))
    encode(f"{out_dir}/trns_palette.png", idx, 3, 4, 0, plte, bytes(range(0, 160, 10)))
    add("trns_palette", w, h, 3, 4, 0, pillow_grey(f"{out_dir}/trns_palette.png")[0], 8)
    grey = rng.integers(0, 256, size=(h, w, 1))
    encode(f"{out_dir}/trns_grey.png", grey, 0, 8, 0, trns=struct.pack(">H", int(grey[0, 0, 0])))
    add("trns_grey", w, h, 0, 8, 0, pillow_grey(f"{out_dir}/trns_grey.png")[0], 8)
    rgb = rng.integers(0, 256, size=(h, w, 3))
    encode(f"{out_dir}/trns_rgb.png", rgb, 2, 8, 1, trns=struct.pack(">HHH", 1, 2, 3))
    add("trns_rgb", w, h, 2, 8, 1, pillow_grey(f"{out_dir}/trns_rgb.png")[0], 8)

    # Files written by Pillow: adaptive filters, real-world chunk layout.
    w, h = 41, 23
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = ((xx * 5 + yy * 3) % 256).astype(np.uint8)
    for mode, arr in (("L", smooth),
                      ("RGB", np.stack([smooth, 255 - smooth, smooth // 2], axis=-1)),
                      ("I;16", (smooth.astype(np.uint16) * 257 + yy.astype(np.uint16)))):
        name = "pillow_" + mode.replace(";", "")
        path = f"{out_dir}/{name}.png"
        im = Image.fromarray(arr, mode) if mode != "I;16" else Image.new("I;16", (w, h))
        if mode == "I;16":
            im.frombytes(arr.astype("<u2").tobytes())
        im.save(path, optimize=True)
        expected, out_depth = pillow_grey(path)
        reopened = Image.open(path)
        color_type = {"L": 0, "RGB": 2, "I;16": 0}[mode]
        add(name, w, h, color_type, 16 if mode == "I;16" else 8, 0, expected, out_depth)
        assert reopened.size == (w, h)
    im = Image.fromarray(smooth, "L").convert("P")
    im.save(f"{out_dir}/pillow_P.png")
    add("pillow_P", w, h, 3, 8, 0, pillow_grey(f"{out_dir}/pillow_P.png")[0], 8)

    with open(f"{out_dir}/cases.txt", "w") as f:
        f.write("\n".join(cases) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
