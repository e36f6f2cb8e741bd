#!/usr/bin/python3
"""Writes tests/reference/fixtures/pillow_hf.h5: Pillow 9.4 (Debian 12's python3-pil) and numpy
reference outputs for rdino's Pillow-exact resize, PNG -> RGB conversion and Hugging Face
BitImageProcessor pipeline (tests/image/test_pillow_resample.c, test_pillow_convert.c,
test_hf_preprocess.c). Covers what the three PNGs of ../shared/fixtures/hf_dinov2_tiny do not.

  /usr/bin/python3 tests/reference/make_pillow_fixtures.py [OUT.h5]

Layout (all uint8 unless noted; every value computed here by Pillow / numpy):
  /resize/NAME/input [h, w], /resize/NAME/output [H, W]
      Image.fromarray(input, "L").resize((W, H), Image.BICUBIC). Mode "L" runs the same 8-bit
      code per channel as "RGB" (Resample.c ImagingResampleHorizontal_8bpc / Vertical_8bpc).
  /convert/NAME/png [bytes]: a PNG written by tests/io/png_fixtures.py's encoder
  /convert/NAME/rgb [h, w, 3]: np.asarray(Image.open(png).convert("RGB"))
  /convert/NAME/pixel_values float32 [3, 16, 16]: the pipeline below with SMALL settings
  /convert/NAME attrs: color_type, bit_depth, clipped (samples > 255 of a 16-bit grey image)
  /pipeline/NAME/pixel_values float32 [3, H, W]: the pipeline on /convert/<attr image>/png
  /pipeline/NAME attrs: image (name of the convert case), and the processor settings named as
      rd_hf_processor's fields (do_resize, shortest_edge, size_height, size_width, resample,
      do_center_crop, crop_height, crop_width, do_rescale, rescale_factor, do_normalize,
      image_mean [3], image_std [3], do_convert_rgb)
The pipeline is bench/peers/hf_preprocess_pillow.py's bit_preprocess, transformers'
BitImageProcessor written out with Pillow and numpy (transformers is not installed here; the C
test also checks that module against the real transformers outputs in ../shared).

Deterministic: fixed seeds, no HDF5 timestamps; re-running gives a byte-identical file.
"""
import importlib.util
import io
import os
import struct
import sys
import warnings

import h5py
import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


png_fixtures = load("png_fixtures", "tests/io/png_fixtures.py")
hf = load("hf_preprocess_pillow", "bench/peers/hf_preprocess_pillow.py")

RAD_MEAN, RAD_STD = [0.5307] * 3, [0.2583] * 3
SMALL = dict(do_convert_rgb=True, do_resize=True, shortest_edge=16, size_height=0, size_width=0,
             resample=3, do_center_crop=True, crop_height=16, crop_width=16, do_rescale=True,
             rescale_factor=0.00392156862745098, do_normalize=True, image_mean=RAD_MEAN,
             image_std=RAD_STD)


def hf_config(flat):
    """rd_hf_processor-style flat settings -> the preprocessor_config.json form."""
    cfg = dict(flat)
    cfg["size"] = ({"shortest_edge": flat["shortest_edge"]} if flat["shortest_edge"] > 0 else
                   {"height": flat["size_height"], "width": flat["size_width"]})
    cfg["crop_size"] = {"height": flat["crop_height"], "width": flat["crop_width"]}
    return cfg


def new_group(parent, name):
    """A group without access/modification times (the HDF5 1.10 format stores them)."""
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    return h5py.Group(h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl))


def dataset(group, name, data):
    """Compressed (deflate, with byte shuffling for floats): the file stays small."""
    data = np.asarray(data)
    group.create_dataset(name, data=data, track_times=False, compression="gzip",
                         compression_opts=9, shuffle=data.dtype.itemsize > 1, chunks=data.shape)


