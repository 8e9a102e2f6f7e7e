#!/usr/bin/python3
"""CIFAR-10 networks defined the way torchvision and popular CIFAR repositories define them,
exported by plain torch.onnx.export (default options: the exporter's default opset, constant
folding on, eval mode) — the ops PyTorch really emits for common CIFAR architectures.

Run with Debian's python (torch 1.13, onnx 1.12):   /usr/bin/python3 tests/gen_nets.py
Outputs go to tests/data/nets/ and are committed, so CI needs no torch (each file well < 1 MB):
  resnet_tv.onnx       torchvision-style ResNet: 3x3 stem, MaxPool(3, 2, padding 1), BasicBlocks with
                       downsample = Sequential(conv1x1, BN), AdaptiveAvgPool2d((1, 1)),
                       torch.flatten(x, 1), Linear
  preact_resnet.onnx   pre-activation ResNet (He et al. 2016b): BN-ReLU-conv, 1x1 shortcut convs,
                       F.avg_pool2d(out, 4), out.view(out.size(0), -1), LeakyReLU in the stem
  vgg_tv.onnx          torchvision-style VGG: features (Conv+BN+ReLU, MaxPool), AdaptiveAvgPool2d,
                       classifier with Dropout, x.view(x.size(0), -1); input normalisation inside
                       the model ((x - mean) / std: Sub and Div by per-channel constants)
  mobilenetv2.onnx     MobileNetV2: inverted residuals (1x1 expand, 3x3 depthwise, 1x1 project,
                       ReLU6, residual Add), head x.mean((2, 3)) -> ReduceMean
  mobilenetv3.onnx     MobileNetV3-style: HardSwish, squeeze-and-excitation with HardSigmoid and
                       a per-channel Mul, PReLU, x.mean((2, 3), keepdim=True)
  shufflenetv2.onnx    ShuffleNetV2-style: x.chunk(2, dim=1) -> Split, channel shuffle
                       (view -> transpose -> view: Reshape / Transpose / Reshape), Concat
  se_resnet.onnx       SE-ResNet: squeeze-and-excitation through Linear layers
                       (AdaptiveAvgPool -> flatten -> Linear -> ReLU -> Linear -> Sigmoid ->
                       view(b, c, 1, 1) -> Mul), x.float() -> Cast
  densenet.onnx        DenseNet-style: BN-ReLU-conv growth layers joined by Concat (several
                       inputs), transitions with AvgPool2d(2), a MatMul head (x @ W + b)
  mobilenetv2_opset11.onnx, mobilenetv2_opset17.onnx, shufflenetv2_opset11.onnx,
  shufflenetv2_opset17.onnx   the same two nets at the oldest and newest opsets torch 1.13 writes
  nets_input.f32       8 random images (8,3,32,32) normalised like the reference net's inputs
  <model>_logits.f32   PyTorch's logits for that input (eval mode), (8,10) float32
  ops.txt              op types and opset of each export
Weights random (fixed seed), BatchNorm statistics and affine parameters randomised.
"""
import collections
import os

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 28112026
BATCH = 8
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "nets")


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetTV(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 16, 1))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32, 1))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class PreActBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        sc = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + sc


class PreActResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.act = nn.LeakyReLU(0.1)
        self.layer1 = PreActBlock(16, 16, 1)
        self.layer2 = PreActBlock(16, 32, 2)
        self.layer3 = PreActBlock(32, 64, 2)
        self.bn = nn.BatchNorm2d(64)
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        out = self.act(self.conv1(x))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(F.relu(self.bn(out)), 8)
        return self.linear(out.view(out.size(0), -1))


class VGGTV(nn.Module):
    def __init__(self):
        super().__init__()
        cfg, layers, cin = [16, "M", 32, "M", 64, 64, "M"], [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(nn.Linear(64 * 4, 64), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(64, 10))
        self.register_buffer("mean", torch.tensor([0.49, 0.48, 0.45]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.25, 0.24, 0.26]).view(1, 3, 1, 1))

    def forward(self, x):
        x = (x * 0.5 + 0.5 - self.mean) / self.std
        x = self.avgpool(self.features(x))
        return self.classifier(x.view(x.size(0), -1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.ReLU6(inplace=True),
            nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False), nn.BatchNorm2d(hid),
            nn.ReLU6(inplace=True), nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(inplace=True),
            InvertedResidual(16, 16, 1, 1), InvertedResidual(16, 24, 2, 4),
            InvertedResidual(24, 24, 1, 4), InvertedResidual(24, 32, 2, 4),
            InvertedResidual(32, 32, 1, 4))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(32, 10))

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


