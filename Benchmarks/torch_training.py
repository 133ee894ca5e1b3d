#!/usr/bin/env python3
"""PyTorch CPU training throughput on the same VGG-16 as ../shared/models/vgg16-fmnist.onnx (weights loaded from
the ONNX file, layer by layer): SGD (momentum 0.9, Nesterov, weight decay 5e-4) steps at batch 64 after one
warm-up step, all cores. Prints one JSON object.  usage: torch_training.py MODEL STEPS BATCH"""
import json, os, resource, sys, time
import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn as nn

path, steps, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = onnx.load(path)
weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
layers = []
for node in model.graph.node:
    if node.op_type == "Conv":
        w = weights[node.input[1]]
        conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=w.shape[2] // 2)
        conv.weight.data = torch.from_numpy(w.copy()); conv.bias.data = torch.from_numpy(weights[node.input[2]].copy())
        layers.append(conv)
    elif node.op_type == "Relu":
        layers.append(nn.ReLU())
    elif node.op_type == "MaxPool":
        layers.append(nn.MaxPool2d(2))
    elif node.op_type == "Flatten":
        layers.append(nn.Flatten())
    elif node.op_type == "Gemm":
        w = weights[node.input[1]]
        fc = nn.Linear(w.shape[1], w.shape[0])
        fc.weight.data = torch.from_numpy(w.copy()); fc.bias.data = torch.from_numpy(weights[node.input[2]].copy())
        layers.append(fc)
net = nn.Sequential(*layers)
torch.set_num_threads(os.cpu_count())  # Debian's build starts with 1 thread here; use every core, as we do
optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
x = torch.randn(batch * (steps + 1), 1, 32, 32)
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
