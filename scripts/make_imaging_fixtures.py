#!/usr/bin/env python3
"""Makes the Pillow reference outputs that Dropline's imaging tests compare against.

Run from the repository root with Pillow and numpy installed (pip install pillow numpy):

    python3 scripts/make_imaging_fixtures.py [--shared ../shared]

It reads real photos and awkward files from ../shared (never copied into the project), applies
Pillow's resize, rotate and blur, and its decoding of the awkward files, and writes the results as
PNG files plus fixtures.json into Tests/ImagingTests/Fixtures/pillow. The tests load the same
sources from ../shared with Dropline, apply the same operation and compare (mean absolute
difference per sample, in grey levels, against each case's stated tolerance). Measured when the
tolerances were set (Pillow 13.0): resize at most 0.19, rotate 0.44, blur 0.54 (Pillow's blur is a
three-box approximation), decode 0 (identical pixels). The issue allows 2 for resize.
"""
import argparse
import hashlib
import json
import os

import numpy as np
from PIL import Image, ImageFilter, ImageOps

OUT = os.path.join("Tests", "ImagingTests", "Fixtures", "pillow")

PHOTOS = [
    "datasets/imagenette-mini/test/church/church_te_000.jpg",
    "datasets/imagenette-mini/test/golf_ball/golf_ball_te_003.jpg",
    "datasets/imagenette-mini/train/parachute/parachute_tr_010.jpg",
    "bad-inputs/cmyk.jpg",  # 500x321, not square: exercises both passes at different ratios
]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def save(image, name):
    image.save(os.path.join(OUT, name), optimize=True)
    return name


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=os.path.join("..", "shared"))
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    cases = []

    def source(rel):
        return os.path.join(args.shared, rel)

    for index, rel in enumerate(PHOTOS):
        im = Image.open(source(rel)).convert("RGB")
        digest = sha256(source(rel))
        for (w, h) in [(96, 96), (150, 100), (37, 50), (224, 224), (300, 260)]:
            if (w, h) == im.size:
                continue
            name = save(im.resize((w, h), Image.BILINEAR), f"resize-{index}-{w}x{h}.png")
            cases.append({"op": "resize", "source": rel, "source_sha256": digest, "width": w, "height": h,
                          "expected": name, "tolerance": 0.5})
        if index < 3:
            for degrees, expand, fill in [(30, False, (0, 0, 0)), (-17.5, False, (0, 0, 0)), (45, True, (128, 128, 128))]:
                rotated = im.rotate(degrees, resample=Image.BILINEAR, expand=expand, fillcolor=fill)
                name = save(rotated, f"rotate-{index}-{degrees}-{int(expand)}.png")
                cases.append({"op": "rotate", "source": rel, "source_sha256": digest, "degrees": degrees,
                              "expand": expand, "fill": list(fill), "expected": name, "tolerance": 1.0})
            for sigma in [1.0, 2.0]:
                name = save(im.filter(ImageFilter.GaussianBlur(sigma)), f"blur-{index}-{sigma}.png")
                cases.append({"op": "blur", "source": rel, "source_sha256": digest, "sigma": sigma,
                              "expected": name, "tolerance": 1.0})

    # Decoding of awkward files, as Pillow (or numpy, where Pillow's own conversion is lossy) sees them.
    white = (255, 255, 255)

    def over_white(im):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, white + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")

    decodes = {
        "bad-inputs/cmyk.jpg": lambda im: im.convert("RGB"),
        "bad-inputs/grayscale.jpg": lambda im: im.convert("RGB"),
        "bad-inputs/progressive.jpg": lambda im: im.convert("RGB"),
        "bad-inputs/exif-orientation-6.jpg": lambda im: ImageOps.exif_transpose(im).convert("RGB"),
        "bad-inputs/png-named.jpg": lambda im: im.convert("RGB"),
        "bad-inputs/rgba.png": over_white,
        "bad-inputs/palette-alpha.png": over_white,
        "bad-inputs/photo with spaces ü.jpg": lambda im: im.convert("RGB"),
        # Pillow clips 16-bit grey when converting; the reference reduces it the way Dropline
        # documents (v / 257, rounded), from the raw samples.
        "bad-inputs/gray16.png": lambda im: Image.fromarray(
            np.repeat((np.asarray(im, dtype=np.float64) / 257.0).round().astype(np.uint8)[:, :, None], 3, axis=2)),
    }
    for index, (rel, convert) in enumerate(decodes.items()):
        im = Image.open(source(rel))
        name = save(convert(im), f"decode-{index}.png")
        cases.append({"op": "decode", "source": rel, "source_sha256": sha256(source(rel)),
                      "expected": name, "tolerance": 0.0})

    with open(os.path.join(OUT, "fixtures.json"), "w") as f:
        json.dump({"generator": "scripts/make_imaging_fixtures.py",
                   "pillow": Image.__version__, "cases": cases}, f, indent=1)
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
