#!/usr/bin/env python3
"""One forward + backward step of a small CNN in PyTorch, for the training engine's reference test.

Writes Tests/WeightClusterTests/Fixtures/training/: small_cnn.onnx (opset 13, eval-mode export without constant
folding, so initializer names are PyTorch's parameter names), input.npy, labels.npy, loss.npy and one
grad.<parameter>.npy per parameter (mean softmax cross-entropy; BatchNorm in eval mode, i.e. frozen statistics).
Needs python3-torch and onnx (numpy < 2 for Debian's torch).
"""
import os
import numpy as np
import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "WeightClusterTests", "Fixtures", "training")


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.side = nn.Conv2d(8, 4, 1)
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(2)
        self.fc1 = nn.Linear(12 * 2 * 2, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(self.bn1(torch.relu(self.conv1(x))))          # 8×4×4 (BatchNorm after the ReLU, so the export keeps it)
        a = torch.nn.functional.leaky_relu(self.conv2(x), 0.1)      # 8×4×4
        b = torch.clamp(self.side(x), -1.0, 1.0)                    # 4×4×4
        x = self.avg(torch.cat([a, b], dim=1)) + 0.5                # 12×2×2
        x = torch.flatten(x, 1)
        return self.fc2(torch.relu(self.fc1(x)))


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    model = SmallCNN()
    with torch.no_grad():  # non-trivial BatchNorm statistics and affine parameters
        model.bn1.running_mean.uniform_(-0.2, 0.2)
        model.bn1.running_var.uniform_(0.5, 1.5)
        model.bn1.weight.uniform_(0.5, 1.5)
        model.bn1.bias.uniform_(-0.2, 0.2)
    model.eval()
    x = torch.randn(6, 1, 8, 8)
    labels = torch.tensor([0, 3, 9, 1, 1, 7])
    torch.onnx.export(model, x, os.path.join(OUT, "small_cnn.onnx"), opset_version=13, do_constant_folding=False,
                      input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      training=torch.onnx.TrainingMode.EVAL)
    loss = nn.functional.cross_entropy(model(x), labels)
    loss.backward()
    np.save(os.path.join(OUT, "input.npy"), x.numpy())
    np.save(os.path.join(OUT, "labels.npy"), labels.numpy().astype(np.int64))
    np.save(os.path.join(OUT, "loss.npy"), np.array([loss.item()], dtype=np.float32))
    for name, p in model.named_parameters():
        np.save(os.path.join(OUT, f"grad.{name}.npy"), p.grad.numpy())
    print("loss", loss.item())


if __name__ == "__main__":
    main()