def resize_cases(f, rng):
    g = new_group(f, "resize")
    cases = {  # name: (in_w, in_h, out_w, out_h)
        "up_5x7_to_23x31": (5, 7, 23, 31),
        "up_61x47_to_150x100": (61, 47, 150, 100),
        "down_97x61_to_40x29": (97, 61, 40, 29),
        "down_150x90_to_7x5": (150, 90, 7, 5),
        "down_1500x3_to_2x3": (1500, 3, 2, 3),  # 3001-tap kernel, vertical pass skipped
        "down_4x1200_to_4x1": (4, 1200, 4, 1),
        "same_w_64x50_to_64x23": (64, 50, 64, 23),
        "same_h_64x50_to_31x50": (64, 50, 31, 50),
        "same_64x50": (64, 50, 64, 50),
        "mixed_40x30_to_90x11": (40, 30, 90, 11),
        "odd_33x17_to_13x19": (33, 17, 13, 19),
        "tiny_1x9_to_1x4": (1, 9, 1, 4),
        "tiny_1x1_to_5x3": (1, 1, 5, 3),
        "tiny_2x2_to_3x3": (2, 2, 3, 3),
        "tiny_2x2_to_1x1": (2, 2, 1, 1),
        "tiny_2x2_to_7x2": (2, 2, 7, 2),
        "down_1024x6_to_518x3": (1024, 6, 518, 3),
        "up_600x6_to_621x7": (600, 6, 621, 7),
    }
    for name, (w, h, ow, oh) in cases.items():
        # Noise over hard 0/255 bars: the cubic overshoots at the bars, so both passes clamp.
        img = rng.integers(0, 256, size=(h, w)).astype(np.uint8)
        img[:, (np.arange(w) // 3) % 4 == 0] = 255
        img[(np.arange(h) // 2) % 5 == 0, :] = 0
        out = np.asarray(Image.fromarray(img, "L").resize((ow, oh), Image.BICUBIC))
        c = new_group(g, name)
        dataset(c, "input", img)
        dataset(c, "output", out)


def png_bytes(samples, color_type, depth, interlaced=0, plte=None, trns=None):
    path = os.path.join(TMP, "case.png")
    png_fixtures.encode(path, samples, color_type, depth, interlaced, plte, trns)
    with open(path, "rb") as fh:
        return fh.read()


def convert_cases(f, rng):
    g = new_group(f, "convert")
    w, h = 29, 21

    def rand(top, channels, size=(h, w)):
        return rng.integers(0, top + 1, size=size + (channels,), dtype=np.int64)

    grey = rand(255, 1)
    cases = {
        "grey1": (rand(1, 1), 0, 1, {}),
        "grey2": (rand(3, 1), 0, 2, {}),
        "grey4": (rand(15, 1), 0, 4, {}),
        "grey8": (grey, 0, 8, {}),
        "grey8_small_13x11": (rand(255, 1, (11, 13)), 0, 8, {}),
        "grey8_adam7": (grey, 0, 8, {"interlaced": 1}),
        "grey8_trns": (grey, 0, 8, {"trns": struct.pack(">H", 7)}),
        "grey16_low": (rand(400, 1), 0, 16, {}),  # some samples clip, some do not
        "grey16_full": (rand(65535, 1), 0, 16, {}),
        "grey16_trns": (rand(400, 1), 0, 16, {"trns": struct.pack(">H", 100)}),
        "grey_alpha8": (rand(255, 2), 4, 8, {}),
        "grey_alpha16": (rand(65535, 2), 4, 16, {}),
        "rgb8": (rand(255, 3), 2, 8, {}),
        "rgb8_grey": (np.repeat(grey, 3, axis=2), 2, 8, {}),
        "rgb8_trns": (rand(255, 3), 2, 8, {"trns": struct.pack(">HHH", 1, 2, 3)}),
        "rgb16": (rand(65535, 3), 2, 16, {}),
        "rgb16_adam7": (rand(65535, 3), 2, 16, {"interlaced": 1}),
        "rgba8": (rand(255, 4), 6, 8, {}),
        "rgba16": (rand(65535, 4), 6, 16, {}),
        "palette1": (rand(1, 1), 3, 1, {"plte": rng.integers(0, 256, size=(2, 3))}),
        "palette2_adam7": (rand(3, 1), 3, 2,
                           {"plte": rng.integers(0, 256, size=(4, 3)), "interlaced": 1}),
        "palette4_trns": (rand(15, 1), 3, 4, {"plte": rng.integers(0, 256, size=(16, 3)),
                                              "trns": bytes(range(0, 160, 10))}),
        "palette8": (rand(255, 1), 3, 8, {"plte": rng.integers(0, 256, size=(256, 3))}),
        # Indices past a 5-entry PLTE: Pillow's default entries (i, i, i).
        "palette8_short": (rand(255, 1), 3, 8, {"plte": rng.integers(0, 256, size=(5, 3))}),
        "palette8_grey": (rand(255, 1), 3, 8,
                          {"plte": np.repeat(np.arange(255, -1, -1)[:, None], 3, axis=1)}),
    }
    for name, (samples, color_type, depth, extra) in cases.items():
        data = png_bytes(samples, color_type, depth, extra.get("interlaced", 0),
                         extra.get("plte"), extra.get("trns"))
        im = Image.open(io.BytesIO(data))
        rgb = np.asarray(im.convert("RGB"))
        pixel_values = hf.bit_preprocess(Image.open(io.BytesIO(data)), hf_config(SMALL))
        c = new_group(g, name)
        dataset(c, "png", np.frombuffer(data, dtype=np.uint8))
        dataset(c, "rgb", rgb)
        dataset(c, "pixel_values", pixel_values.astype(np.float32))
        c.attrs["color_type"] = color_type
        c.attrs["bit_depth"] = depth
        c.attrs["clipped"] = int((samples > 255).sum()) if (color_type, depth) == (0, 16) else 0


def pipeline_cases(f):
    g = new_group(f, "pipeline")
    clip_mean = [0.48145466, 0.4578275, 0.40821073]
    clip_std = [0.26862954, 0.26130258, 0.27577711]
    cases = {  # name: (convert case, changes to SMALL)
        "odd_21_rgb": ("rgb8", dict(shortest_edge=21, crop_height=21, crop_width=21)),
        "odd_21_upscale": ("grey8_small_13x11",
                           dict(shortest_edge=21, crop_height=21, crop_width=21)),
        "odd_21_grey16": ("grey16_full", dict(shortest_edge=21, crop_height=21, crop_width=21)),
        "pad_both": ("rgb8", dict(shortest_edge=14, crop_height=18, crop_width=22)),
        "pad_width_only": ("rgb8", dict(shortest_edge=14, crop_height=12, crop_width=26)),
        "pad_height_only": ("palette8", dict(shortest_edge=12, crop_height=17, crop_width=9)),
        "no_resize_crop": ("rgb8", dict(do_resize=False, crop_height=14, crop_width=19)),
        "no_resize_pad": ("grey8_small_13x11", dict(do_resize=False, crop_height=15, crop_width=17)),
        "no_crop": ("rgb8", dict(shortest_edge=12, do_center_crop=False)),
        "no_crop_small": ("grey8_small_13x11",
                             dict(shortest_edge=8, do_center_crop=False)),
        "exact_size": ("rgb8", dict(shortest_edge=0, size_height=20, size_width=13,
                                    crop_height=18, crop_width=12)),
        "same_size": ("rgb8", dict(shortest_edge=21, crop_height=21, crop_width=29)),
        "no_rescale": ("rgb8", dict(do_rescale=False, image_mean=[127.0, 100.5, 80.25],
                                    image_std=[60.0, 70.0, 3.0])),
        "no_normalize": ("grey4", dict(do_normalize=False)),
        "raw": ("rgb8", dict(do_rescale=False, do_normalize=False)),
        "clip_stats_on_grey": ("grey8", dict(image_mean=clip_mean, image_std=clip_std)),
        "odd_rescale": ("rgb16", dict(rescale_factor=0.003)),
        "no_convert_rgb": ("rgb8", dict(do_convert_rgb=False)),
    }
    for name, (image, changes) in cases.items():
        flat = dict(SMALL, **changes)
        data = f["convert"][image]["png"][()].tobytes()
        pixel_values = hf.bit_preprocess(Image.open(io.BytesIO(data)), hf_config(flat))
        c = new_group(g, name)
        dataset(c, "pixel_values", pixel_values.astype(np.float32))
        c.attrs["image"] = np.bytes_(image)
        for key, value in flat.items():
            c.attrs[key] = np.asarray(value, dtype=np.float64)


def main(out):
    warnings.simplefilter("ignore")  # Pillow's note on palette transparency in bytes
    # HDF5 1.10 format: a dataset stored as one chunk needs no chunk B-tree (about 4 KB each).
    # That format stores object times unless told not to, the root group's included.
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_V110)
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fid = h5py.h5f.create(out.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl)
    with h5py.File(fid) as f:
        f.attrs["pillow_version"] = np.bytes_(Image.__version__)
        resize_cases(f, np.random.default_rng(518))
        convert_cases(f, np.random.default_rng(2583))
        pipeline_cases(f)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as TMP:
        main(sys.argv[1] if len(sys.argv) > 1 else
             os.path.join(ROOT, "tests/reference/fixtures/pillow_hf.h5"))
