#!/usr/bin/env python3
"""Writes the tiny JPEG/PNG fixtures of the image-folder tests (Tests/WeightClusterTests/Fixtures/images) and the
values PIL gives for them, and a tiny RGB classifier to evaluate on them. The files are committed; the tests never
run Python. Needs Pillow, numpy and onnx:

    python3 -m venv .build/pyenv && .build/pyenv/bin/pip install Pillow numpy onnx
    .build/pyenv/bin/python Scripts/generate-image-fixtures.py
"""
import os
import struct
import zlib

import numpy as np
from PIL import Image

root = os.path.join(os.path.dirname(__file__), "..", "Tests", "WeightClusterTests", "Fixtures", "images")
rng = np.random.default_rng(15)


def photo(width, height):
    """Smooth colour gradients plus noise: something like a photo, small."""
    y, x = np.mgrid[0:height, 0:width]
    r = 255 * x / max(width - 1, 1)
    g = 255 * y / max(height - 1, 1)
    b = 128 + 100 * np.sin(x / 2.0 + y / 3.0)
    rgb = np.stack([r, g, b], axis=-1) + rng.normal(0, 12, (height, width, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def save(image, relative, **options):
    path = os.path.join(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, **options)
    return path


def save_npy(array, relative):
    np.save(os.path.join(root, relative), np.ascontiguousarray(array))


def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


# Decoding: an RGB PNG, an RGB JPEG (4:2:0, quality 90), a grey PNG, an RGBA PNG and a palette PNG.
rgb = Image.fromarray(photo(16, 12))
save(rgb, "rgb.png")
save(rgb, "rgb.jpg", quality=90)
save(Image.fromarray(photo(9, 7)[:, :, 1]), "gray.png")
rgba = np.concatenate([photo(6, 5), rng.integers(0, 256, (5, 6, 1), dtype=np.uint8)], axis=-1)
save(Image.fromarray(rgba, "RGBA"), "rgba.png")
save(Image.fromarray(photo(6, 5)).quantize(8), "palette.png")
for name in ["rgb.png", "rgb.jpg", "gray.png", "rgba.png", "palette.png"]:
    save_npy(np.asarray(Image.open(os.path.join(root, name)).convert("RGB")), name.replace(".", "_") + ".npy")

# Resizing as torchvision's Resize(n) on a PIL image (shorter side to n, PIL bilinear), then CenterCrop.
def resized(image, side):
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(side * long / short)
    size = (side, new_long) if w <= h else (new_long, side)
    return image.resize(size, Image.BILINEAR)

def center_crop(image, n):
    w, h = image.size
    top, left = int(round((h - n) / 2.0)), int(round((w - n) / 2.0))
    return image.crop((left, top, left + n, top + n))

save_npy(np.asarray(resized(rgb, 7)), "rgb_resize7.npy")       # shrinking: 16×12 → 9×7
save_npy(np.asarray(resized(rgb, 20)), "rgb_resize20.npy")     # enlarging: 16×12 → 26×20
save_npy(np.asarray(center_crop(resized(rgb, 7), 5)), "rgb_resize7_crop5.npy")

# An image folder: classes sort by code point ("Zebra" before "cat"); non-image and hidden files are ignored;
# a grey PNG becomes RGB; a sub-folder of a class folder belongs to that class.
save(Image.fromarray(photo(10, 8)), "folder/cat/1.png")
save(Image.fromarray(photo(8, 10)), "folder/cat/2.JPG", quality=90)
save(Image.fromarray(photo(12, 9)), "folder/dog/a.jpeg", quality=90)
save(Image.fromarray(photo(9, 9)[:, :, 0]), "folder/Zebra/gray.png")
save(Image.fromarray(photo(11, 8)), "folder/Zebra/more/b.png")
# A non-image file is ignored with a warning line; the CLI test adds one to a copy, so that the bad-input tests on
# this folder stay one error line.
with open(os.path.join(root, "folder/dog/.hidden.jpg"), "w") as f:
    f.write("hidden: ignored\n")
with open(os.path.join(root, "folder-classes.txt"), "w") as f:
    f.write("dog\ncat\nunused\nZebra\n")

# Bad files: truncated and corrupt JPEG/PNG, a text file named .jpg, and headers declaring 65000×65000 pixels.
jpeg = open(os.path.join(root, "rgb.jpg"), "rb").read()
png = open(os.path.join(root, "rgb.png"), "rb").read()
os.makedirs(os.path.join(root, "bad"), exist_ok=True)
with open(os.path.join(root, "bad/truncated.jpg"), "wb") as f:
    f.write(jpeg[: len(jpeg) * 2 // 3])
with open(os.path.join(root, "bad/truncated.png"), "wb") as f:
    f.write(png[: len(png) * 2 // 3])
with open(os.path.join(root, "bad/corrupt.jpg"), "wb") as f:
    f.write(jpeg[:20] + bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
with open(os.path.join(root, "bad/text.jpg"), "w") as f:
    f.write("this is not a JPEG\n")
sof = jpeg.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
with open(os.path.join(root, "bad/huge.jpg"), "wb") as f:
    f.write(jpeg[: sof + 5] + struct.pack(">HH", 65000, 65000) + jpeg[sof + 9 :])
with open(os.path.join(root, "bad/huge.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 65000, 65000, 8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + png_chunk(b"IEND", b""))
# A tiny classifier of 8×8 RGB images into 4 classes: Conv 3→4, Relu, GlobalAveragePool, Flatten, Gemm.
import onnx
from onnx import TensorProto, helper, numpy_helper

nodes = [helper.make_node("Conv", ["input", "W"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("GlobalAveragePool", ["r"], ["g"]),
         helper.make_node("Flatten", ["g"], ["f"], axis=1),
         helper.make_node("Gemm", ["f", "G"], ["logits"], transB=1)]
weights = [numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "W"),
           numpy_helper.from_array(rng.normal(0, 0.5, (4, 4)).astype(np.float32), "G")]
graph = helper.make_graph(nodes, "tiny-rgb", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])], weights)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="generate-image-fixtures")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, os.path.join(root, "tiny_rgb.onnx"))
print("wrote", root)
