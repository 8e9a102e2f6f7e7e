#!/usr/bin/python3
"""The zoo architectures of src/engine/zoo.c in PyTorch, parameter for parameter.

state_dict names equal the initializer names rankscope gives (conv1.weight, layer2.0.bn1.running_var,
features.conv3.weight, blocks.4.dw_bn.bias, linear.weight, ...), so weights move between the two by
name: load_from_onnx(model, path) copies every initializer of a rankscope-written ONNX file into the
module. Used by tests/zoo_torch_check.sh (eval-mode logits against rankscope and ONNX Runtime) and
by tools/torch_train_speed.py-style measurements.
"""
import torch
import torch.nn as nn


class ConvBN(nn.Module):
    def __init__(self, cin, cout, k, stride=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        o = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(o)) + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin, layers = 16, []
        for s in range(3):
            ch = 16 << s
            blocks = []
            for k in range(3):
                blocks.append(Block(cin, ch, 2 if s > 0 and k == 0 else 1))
                cin = ch
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


VGG_CFG = [32, 32, 0, 64, 64, 0, 128, 128, 0, 128, 128, 0]


class Features(nn.Module):
    def __init__(self):
        super().__init__()
        self.order = []
        cin, ci, pi = 3, 0, 0
        for c in VGG_CFG:
            if c == 0:
                pi += 1
                self.order.append(("pool", None))
                continue
            ci += 1
            setattr(self, f"conv{ci}", nn.Conv2d(cin, c, 3, 1, 1, bias=False))
            setattr(self, f"bn{ci}", nn.BatchNorm2d(c))
            self.order.append(("conv", ci))
            cin = c
        self.out_channels = cin

    def forward(self, x):
        for kind, i in self.order:
            if kind == "pool":
                x = nn.functional.max_pool2d(x, 2)
            else:
                x = torch.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
        return x


class VGG(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = Features()
        self.linear = nn.Linear(self.features.out_channels, 10)

    def forward(self, x):
        x = self.features(x)
        return self.linear(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


MOBILENET_CFG = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (256, 1), (512, 2)]


class DWBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.dw_bn = nn.BatchNorm2d(cin)
        self.pw = nn.Conv2d(cin, cout, 1, 1, 0, bias=False)
        self.pw_bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = nn.functional.relu6(self.dw_bn(self.dw(x)))
        return nn.functional.relu6(self.pw_bn(self.pw(x)))


class Stem(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(32)

    def forward(self, x):
        return nn.functional.relu6(self.bn(self.conv(x)))


class MobileNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = Stem()
        cin, blocks = 32, []
        for cout, stride in MOBILENET_CFG:
            blocks.append(DWBlock(cin, cout, stride))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(cin, 10)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.linear(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


ARCHS = {"resnet20": ResNet20, "vgg": VGG, "mobilenet": MobileNet}


def load_from_onnx(model, path):
    """Copy every initializer of the ONNX file into the module's state_dict, by name; every
    parameter and buffer (num_batches_tracked aside) must be found, with the same shape."""
    import onnx
    from onnx import numpy_helper
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    state = model.state_dict()
    missing = []
    for name, t in state.items():
        if name.endswith("num_batches_tracked"):
            continue
        if name not in inits or tuple(inits[name].shape) != tuple(t.shape):
            missing.append(name)
            continue
        t.copy_(torch.from_numpy(inits[name].copy()))
    if missing:
        raise SystemExit(f"{path}: no initializer of the right shape for {missing[:5]}")
    return model
