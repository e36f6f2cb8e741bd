#!/usr/bin/python3
"""Reference results for tests/train/test_augment.c, computed from inputs the C test wrote to DIR
(each part runs when its cases file is there).

rrc_cases.txt  "width height scale_lo scale_hi ratio_lo ratio_hi n u32_0 .. u32_{n-1}" per line:
               the raw 32-bit draws of the Philox stream the C code consumed. Written back:
               rrc_want.txt "top left height width fallback" from torchvision 0.15's
               RandomResizedCrop.get_params (transcribed below) driven by those draws, with
               torch's float32 semantics: torch.empty(1).uniform_(a, b) keeps 24 random bits and
               computes x * (b - a) + a in float32; torch.log / torch.exp of float32 tensors.
               torch.randint(0, n) is replaced by rdino's unbiased rd_rng_randint on the same
               draws (the rejection rule is spelled out in randint below).
blur_cases.txt "name width height sigma taps" with NAME.in (float32 h x w); written back:
               NAME.want, torchvision's gaussian_blur (tensor path) on that image: the float32
               kernel of _get_gaussian_kernel1d, outer product, 'reflect' padding, conv2d.
               Uses torch when importable, else the same steps in numpy.
crop_cases.txt "name width height top left h w size" with NAME.in (uint8 h x w); written back:
               NAME.want, uint8 size x size: Pillow's img.crop(box).resize((size, size), BICUBIC),
               what torchvision's resized_crop does to a PIL image.
"""
import math
import os
import sys

import numpy as np
from PIL import Image

F32 = np.float32


class Draws:
    """The C test's Philox stream, as the 32-bit words it produced."""

    def __init__(self, words):
        self.words = words
        self.pos = 0

    def u32(self):
        w = self.words[self.pos]
        self.pos += 1
        return w

    def u64(self):
        hi = self.u32()
        return (hi << 32) | self.u32()

    def rand_f32(self):
        return F32(self.u32() >> 8) * F32(2.0 ** -24)

    def uniform_f32(self, a, b):
        a, b = F32(a), F32(b)
        return self.rand_f32() * (b - a) + a

    def randint(self, lo, hi):
        """Uniform in [lo, hi]: 64-bit draws below the largest multiple of the span."""
        if hi <= lo:
            return lo
        span = hi - lo + 1
        top = 2 ** 64 - 1
        limit = top - top % span
        while True:
            x = self.u64()
            if x < limit:
                return lo + x % span


def get_params(width, height, scale, ratio, draws):
    """torchvision.transforms.RandomResizedCrop.get_params (0.15), with torch's RNG replaced."""
    area = height * width
    log_ratio = np.log(np.array(ratio, dtype=F32))  # torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * float(draws.uniform_f32(scale[0], scale[1]))
        aspect_ratio = float(np.exp(draws.uniform_f32(log_ratio[0], log_ratio[1])))
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = draws.randint(0, height - h)
            j = draws.randint(0, width - w)
            return i, j, h, w, 0
    # Fallback to central crop
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:  # whole image
        w = width
        h = height
    i = (height - h) // 2
    j = (width - w) // 2
    return i, j, h, w, 1


def rrc(d):
    out = []
    with open(os.path.join(d, "rrc_cases.txt")) as f:
        for line in f:
            v = line.split()
            width, height = int(v[0]), int(v[1])
            scale = (float(v[2]), float(v[3]))
            ratio = (float(v[4]), float(v[5]))
            n = int(v[6])
            words = [int(x) for x in v[7:7 + n]]
            out.append("%d %d %d %d %d" % get_params(width, height, scale, ratio, Draws(words)))
    with open(os.path.join(d, "rrc_want.txt"), "w") as f:
        f.write("\n".join(out) + "\n")


def kernel1d_numpy(taps, sigma):
    half = (taps - 1) * 0.5
    x = np.linspace(-half, half, taps).astype(F32)
    pdf = np.exp(F32(-0.5) * (x / F32(sigma)) ** 2)
    return pdf / pdf.sum(dtype=F32)


def blur_torch(img, taps, sigma):
    import torch
    import torch.nn.functional as fn
    half = (taps - 1) * 0.5
    x = torch.linspace(-half, half, steps=taps)
    pdf = torch.exp(-0.5 * (x / sigma).pow(2))
    k1 = pdf / pdf.sum()
    k2 = torch.mm(k1[:, None], k1[None, :])
    t = torch.from_numpy(img)[None, None]
    t = fn.pad(t, [taps // 2] * 4, mode="reflect")
    return fn.conv2d(t, k2[None, None])[0, 0].numpy()


def blur_numpy(img, taps, sigma):
    k1 = kernel1d_numpy(taps, sigma)
    k2 = np.outer(k1, k1).astype(F32)
    r = taps // 2
    p = np.pad(img, r, mode="reflect")
    h, w = img.shape
    out = np.zeros_like(img, dtype=np.float64)
    for a in range(taps):
        for b in range(taps):
            out += k2[a, b] * p[a:a + h, b:b + w]
    return out.astype(F32)


def blur(d):
    try:
        import torch  # noqa: F401
        run = blur_torch
    except ImportError:
        run = blur_numpy
    with open(os.path.join(d, "blur_cases.txt")) as f:
        for line in f:
            name, w, h, sigma, taps = line.split()
            w, h, taps = int(w), int(h), int(taps)
            img = np.fromfile(os.path.join(d, name + ".in"), dtype=F32).reshape(h, w)
            out = run(img, taps, float(sigma))
            out.astype(F32).tofile(os.path.join(d, name + ".want"))


def crops(d):
    with open(os.path.join(d, "crop_cases.txt")) as f:
        for line in f:
            name, w, h, top, left, ch, cw, size = line.split()
            w, h, top, left, ch, cw, size = map(int, (w, h, top, left, ch, cw, size))
            img = np.fromfile(os.path.join(d, name + ".in"), dtype=np.uint8).reshape(h, w)
            pil = Image.fromarray(img, mode="L").crop((left, top, left + cw, top + ch))
            out = np.asarray(pil.resize((size, size), Image.BICUBIC), dtype=np.uint8)
            out.tofile(os.path.join(d, name + ".want"))


def main():
    d = sys.argv[1]
    for cases, run in (("rrc_cases.txt", rrc), ("blur_cases.txt", blur), ("crop_cases.txt", crops)):
        if os.path.exists(os.path.join(d, cases)):
            run(d)


if __name__ == "__main__":
    main()
