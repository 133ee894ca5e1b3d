#!/usr/bin/env python3
"""Train a small ResNet-style or MobileNetV2-style network on Fashion-MNIST and export it to ONNX (opset 13).

Run with a Python that has PyTorch (Debian: python3-torch) and onnx (python3-onnx):
    /usr/bin/python3 Scripts/train_small_nets.py --arch resnet      [--epochs 3] [--out .build/models/small-resnet-fmnist.onnx]
    /usr/bin/python3 Scripts/train_small_nets.py --arch mobilenetv2 [--epochs 3] [--out .build/models/small-mobilenetv2-fmnist.onnx]
Writes the ONNX file and a JSON beside it (same name, .json) with PyTorch's own top-1 on the 10k test set.
Preprocessing matches ../shared/models/README.md: pad 2 -> 32x32, x = (p/255 - 0.2860) / 0.3530.
Recipe as Scripts/train_small_vgg.py: SGD + Nesterov, one-cycle LR, batch 128, random horizontal flips, seeded.
The models are not committed: run this script to make them.

resnet: stem conv3x3 1->16 + BN + ReLU at 32x32, then three basic blocks (two 3x3 convs + BatchNorm, ReLU after the
  Add) of width 32, 64, 128, each with stride 2 (16x16, 8x8, 4x4) and a 1x1 conv + BatchNorm projection shortcut,
  GlobalAveragePool, Flatten, Gemm 128->10. 303,866 parameters; ONNX: 10 Conv, 7 Relu, 3 Add, GlobalAveragePool,
  Flatten, Gemm.
mobilenetv2: stem conv3x3 1->16 stride 2 (16x16) + BN + ReLU6, inverted residuals (t, c, n, s) = (1,16,1,1),
  (6,24,2,2), (6,32,2,1), (6,64,2,2), (6,96,1,1) (1x1 expand, 3x3 depthwise, 1x1 linear project, BatchNorm after each,
  ReLU6 = Clip after expand and depthwise, residual Add when stride 1 and same width), 1x1 conv 96->256 + BN + ReLU6,
  GlobalAveragePool, Flatten, Gemm 256->10. 209,066 parameters.
The export is in eval mode: PyTorch folds each BatchNorm that directly follows a Conv into that Conv, so the files
hold Conv (group = channels for the depthwise ones), Relu / Clip, Add, GlobalAveragePool, Flatten, Gemm; Clip takes
its min 0 / max 6 as inputs from Constant nodes (opset 13), so mobilenetv2 also has 34 Constant nodes.

Measured here (Debian python3-torch 1.13.1+dfsg, torch.__version__ "1.13.0a0", CPU, seed 0, default 3 epochs, --threads 1, both nets trained at the same time on the
2 cores while three Swift worktrees were building and testing: load average 10-15, so each run got ~15-20 % of a
core; the CPU cost on an idle core is ~232 ms (resnet) / ~422 ms (mobilenetv2) per 128-image step, i.e. ~110 s /
~200 s of CPU per epoch):
    resnet:      303,866 params, test top-1 0.9180 (91.80 %), 2090 s wall (loaded machine)
    mobilenetv2: 209,066 params, test top-1 0.9121 (91.21 %), 3677 s wall (loaded machine)
onnxruntime on the exported files gives the same top-1 (Benchmarks/palettize_reference.py --fp32 --evaluate).
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


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class SmallResNet(nn.Module):
    def __init__(self, stem=16, widths=(32, 64, 128)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem),
                                  nn.ReLU(inplace=True))
        blocks, c = [], stem
        for w in widths:
            blocks.append(BasicBlock(c, w, 2))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class SmallMobileNetV2(nn.Module):
    CFG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 1), (6, 64, 2, 2), (6, 96, 1, 1)]

    def __init__(self, last=256):
        super().__init__()
        c = 16
        layers = [nn.Conv2d(1, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU6(inplace=True)]
        for t, w, n, s in self.CFG:
            for i in range(n):
                layers.append(InvertedResidual(c, w, s if i == 0 else 1, t))
                c = w
        layers += [nn.Conv2d(c, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(last, 10)

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


ARCHS = {"resnet": SmallResNet, "mobilenetv2": SmallMobileNetV2}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=sorted(ARCHS), required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", help="ONNX path (default .build/models/small-ARCH-fmnist.onnx)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.05)
    args = ap.parse_args()
    out = args.out or f".build/models/small-{args.arch}-fmnist.onnx"
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)

    xtr = torch.from_numpy(preprocess(load_idx(f"{DATA}/train-images-idx3-ubyte.gz")))
    ytr = torch.from_numpy(load_idx(f"{DATA}/train-labels-idx1-ubyte.gz").astype(np.int64))
    xte = torch.from_numpy(preprocess(load_idx(f"{DATA}/t10k-images-idx3-ubyte.gz")))
    yte = torch.from_numpy(load_idx(f"{DATA}/t10k-labels-idx1-ubyte.gz").astype(np.int64))

    model = ARCHS[args.arch]()
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.arch}: {params:,} parameters", flush=True)
    steps = args.epochs * ((len(xtr) + 127) // 128)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
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
    seconds = time.time() - start
    print(f"test top-1: {top1:.4f} ({seconds:.0f}s)")

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    torch.onnx.export(model, torch.zeros(1, 1, 32, 32), out + ".tmp", input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=13)
    os.replace(out + ".tmp", out)
    info = {"model": f"small-{args.arch}", "epochs": args.epochs, "seed": args.seed, "test_top1_fp32": top1,
            "params": params, "train_seconds": seconds, "threads": args.threads, "file": os.path.basename(out),
            "input": "input [N,1,32,32] float32", "output": "logits [N,10]",
            "preprocess": {"pad": 2, "scale": "1/255", "mean": MEAN, "std": STD},
            "recipe": f"SGD nesterov momentum 0.9, wd 5e-4, one-cycle max lr {args.lr}, batch 128, random h-flip",
            "exporter": f"torch.onnx.export, PyTorch {torch.__version__}, opset 13, eval mode (BatchNorm folded)"}
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(info, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
