#!/usr/bin/env python3
"""Reference logits of ../shared/models on the first 64 Fashion-MNIST test images, from onnxruntime's CPU provider.

Writes Tests/WeightClusterTests/Fixtures/shared/input64.npy (preprocessed as ../shared/models/README.md says) and
NAME.logits64.npy for each model. Run with a Python that has numpy and onnxruntime:
    python3 Scripts/make_shared_reference.py
"""
import gzip, os
import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "WeightClusterTests", "Fixtures", "shared")
MODELS = os.path.join(HERE, "..", "..", "shared", "models")


def main():
    with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:64]
    x = np.pad(images.astype(np.float32) / 255.0, ((0, 0), (2, 2), (2, 2)))
    x = ((x - 0.2860) / 0.3530)[:, None].astype(np.float32)
    os.makedirs(OUT, exist_ok=True)
    np.save(os.path.join(OUT, "input64.npy"), x)
    for name in ("vgg16-fmnist", "alexnet-fmnist"):
        sess = ort.InferenceSession(os.path.join(MODELS, name + ".onnx"), providers=["CPUExecutionProvider"])
        np.save(os.path.join(OUT, name + ".logits64.npy"), sess.run(None, {"input": x})[0].astype(np.float32))
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
