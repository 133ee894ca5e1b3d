#!/usr/bin/env python3
"""PyTorch CPU training throughput on the same model as an ONNX file (VGG-16 of ../shared/models, the small
MobileNetV2/ResNet of Scripts/train_small_nets.py; its graph run node by node as PyTorch ops, weights from the file): SGD (momentum 0.9, Nesterov, weight decay 5e-4) steps at batch 64 after one
warm-up step, all cores. Prints one JSON object.  usage: torch_training.py MODEL STEPS BATCH"""
import json, os, resource, sys, time
import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

path, steps, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = onnx.load(path)
weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class OnnxNet(nn.Module):
    """The ONNX graph as PyTorch ops, node by node (Conv with any stride/padding/groups, Relu, Clip, Add, MaxPool,
    GlobalAveragePool, Flatten, Gemm): the same computation our engine trains, every float initializer a parameter."""

    def __init__(self, graph):
        super().__init__()
        self.graph = graph
        self.params = nn.ParameterDict()
        self.names = {}
        for i, (name, value) in enumerate(weights.items()):
            if value.dtype == np.float32 and value.ndim >= 1:
                self.names[name] = f"p{i}"
                self.params[f"p{i}"] = nn.Parameter(torch.from_numpy(value.copy()))
        self.fixed = {name: torch.from_numpy(np.array(value)) for name, value in weights.items() if name not in self.names}

    def value(self, env, name):
        if name in self.names:
            return self.params[self.names[name]]
        return env[name] if name in env else self.fixed[name]

    def forward(self, x):
        env = {self.graph.input[0].name: x}
        for node in self.graph.node:
            a, v = attrs(node), [self.value(env, n) if n else None for n in node.input]
            op = node.op_type
            if op == "Conv":
                p = a.get("pads", [0, 0, 0, 0])
                y = F.conv2d(v[0] if p[0] == p[2] and p[1] == p[3] else F.pad(v[0], (p[1], p[3], p[0], p[2])), v[1],
                             v[2] if len(v) > 2 else None, stride=a.get("strides", [1, 1]),
                             padding=(p[0], p[1]) if p[0] == p[2] and p[1] == p[3] else 0, groups=a.get("group", 1))
            elif op == "Relu":
                y = F.relu(v[0])
            elif op == "Clip":
                y = torch.clamp(v[0], float(v[1]), float(v[2]))
            elif op == "Add":
                y = v[0] + v[1]
            elif op == "MaxPool":
                y = F.max_pool2d(v[0], a["kernel_shape"], a.get("strides", a["kernel_shape"]))
            elif op == "GlobalAveragePool":
                y = F.adaptive_avg_pool2d(v[0], 1)
            elif op == "Flatten":
                y = torch.flatten(v[0], a.get("axis", 1))
            elif op == "Gemm":
                y = F.linear(v[0], v[1] if a.get("transB", 0) else v[1].t(), v[2] if len(v) > 2 else None)
            elif op == "Constant":
                y = torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
            else:
                raise SystemExit(f"torch_training.py: no PyTorch mapping for {op}")
            env[node.output[0]] = y
        return env[self.graph.output[0].name]


net = OnnxNet(model.graph)
torch.set_num_threads(os.cpu_count())  # Debian's build starts with 1 thread here; use every core, as we do
optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:]
x = torch.randn(batch * (steps + 1), *dims)
y = torch.arange(batch * (steps + 1)) % 10

def step(i):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(net(x[i * batch:(i + 1) * batch]), y[i * batch:(i + 1) * batch])
    loss.backward()
    optimizer.step()
    return loss.item()

step(steps)  # warm-up
start = time.perf_counter()
for i in range(steps):
    loss = step(i)
seconds = time.perf_counter() - start
print(json.dumps({"engine": f"pytorch {torch.__version__}", "steps": steps, "batch": batch, "seconds": seconds,
                  "images_per_second": steps * batch / seconds, "loss": loss, "threads": torch.get_num_threads(),
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
