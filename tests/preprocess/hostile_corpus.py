"""Writes a hostile preprocessing corpus: an image folder and an NIH-style metadata CSV with
every problem rdino-preprocess must report, and the outcome each input must get.

usage: hostile_corpus.py DIR
  DIR/images/...        the image root
  DIR/outside/x.png     a valid PNG outside the root (target of an escaping symlink)
  DIR/Data_Entry.csv    NIH Data_Entry_2017.csv quirks: BOM, CRLF, 9 header names for 11
                        fields, a trailing comma on every line
  DIR/expected.csv      file,outcome,reason: one line per report line the stage must write
                        (row numbers are checked through the file column)
  DIR/counts            "rows N orphans M kept K": what the summary must add up to
Test-only (Python is never part of the product)."""
import io
import os
import struct
import sys
import zlib

from PIL import Image

out = sys.argv[1]
root = os.path.join(out, "images")
os.makedirs(root)
os.makedirs(os.path.join(out, "outside"))


def png_bytes(img):
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def gradient(w, h, mode="L", seed=0):
    img = Image.new("L", (w, h))
    img.putdata([((x * 7 + y * 3 + seed * 11) % 251) for y in range(h) for x in range(w)])
    return img.convert(mode)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def raw_png(width, height, depth, colour, rows=b""):
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) +
            chunk(b"IEND", b""))


def write(rel, data):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


good = png_bytes(gradient(40, 30))
write("ok_grey8.png", good)
write("ok_rgb.png", png_bytes(gradient(30, 40, "RGB", 1)))
write("ok_grey16.png", png_bytes(gradient(33, 33, "I;16", 2)))
write("ok_palette.png", png_bytes(gradient(20, 24, "P", 3)))
write("sub/dir/nested.png", png_bytes(gradient(24, 20, "L", 4)))
write("converted.png", png_bytes(gradient(25, 25, "L", 5)))  # the CSV says converted.jpg
write("flat.png", png_bytes(Image.new("L", (32, 32), 77)))
write("warn_sex.png", png_bytes(gradient(20, 20, "L", 6)))
write("warn_age.png", png_bytes(gradient(20, 20, "L", 7)))
write("warn_noage.png", png_bytes(gradient(20, 20, "L", 8)))
write("lateral.png", png_bytes(gradient(20, 20, "L", 9)))
write("not_png.png", b"\xff\xd8\xff\xe0 this is a JPEG header, not a PNG" * 4)
write("empty.png", b"")
write("truncated.png", good[: len(good) // 2])
crc = bytearray(good)
crc[40] ^= 0x55  # inside IDAT: its CRC no longer matches
write("crc.png", bytes(crc))
write("zero.png", raw_png(0, 16, 8, 0))
write("huge.png", raw_png(50000, 50000, 8, 0))
write("depth.png", raw_png(16, 16, 3, 0))  # grey at 3 bits does not exist
write("dup.png", png_bytes(gradient(20, 20, "L", 10)))
write("orphan.png", png_bytes(gradient(20, 20, "L", 11)))
write("a/same.png", png_bytes(gradient(20, 20, "L", 12)))
write("b/same.png", png_bytes(gradient(20, 20, "L", 13)))
write("._ok_grey8.png", b"AppleDouble litter: hidden, never listed")
write("notes.txt", b"not an image: ignored")
with open(os.path.join(out, "outside", "x.png"), "wb") as f:
    f.write(good)
os.symlink(os.path.join(out, "outside", "x.png"), os.path.join(root, "link_out.png"))
os.symlink(os.path.join(out, "outside"), os.path.join(root, "outdir"))

# (image index, age, sex, view, expected outcome, expected reason); None = no report line.
# Rows are written in this order, one per line after the header (line 2 onwards).
rows = [
    ("ok_grey8.png", "58", "M", "PA", "kept", None),
    ("ok_rgb.png", "060Y", "F", "AP", "kept", None),
    ("ok_grey16.png", "33", "F", "PA", "kept", None),
    ("ok_palette.png", "41", "M", "PA", "kept", None),
    ("sub/dir/nested.png", "50", "M", "PA", "kept", None),
    ("converted.jpg", "51", "F", "PA", "kept", None),
    ("flat.png", "52", "M", "PA", "warning", "constant_image"),
    ("warn_sex.png", "53", "X", "PA", "warning", "unknown_sex"),
    ("warn_age.png", "413", "F", "PA", "warning", "impossible_age"),
    ("warn_noage.png", "", "F", "PA", "warning", "missing_age"),
    ("lateral.png", "54", "M", "LL", "excluded", "view_excluded"),
    ("not_png.png", "55", "M", "PA", "rejected", "not_png"),
    ("empty.png", "55", "M", "PA", "rejected", "empty"),
    ("truncated.png", "55", "M", "PA", "rejected", "truncated"),
    ("crc.png", "55", "M", "PA", "rejected", "crc"),
    ("zero.png", "55", "M", "PA", "rejected", "zero_size"),
    ("huge.png", "55", "M", "PA", "rejected", "too_large"),
    ("depth.png", "55", "M", "PA", "rejected", "unsupported"),
    ("missing.png", "55", "M", "PA", "rejected", "missing"),
    ("../outside/x.png", "55", "M", "PA", "rejected", "path_escapes_root"),
    ("/etc/hostname", "55", "M", "PA", "rejected", "path_escapes_root"),
    ("link_out.png", "55", "M", "PA", "rejected", "path_escapes_root"),
    ("outdir/x.png", "55", "M", "PA", "rejected", "path_escapes_root"),
    ("same.png", "55", "M", "PA", "rejected", "ambiguous_file"),
    ("dup.png", "56", "F", "PA", "kept", None),
    ("dup.png", "57", "F", "PA", "rejected", "duplicate_image_id"),
    ("MALFORMED", "", "", "", "rejected", "malformed_row"),
]
header = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
          "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
lines = [header]
expected = []
kept = 0
for i, (name, age, sex, view, outcome, reason) in enumerate(rows):
    if name == "MALFORMED":
        lines.append("short.png,No Finding,0,99,50,M,PA,2048,2048,")
        expected.append(("short.png", "rejected", "malformed_row"))
        continue
    lines.append(f"{name},No Finding,0,{100 + i},{age},{sex},{view},2048,2500,0.14,0.14,")
    if outcome in ("kept", "warning"):
        kept += 1
    if reason:
        expected.append((name, outcome, reason))
for orphan in ("a/same.png", "b/same.png", "orphan.png"):
    expected.append((orphan, "rejected", "no_metadata"))
with open(os.path.join(out, "Data_Entry.csv"), "wb") as f:
    f.write(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
with open(os.path.join(out, "expected.csv"), "w") as f:
    for e in expected:
        f.write(",".join(e) + "\n")
with open(os.path.join(out, "counts"), "w") as f:
    f.write(f"rows {len(rows)} orphans 3 kept {kept}\n")
