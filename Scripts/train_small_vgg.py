#!/usr/bin/env python3
"""Train the small VGG-style demo model on Fashion-MNIST and export it to ONNX.

Run with a Python that has PyTorch (Debian: python3-torch) and onnx:
    python3 Scripts/train_small_vgg.py [--epochs 3] [--out Sources/WeightClusterCLI/Resources]
Writes small-vgg-fmnist.onnx and small-vgg-fmnist.json (PyTorch's own top-1 on the 10k test set).
Preprocessing matches ../shared/models/README.md: pad 2 -> 32x32, x = (p/255 - 0.2860) / 0.3530.
"""
import argparse, gzip, json, os, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def preprocess(images):
    x = images.astype(np.float32) / 255.0
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    return ((x - MEAN) / STD)[:, None, :, :].astype(np.float32)


class SmallVGG(nn.Module):
    def __init__(self):
        super().__init__()
        cfg = [16, 16, "M", 32, 32, "M", 64, 64, "M"]
        layers, c = [], 1
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(64 * 4 * 4, 128), nn.ReLU(inplace=True), nn.Dropout(0.3), nn.Linear(128, 10))

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", default="Sources/WeightClusterCLI/Resources")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(os.cpu_count() or 1)

    xtr = torch.from_numpy(preprocess(load_idx(f"{DATA}/train-images-idx3-ubyte.gz")))
    ytr = torch.from_numpy(load_idx(f"{DATA}/train-labels-idx1-ubyte.gz").astype(np.int64))
    xte = torch.from_numpy(preprocess(load_idx(f"{DATA}/t10k-images-idx3-ubyte.gz")))
    yte = torch.from_numpy(load_idx(f"{DATA}/t10k-labels-idx1-ubyte.gz").astype(np.int64))

    model = SmallVGG()
    steps = args.epochs * ((len(xtr) + 127) // 128)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=steps)
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 128):
            idx = perm[i:i + 128]
            xb, yb = xtr[idx], ytr[idx]
            flip = torch.rand(len(xb)) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f} ({time.time() - start:.0f}s)", flush=True)

    model.eval()
    with torch.no_grad():
        correct = sum((model(xte[i:i + 500]).argmax(1) == yte[i:i + 500]).sum().item() for i in range(0, len(xte), 500))
    top1 = correct / len(xte)
    print(f"test top-1: {top1:.4f}")

    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "small-vgg-fmnist.onnx")
    torch.onnx.export(model, torch.zeros(1, 1, 32, 32), onnx_path + ".tmp", input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=13)
    os.replace(onnx_path + ".tmp", onnx_path)
    info = {"model": "small-vgg", "epochs": args.epochs, "test_top1_fp32": top1,
            "params": sum(p.numel() for p in model.parameters()), "train_seconds": time.time() - start,
            "file": "small-vgg-fmnist.onnx", "input": "input [N,1,32,32] float32", "output": "logits [N,10]",
            "preprocess": {"pad": 2, "scale": "1/255", "mean": MEAN, "std": STD},
            "exporter": f"torch.onnx.export, PyTorch {torch.__version__}, opset 13, BatchNorm folded"}
    with open(os.path.join(args.out, "small-vgg-fmnist.json"), "w") as f:
        json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
