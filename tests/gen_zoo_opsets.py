#!/usr/bin/python3
"""The reader across opsets 11..17 and the ops gen_zoo.py's nets do not use.

Writes to tests/data/zoo/:
  head_opset{11,13,17}.onnx  a small net: Conv + BatchNorm (folded) + ReLU6 (Clip),
                             AvgPool2d(3, 2, padding=1, ceil_mode=True,
                             count_include_pad=False), a 1x1 Conv + Sigmoid branch concatenated
                             on channels (Concat), AdaptiveAvgPool2d(1) -> GlobalAveragePool,
                             x.view(x.size(0), -1) (Shape/Gather/Unsqueeze/Concat/Reshape), a
                             Dropout node inserted before the Linear (PyTorch drops it in eval
                             exports, so it is added with onnx.helper), Linear, Softmax(dim=1).
  head_logits.f32            PyTorch's softmax outputs on zoo_input.f32 (the same for every opset)
  mobilenet_opset{11,17}.onnx  gen_zoo.py's MobileNet at other opsets (Clip bounds and Pad pads as
                             inputs, Unsqueeze axes as an attribute at 11; F.pad in a module
                             exports a dynamic ConstantOfShape chain in torch 1.13, so Pad is
                             covered by MobileNet's AvgPool2d export only); its logits are
                             mobilenet_logits.f32 (same seed and weights as gen_zoo.py).
Run: /usr/bin/python3 tests/gen_zoo_opsets.py (needs torch 1.13, onnx); after gen_zoo.py.
"""
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_zoo  # noqa: E402  (the same architectures, seed and input)

OUT = gen_zoo.OUT


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU6()
        self.pool = nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False)
        self.side = nn.Conv2d(8, 4, 1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        x = self.act(self.bn(self.conv(x)))
        x = self.pool(x)
        x = torch.cat([x, torch.sigmoid(self.side(x))], dim=1)
        x = self.gap(x)
        return torch.softmax(self.fc(x.view(x.size(0), -1)), dim=1)


def insert_dropout(path):
    """Put an inference Dropout (a no-op) in front of the Gemm."""
    model = onnx.load(path)
    g = model.graph
    k = next(i for i, n in enumerate(g.node) if n.op_type == "Gemm")
    gemm = g.node[k]
    g.node.insert(k, helper.make_node("Dropout", [gemm.input[0]], ["dropped"], name="/drop/Dropout"))
    gemm.input[0] = "dropped"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)


def export(net, x, name, opset):
    path = os.path.join(OUT, f"{name}_opset{opset}.onnx")
    torch.onnx.export(net, x, path, opset_version=opset, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    return path


def main():
    x = torch.from_numpy(np.fromfile(os.path.join(OUT, "zoo_input.f32"), "<f4").reshape(-1, 3, 32, 32))
    torch.manual_seed(gen_zoo.SEED + 6)
    g = torch.Generator().manual_seed(gen_zoo.SEED + 6)
    head = gen_zoo.randomise_bn(Head(), g)
    with torch.no_grad():
        head.fc.weight.mul_(20.0)  # spread the softmax away from uniform
    head.eval()
    with torch.no_grad():
        probs = head(x)
    probs.numpy().astype("<f4").tofile(os.path.join(OUT, "head_logits.f32"))
    for opset in (11, 13, 17):
        insert_dropout(export(head, x, "head", opset))

    # gen_zoo.py's MobileNet, rebuilt with its seed sequence so the weights are identical
    torch.manual_seed(gen_zoo.SEED)
    g = torch.Generator().manual_seed(gen_zoo.SEED)
    torch.randint(0, 256, (gen_zoo.BATCH, 3, 32, 32), dtype=torch.uint8, generator=g)
    gen_zoo.widen_logits(gen_zoo.randomise_bn(gen_zoo.VGG(), g), x)
    gen_zoo.widen_logits(gen_zoo.randomise_bn(gen_zoo.ResNet20(), g), x)
    mob = gen_zoo.widen_logits(gen_zoo.randomise_bn(gen_zoo.MobileNet(), g), x)
    mob.eval()
    with torch.no_grad():
        got = mob(x).numpy()
    ref = np.fromfile(os.path.join(OUT, "mobilenet_logits.f32"), "<f4").reshape(got.shape)
    if np.abs(got - ref).max() > 1e-5:
        sys.exit("rebuilt MobileNet does not reproduce mobilenet_logits.f32")
    for opset in (11, 17):
        export(mob, x, "mobilenet", opset)


if __name__ == "__main__":
    main()
