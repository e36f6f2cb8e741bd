#!/usr/bin/python3
"""transformers' BitImageProcessor (slow processor) written out with Pillow and numpy: the peer
of rd_hf_preprocess_png (include/rdino/hf_preprocess.h) and the oracle its committed fixtures
come from (tests/reference/make_pillow_fixtures.py imports bit_preprocess).

transformers is not installed here, so this follows its source step by step (v4.47.1, the
version ../shared/fixtures/hf_dinov2_tiny was made with; the steps are unchanged in later
versions): image_processing_bit.py BitImageProcessor.preprocess, and from image_transforms.py
convert_to_rgb, get_resize_output_image_size (default_to_square=False), resize (Pillow, no
reducing_gap), center_crop (zero padding when the crop is larger), rescale (float64 product,
float32 result), normalize (float32). tests/image/test_hf_preprocess.c checks this module's
outputs on the shared fixture PNGs against the real transformers outputs there (the
png_*_pixel_values.npy files), bit for bit.

  hf_preprocess_pillow.py FILE...
Runs microsoft/rad-dino's settings on every file, single-threaded, after one untimed warm-up on
the first. Prints "images/s: X" (per CPU second of the pipeline calls alone), "crc32: H" (zlib
CRC-32 of the float32 [3, 518, 518] outputs in file order, to check that rdino computed the same)
and "peak RSS MiB".
"""
import math
import resource
import sys
import time
import zlib

import numpy as np
from PIL import Image

# microsoft/rad-dino preprocessor_config.json (the same content as
# ../shared/fixtures/hf_dinov2_tiny/preprocessor_config.json).
RAD_DINO = {
    "do_convert_rgb": True,
    "do_resize": True,
    "size": {"shortest_edge": 518},
    "resample": 3,
    "do_center_crop": True,
    "crop_size": {"height": 518, "width": 518},
    "do_rescale": True,
    "rescale_factor": 0.00392156862745098,
    "do_normalize": True,
    "image_mean": [0.5307, 0.5307, 0.5307],
    "image_std": [0.2583, 0.2583, 0.2583],
}


def resize_output_size(height, width, size):
    """get_resize_output_image_size for a size dict: (height, width)."""
    if "shortest_edge" not in size:
        return size["height"], size["width"]
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size["shortest_edge"], int(size["shortest_edge"] * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def center_crop(image, crop_height, crop_width):
    """image_transforms.center_crop on an [H, W, C] array, with its zero padding."""
    orig_height, orig_width = image.shape[:2]
    top = (orig_height - crop_height) // 2
    left = (orig_width - crop_width) // 2
    bottom, right = top + crop_height, left + crop_width
    if top >= 0 and bottom <= orig_height and left >= 0 and right <= orig_width:
        return image[top:bottom, left:right]
    new_height, new_width = max(crop_height, orig_height), max(crop_width, orig_width)
    padded = np.zeros((new_height, new_width) + image.shape[2:], dtype=image.dtype)
    top_pad = math.ceil((new_height - orig_height) / 2)
    left_pad = math.ceil((new_width - orig_width) / 2)
    padded[top_pad:top_pad + orig_height, left_pad:left_pad + orig_width] = image
    top, bottom, left, right = top + top_pad, bottom + top_pad, left + left_pad, right + left_pad
    return padded[max(0, top):min(new_height, bottom), max(0, left):min(new_width, right)]


def bit_preprocess(image, cfg):
    """BitImageProcessor.preprocess on one PIL image: float32 [3, H, W] (channels first)."""
    if cfg["do_convert_rgb"] and image.mode != "RGB":
        image = image.convert("RGB")
    array = np.array(image)
    if cfg["do_resize"]:
        height, width = resize_output_size(array.shape[0], array.shape[1], cfg["size"])
        array = np.array(Image.fromarray(array).resize((width, height), resample=cfg["resample"]))
    if cfg["do_center_crop"]:
        array = center_crop(array, cfg["crop_size"]["height"], cfg["crop_size"]["width"])
    if cfg["do_rescale"]:
        array = (array.astype(np.float64) * cfg["rescale_factor"]).astype(np.float32)
    if cfg["do_normalize"]:
        array = array.astype(np.float32) if array.dtype != np.float32 else array
        mean = np.array(cfg["image_mean"], dtype=np.float32)
        std = np.array(cfg["image_std"], dtype=np.float32)
        array = (array - mean) / std
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def preprocess_file(path, cfg=RAD_DINO):
    return bit_preprocess(Image.open(path), cfg)


def main(files):
    preprocess_file(files[0])
    cpu, crc = 0.0, 0
    for f in files:
        start = time.process_time()
        out = preprocess_file(f)
        cpu += time.process_time() - start
        crc = zlib.crc32(out.astype("<f4").tobytes(), crc)
    print(f"images/s: {len(files) / cpu:.2f}")
    print(f"crc32: {crc:08x}")
    print(f"peak RSS MiB: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
