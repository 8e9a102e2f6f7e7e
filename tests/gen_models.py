#!/usr/bin/python3
"""Golden ONNX models, inputs and PyTorch logits for the interop test (tests/interop.sh).

Run with Debian's python (torch 1.13, onnx 1.12):   /usr/bin/python3 tests/gen_models.py
Outputs go to tests/data/ and are committed, so CI needs no torch:
  lenet_random.onnx       the reference net (torch.flatten -> ONNX Flatten)
  lenet_reshape.onnx      the same weights, x.view(-1, 400) -> ONNX Reshape with an int64 shape
  convmix_random.onnx     Conv with padding/stride/dilation/group>1, a 1x1 Conv, padded MaxPool,
                          a bias-less Linear (-> MatMul) and x @ W + b (-> MatMul + Add)
  gemm_nobias.onnx        built with onnx.helper (torch never exports it): a strided Conv without
                          bias, Flatten, Gemm without C (alpha 0.5, transB 0); weights stored as
                          float_data instead of raw_data; logits computed with torch functionals
  lenet_input.f32         8 random images, already normalised ((x/255 - 0.5)/0.5), (8,3,32,32)
  <model>_logits.f32      PyTorch's logits for that input, (8,10)
All .f32 files are raw little-endian float32, row-major.
"""
import os
import sys

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 20261127
BATCH = 8
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


class LeNet(nn.Module):
    """The reference CIFAR-10 net (PyTorch's CIFAR-10 tutorial)."""

    def __init__(self, use_view=False):
        super().__init__()
        self.use_view = use_view
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 400) if self.use_view else torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class ConvMix(nn.Module):
    """Exercises the attribute paths the reference net leaves at defaults."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5, padding=2)                                    # 6x32x32
        self.conv2 = nn.Conv2d(6, 12, 3, stride=2, padding=2, dilation=2, groups=3)   # 12x16x16
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)                              # 12x8x8
        self.conv3 = nn.Conv2d(12, 8, 1)                                              # 8x8x8
        self.pool2 = nn.MaxPool2d(2, 2)                                               # 8x4x4
        self.fc1 = nn.Linear(8 * 4 * 4, 32, bias=False)                               # MatMul
        self.w2 = nn.Parameter(torch.randn(32, 10) * 0.1)                             # MatMul
        self.b2 = nn.Parameter(torch.randn(10) * 0.1)                                 # + Add

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.pool(x)
        x = self.pool2(F.relu(self.conv3(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return torch.matmul(x, self.w2) + self.b2


def constants_to_initializers(path):
    """torch exports Reshape's target as a Constant node; rankscope reads it from an int64
    initializer (the form most exporters and onnx-simplifier produce), so move it there."""
    model = onnx.load(path)
    g = model.graph
    keep = []
    for node in g.node:
        if node.op_type == "Constant":
            (attr,) = node.attribute
            t = onnx.TensorProto()
            t.CopyFrom(attr.t)
            t.name = node.output[0]
            g.initializer.append(t)
        else:
            keep.append(node)
    del g.node[:]
    g.node.extend(keep)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def export(net, name, x):
    path = os.path.join(OUT, name + ".onnx")
    net.eval()
    with torch.no_grad():
        logits = net(x)
    torch.onnx.export(net, x, path, opset_version=13, input_names=["input"],
                      output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    constants_to_initializers(path)
    logits.numpy().astype("<f4").tofile(os.path.join(OUT, name + "_logits.f32"))
    ops = [n.op_type for n in onnx.load(path).graph.node]
    print(f"{path}: {' '.join(ops)}", file=sys.stderr)


def scale_params(net, factor=2.0):
    """Default init gives logits around 0.1, which would make the 1e-4 agreement test weak;
    scaling every parameter brings them to order 1..10."""
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(factor)
    return net


def gemm_nobias(x):
    from onnx import TensorProto, helper
    w_conv = torch.randn(4, 3, 4, 4) * 0.3
    w_fc = torch.randn(256, 10) * 0.2
    with torch.no_grad():
        h = torch.flatten(F.conv2d(x, w_conv, stride=4), 1)
        logits = 0.5 * (h @ w_fc)

    def init(name, t):
        return helper.make_tensor(name, TensorProto.FLOAT, list(t.shape),
                                  t.flatten().tolist(), raw=False)

    nodes = [
        helper.make_node("Conv", ["input", "patch.weight"], ["patch_out"], name="patch",
                         kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Flatten", ["patch_out"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "head.weight"], ["logits"], name="head",
                         alpha=0.5, transB=0),
    ]
    graph = helper.make_graph(
        nodes, "gemm_nobias",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [init("patch.weight", w_conv), init("head.weight", w_fc)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="gen_models.py")
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(OUT, "gemm_nobias.onnx"))
    logits.numpy().astype("<f4").tofile(os.path.join(OUT, "gemm_nobias_logits.f32"))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(SEED)
    images = torch.randint(0, 256, (BATCH, 3, 32, 32), dtype=torch.uint8)
    x = (images.float() / 255.0 - 0.5) / 0.5
    x.numpy().astype("<f4").tofile(os.path.join(OUT, "lenet_input.f32"))

    lenet = scale_params(LeNet())
    export(lenet, "lenet_random", x)
    viewnet = LeNet(use_view=True)
    viewnet.load_state_dict(lenet.state_dict())
    export(viewnet, "lenet_reshape", x)
    export(scale_params(ConvMix()), "convmix_random", x)
    gemm_nobias(x)


if __name__ == "__main__":
    main()
