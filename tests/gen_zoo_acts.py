#!/usr/bin/python3
"""The activations MobileNetV3-style and pre-activation nets use, in one small net.

Writes to tests/data/zoo/:
  acts.onnx          Conv(3->8, stride 2) -> LeakyReLU(0.1) -> Conv(8->8) -> Hardswish ->
                     PReLU(8 slopes, exported as a (8,1,1) initializer) -> MaxPool(2) ->
                     Hardsigmoid -> AdaptiveAvgPool2d(1) -> Flatten -> Linear(8->10), opset 14
                     (the first with HardSwish).
  acts_logits.f32    PyTorch's logits on zoo_input.f32 (made by gen_zoo.py).
Run: /usr/bin/python3 tests/gen_zoo_acts.py (needs torch 1.13, onnx); after gen_zoo.py.
"""
import os

import numpy as np
import onnx
import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "zoo")


class Acts(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.lrelu = nn.LeakyReLU(0.1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.hswish = nn.Hardswish()
        self.prelu = nn.PReLU(8)
        self.pool = nn.MaxPool2d(2)
        self.hsig = nn.Hardsigmoid()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.hswish(self.conv2(self.lrelu(self.conv1(x))))
        x = self.hsig(self.pool(self.prelu(x)))
        return self.fc(torch.flatten(self.gap(x), 1))


def main():
    torch.manual_seed(11)
    net = Acts()
    with torch.no_grad():  # slopes of both signs, so every branch of PRelu is exercised
        net.prelu.weight.uniform_(-0.5, 0.5)
    net.eval()
    x = torch.from_numpy(np.fromfile(os.path.join(OUT, "zoo_input.f32"), dtype="<f4")
                         .reshape(-1, 3, 32, 32))
    with torch.no_grad():
        logits = net(x)
    path = os.path.join(OUT, "acts.onnx")
    torch.onnx.export(net, x, path, opset_version=14, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    logits.numpy().astype("<f4").tofile(os.path.join(OUT, "acts_logits.f32"))
    print("acts.onnx:", sorted(n.op_type for n in model.graph.node))


if __name__ == "__main__":
    main()
