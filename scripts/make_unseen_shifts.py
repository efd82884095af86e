#!/usr/bin/env python3
"""Writes a labelled test split again under kinds of shift that Dropline's shift calibration never
makes (docs/monitoring.md, "Accuracy estimated without labels"), to measure its accuracy estimate
out of family: each shift becomes a batch folder <out>/<shift>/ of <class>-<n>.png and a labels file
<out>/<shift>.csv (header image,class) for `dropline labels`.

Usage: make_unseen_shifts.py <dataset>/test <out> [--seed N]
Needs Pillow and numpy (pip install pillow numpy). Seeded: the same input gives the same files.

The shifts: jpeg (JPEG quality 6, blocks and ringing), bgr (red and blue channels swapped),
cast (a colour cast: red x1.35, blue x0.6), grayscale (colour removed, saved as RGB), cutout (a
random grey square covering 45% of the side, per image), zoom (the middle half cropped and enlarged
back). The calibration's sets are made of flips, rotations, blur, lower resolution, brightness,
contrast and noise; none of these.
"""
import argparse
import io
import os
import sys

import numpy as np
from PIL import Image


def jpeg(im, rng):
    buffer = io.BytesIO()
    im.save(buffer, format="JPEG", quality=6)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def bgr(im, rng):
    a = np.asarray(im)
    return Image.fromarray(np.ascontiguousarray(a[:, :, ::-1]))


def cast(im, rng):
    a = np.asarray(im).astype(np.float64)
    a[:, :, 0] *= 1.35
    a[:, :, 2] *= 0.6
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def grayscale(im, rng):
    return im.convert("L").convert("RGB")


def cutout(im, rng):
    a = np.array(im)
    h, w = a.shape[:2]
    side = int(0.45 * min(h, w))
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(0, w - side + 1))
    a[y:y + side, x:x + side] = 128
    return Image.fromarray(a)


def zoom(im, rng):
    w, h = im.size
    box = (w // 4, h // 4, w // 4 + w // 2, h // 4 + h // 2)
    return im.crop(box).resize((w, h), Image.BILINEAR)


SHIFTS = {"jpeg": jpeg, "bgr": bgr, "cast": cast, "grayscale": grayscale, "cutout": cutout, "zoom": zoom}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("test", help="a test split: one folder per class")
    parser.add_argument("out", help="a new folder for the shifted batches")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    classes = sorted(c for c in os.listdir(args.test) if os.path.isdir(os.path.join(args.test, c)))
    if not classes:
        sys.exit(f"{args.test}: no class folders (expected <test>/<class>/<image>)")
    if os.path.exists(args.out):
        sys.exit(f"{args.out} exists: give a new folder")
    for name, shift in SHIFTS.items():
        rng = np.random.default_rng(args.seed)
        folder = os.path.join(args.out, name)
        os.makedirs(folder)
        rows = []
        for c in classes:
            for n, f in enumerate(sorted(os.listdir(os.path.join(args.test, c)))):
                with Image.open(os.path.join(args.test, c, f)) as source:
                    image = shift(source.convert("RGB"), rng)
                file = f"{c}-{n}.png"
                image.save(os.path.join(folder, file))
                rows.append((file, c))
        with open(os.path.join(args.out, name + ".csv"), "w", newline="") as labels:
            labels.write("image,class\n")
            for file, c in rows:
                labels.write(f"{file},{c}\n")
        print(f"{name}: {len(rows)} images", file=sys.stderr)


if __name__ == "__main__":
    main()
