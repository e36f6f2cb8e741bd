#!/usr/bin/python3
"""Peer of rdino's data path (bench/bench_loader.sh): DINOv2's DataAugmentationDINO on grey images
with Pillow, one process, one thread, the way a DINOv2 data-loader worker spends its time:
h5py reads an image of the shard, then per image 2 global (224) and 8 local (96) crops:
RandomResizedCrop (torchvision's get_params; img.crop(box).resize(BICUBIC), as
torchvision's resized_crop does on PIL images), horizontal flip p=0.5, ColorJitter
brightness/contrast p=0.8 in random order (ImageEnhance, as torchvision's PIL path), Gaussian
blur with the effective probabilities 0 / 0.9 / 0.5 (torchvision converts the PIL image to a
tensor and convolves with torch: done the same way here), solarize p=0.2 on global crop 2
(ImageOps.solarize), ToTensor + Normalize (numpy, float32). Saturation, hue and grayscale are
no-ops on grey images and skipped, as in rdino. torchvision itself is not installed here.

  dinov2_augment.py SHARD_DIR B STEPS
Prints "batches/s: X" after one untimed warm-up batch.
"""
import glob
import math
import os
import random
import sys
import time

import h5py
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

try:
    import torch
    import torch.nn.functional as fn
    torch.set_num_threads(1)
except ImportError:
    torch = None

MEAN, STD = 0.5307, 0.2583


def rrc_params(width, height, scale, ratio=(3 / 4, 4 / 3)):
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * random.uniform(*scale)
        aspect = math.exp(random.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return random.randint(0, height - h), random.randint(0, width - w), h, w
    w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def blur(img, sigma):
    if torch is None:
        from PIL import ImageFilter
        return img.filter(ImageFilter.GaussianBlur(sigma))
    x = torch.linspace(-4, 4, 9)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    t = torch.from_numpy(np.asarray(img, dtype=np.float32).copy())[None, None]
    t = fn.pad(t, [4, 4, 4, 4], mode="reflect")
    t = fn.conv2d(t, torch.outer(k, k)[None, None])
    return Image.fromarray(t[0, 0].round().clamp(0, 255).to(torch.uint8).numpy(), mode="L")


def crop(img, size, scale, blur_p, solarize_p):
    i, j, h, w = rrc_params(img.width, img.height, scale)
    img = img.crop((j, i, j + w, i + h)).resize((size, size), Image.BICUBIC)
    if random.random() < 0.5:
        img = ImageOps.mirror(img)
    if random.random() < 0.8:
        ops = [lambda im: ImageEnhance.Brightness(im).enhance(random.uniform(0.6, 1.4)),
               lambda im: ImageEnhance.Contrast(im).enhance(random.uniform(0.6, 1.4))]
        random.shuffle(ops)
        for op in ops:
            img = op(img)
    if random.random() < blur_p:
        img = blur(img, random.uniform(0.1, 2.0))
    if random.random() < solarize_p:
        img = ImageOps.solarize(img, 128)
    return (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD


def sample(img):
    crops = [crop(img, 224, (0.32, 1.0), 0.0, 0.0), crop(img, 224, (0.32, 1.0), 0.9, 0.2)]
    crops += [crop(img, 96, (0.05, 0.32), 0.5, 0.0) for _ in range(8)]
    return crops


def main(argv):
    shard_dir, batch, steps = argv[0], int(argv[1]), int(argv[2])
    files = [h5py.File(p, "r") for p in sorted(glob.glob(os.path.join(shard_dir, "shard-*.h5")))]
    index = [(f, r) for f in files for r in range(f["images"].shape[0])]
    random.seed(0)

    def one_batch():
        for _ in range(batch):
            f, r = random.choice(index)
            sample(Image.fromarray(f["images"][r], mode="L"))

    one_batch()
    start = time.process_time()
    wall = time.perf_counter()
    for _ in range(steps):
        one_batch()
    cpu, wall = time.process_time() - start, time.perf_counter() - wall
    print("batches/s: %.3f (per CPU second; wall %.3f)" % (steps / cpu, steps / wall))


if __name__ == "__main__":
    main(sys.argv[1:])