class SqueezeExcite(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // r, 1)
        self.fc2 = nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class MobileNetV3(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1, groups=16, bias=False),
                                nn.BatchNorm2d(16), nn.PReLU(16))
        self.se = SqueezeExcite(16)
        self.pw = nn.Sequential(nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32), nn.Hardswish())
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pw(self.se(self.dw(self.stem(x))))
        return self.head(torch.flatten(x.mean((2, 3), keepdim=True), 1))


def channel_shuffle(x, groups):
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, -1, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, c):
        super().__init__()
        half = c // 2
        self.branch = nn.Sequential(
            nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 3, 1, 1, groups=half, bias=False), nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True))

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat((x1, self.branch(x2)), 1), 2)


class ShuffleNetV2(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 24, 3, 1, 1, bias=False), nn.BatchNorm2d(24),
                                   nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.stage = nn.Sequential(ShuffleUnit(24), ShuffleUnit(24))
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = self.stage(self.pool(self.conv1(x)))
        return self.fc(x.mean([2, 3]))


class SEBlock(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.avg = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(c, c // r, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(c // r, c, bias=False), nn.Sigmoid())

    def forward(self, x):
        b, c, _, _ = x.size()
        y = self.fc(self.avg(x).view(b, c))
        return x * y.view(b, c, 1, 1).expand_as(x)


class SEResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.block = BasicBlock(16, 32, 2)
        self.se = SEBlock(32)
        self.linear = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x.float())))
        x = self.se(self.block(x))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        return self.conv(F.relu(self.bn(x)))


class DenseNet(nn.Module):
    def __init__(self, growth=8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.l1, self.l2, self.l3 = DenseLayer(16, growth), DenseLayer(24, growth), DenseLayer(32, growth)
        self.trans_bn = nn.BatchNorm2d(40)
        self.trans = nn.Conv2d(40, 20, 1, bias=False)
        self.l4 = DenseLayer(20, growth)
        self.bn = nn.BatchNorm2d(28)
        self.w = nn.Parameter(torch.randn(28, 10) * 0.2)
        self.b = nn.Parameter(torch.randn(10) * 0.1)

    def forward(self, x):
        x = self.conv1(x)
        a = self.l1(x)
        b = self.l2(torch.cat([x, a], 1))
        c = self.l3(torch.cat([x, a, b], 1))
        x = F.avg_pool2d(self.trans(F.relu(self.trans_bn(torch.cat([x, a, b, c], 1)))), 2)
        x = torch.cat([x, self.l4(x)], 1)
        x = F.adaptive_avg_pool2d(F.relu(self.bn(x)), 1).flatten(1)
        return x @ self.w + self.b


NETS = {"resnet_tv": ResNetTV, "preact_resnet": PreActResNet, "vgg_tv": VGGTV,
        "mobilenetv2": MobileNetV2, "mobilenetv3": MobileNetV3, "shufflenetv2": ShuffleNetV2,
        "se_resnet": SEResNet, "densenet": DenseNet}


def randomise(model, gen):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.2, 0.2, generator=gen)
                m.running_mean.uniform_(-0.2, 0.2, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
            if isinstance(m, nn.PReLU):
                m.weight.uniform_(0.05, 0.4, generator=gen)


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    x = (torch.rand(BATCH, 3, 32, 32, generator=gen) - 0.5) / 0.5
    x.numpy().astype("<f4").tofile(os.path.join(OUT, "nets_input.f32"))
    lines = []
    for name, cls in NETS.items():
        model = cls().eval()
        randomise(model, gen)
        with torch.no_grad():
            y = model(x)
            y = y * (8.0 / y.abs().max())
            if isinstance(model, DenseNet):
                model.w.mul_(8.0 / model(x).abs().max())
                y = model(x)
            else:
                last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
                scale = 8.0 / model(x).abs().max()
                last.weight.mul_(scale)
                last.bias.mul_(scale) if last.bias is not None else None
                y = model(x)
        path = os.path.join(OUT, name + ".onnx")
        torch.onnx.export(model, x, path, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
        y.numpy().astype("<f4").tofile(os.path.join(OUT, name + "_logits.f32"))
        if name in ("mobilenetv2", "shufflenetv2"):  # the oldest and newest opsets torch 1.13 writes
            for opset in (11, 17):
                torch.onnx.export(model, x, os.path.join(OUT, f"{name}_opset{opset}.onnx"),
                                  input_names=["input"], output_names=["logits"], opset_version=opset,
                                  dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
        m = onnx.load(path)
        ops = collections.Counter(n.op_type for n in m.graph.node)
        lines.append(f"{name} opset {m.opset_import[0].version}: " +
                     ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))
    with open(os.path.join(OUT, "ops.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
