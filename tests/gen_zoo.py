#!/usr/bin/python3
"""Three CIFAR-10 networks of the kinds people deploy, exported from PyTorch to ONNX (opset 13).

Run with Debian's python (torch 1.13, onnx 1.12):   /usr/bin/python3 tests/gen_zoo.py
Outputs go to tests/data/zoo/ and are committed, so CI needs no torch (each file < 1 MB):
  vgg_bn.onnx          VGG-style: 3 blocks of two 3x3 Conv+BatchNorm+ReLU, MaxPool, then
                       Flatten, Linear, ReLU, Dropout, Linear
  vgg_bn_keep.onnx     the same net exported with TrainingMode.PRESERVE: PyTorch's eval export
                       folds every BatchNorm into its Conv; this keeps BatchNormalization nodes
  resnet20.onnx        ResNet-20-style: 3x3 stem, 3 stages x 3 basic blocks (8/16/32 channels),
                       residual Adds, stride-2 downsampling with 1x1 Conv+BN shortcuts, a final
                       BatchNorm after a ReLU (cannot be folded into a Conv), AdaptiveAvgPool(1)
                       -> GlobalAveragePool, torch.flatten -> Flatten, Linear
  mobilenet.onnx       MobileNet-style: stem, depthwise separable blocks (3x3 depthwise Conv
                       groups=C + BN + ReLU6 -> Clip, 1x1 pointwise Conv + BN + ReLU6), an
                       AvgPool2d(4) -> AveragePool, x.view(x.size(0), -1) -> the
                       Shape/Gather/Unsqueeze/Concat/Reshape pattern, Linear
  zoo_input.f32        8 random images normalised as the reference net's ((x/255-0.5)/0.5),
                       raw little-endian float32 (8,3,32,32)
  <model>_logits.f32   PyTorch's logits for that input (eval mode), (8,10) float32
  ops.txt              the op types (with counts) of each export
Weights are random (fixed seed) with BatchNorm statistics and affine parameters randomised so no
BatchNorm is an identity; the last Linear is scaled so the logits span about +-8. The batch dimension is dynamic ("N").
"""
import collections
import os
import sys

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 6062026
BATCH = 8
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "zoo")


def conv_bn(cin, cout, k=3, stride=1, groups=1):
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout)]


class VGG(nn.Module):
    def __init__(self, widths=(16, 32, 64)):
        super().__init__()
        layers, cin = [], 3
        for w in widths:
            layers += conv_bn(cin, w) + [nn.ReLU(inplace=True)]
            layers += conv_bn(w, w) + [nn.ReLU(inplace=True)]
            layers += [nn.MaxPool2d(2, 2)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(cin * 4 * 4, 64), nn.ReLU(inplace=True),
                                        nn.Dropout(0.5), nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = conv_bn(cin, cout, 3, stride)
        self.conv2, self.bn2 = conv_bn(cout, cout, 3, 1)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(*conv_bn(cin, cout, 1, stride))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self, widths=(8, 16, 32), blocks=3):
        super().__init__()
        self.conv1, self.bn1 = conv_bn(3, widths[0])
        stages, cin = [], widths[0]
        for i, w in enumerate(widths):
            for b in range(blocks):
                stages.append(BasicBlock(cin, w, 2 if (i > 0 and b == 0) else 1))
                cin = w
        self.stages = nn.Sequential(*stages)
        self.bn_final = nn.BatchNorm2d(cin)  # after a ReLU: no Conv to fold it into
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.bn_final(self.stages(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class MobileNet(nn.Module):
    # (output channels, stride) of each depthwise separable block
    CFG = ((32, 1), (48, 2), (48, 1), (64, 2), (64, 1), (96, 2))

    def __init__(self):
        super().__init__()
        layers, cin = conv_bn(3, 16) + [nn.ReLU6(inplace=True)], 16
        for cout, stride in self.CFG:
            layers += conv_bn(cin, cin, 3, stride, groups=cin) + [nn.ReLU6(inplace=True)]
            layers += conv_bn(cin, cout, 1) + [nn.ReLU6(inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(4)
        self.fc = nn.Linear(cin, 10)

    def forward(self, x):
        x = self.pool(self.features(x))
        return self.fc(x.view(x.size(0), -1))


def randomise_bn(net, g):
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)
    return net


def widen_logits(net, x, target=8.0):
    """Scale the last Linear so the logits span about +-target: PyTorch's default init gives
    logits of ~0.1, where a 1e-4 comparison would say little."""
    last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    net.eval()
    with torch.no_grad():
        k = target / net(x).abs().max().item()
        last.weight.mul_(k)
        last.bias.mul_(k)
    return net


def export(net, name, x, keep_bn=False):
    path = os.path.join(OUT, name + ".onnx")
    net.eval()
    with torch.no_grad():
        logits = net(x)
    mode = torch.onnx.TrainingMode.PRESERVE if keep_bn else torch.onnx.TrainingMode.EVAL
    torch.onnx.export(net, x, path, opset_version=13, input_names=["input"],
                      output_names=["logits"], training=mode,
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    logits.numpy().astype("<f4").tofile(os.path.join(OUT, name + "_logits.f32"))
    ops = collections.Counter(n.op_type for n in model.graph.node)
    size = os.path.getsize(path)
    params = sum(p.numel() for p in net.parameters())
    line = f"{name}.onnx: {size} bytes, {params} params, ops: " + \
        ", ".join(f"{op} x{k}" for op, k in sorted(ops.items()))
    print(line, file=sys.stderr)
    if size >= 1 << 20:
        sys.exit(f"{path}: {size} bytes, over the 1 MB budget")
    return line


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    images = torch.randint(0, 256, (BATCH, 3, 32, 32), dtype=torch.uint8, generator=g)
    x = (images.float() / 255.0 - 0.5) / 0.5
    x.numpy().astype("<f4").tofile(os.path.join(OUT, "zoo_input.f32"))
    lines = []
    vgg = widen_logits(randomise_bn(VGG(), g), x)
    lines.append(export(vgg, "vgg_bn", x))
    lines.append(export(vgg, "vgg_bn_keep", x, keep_bn=True))
    lines.append(export(widen_logits(randomise_bn(ResNet20(), g), x), "resnet20", x))
    lines.append(export(widen_logits(randomise_bn(MobileNet(), g), x), "mobilenet", x))
    with open(os.path.join(OUT, "ops.txt"), "w") as f:
        f.write("# op types per export (written by tests/gen_zoo.py)\n")
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
