#!/usr/bin/python3
"""Golden values for BatchNormalization training (tests/test_bn_train.c), made by PyTorch.

Net: Conv 3->4 3x3 pad 1 (bias) -> BatchNorm2d(4) in training mode -> ReLU -> global average
pool -> flatten -> Linear 4->5, on a batch of 6 images of 3x6x6; loss = mean cross-entropy.
Writes tests/data/bn_train_ref.f32: float32 arrays back to back, in this order:
  x (6*3*6*6), labels as floats (6), conv.weight (4*3*3*3), conv.bias (4), bn.weight (4),
  bn.bias (4), bn.running_mean before (4), bn.running_var before (4), fc.weight (5*4), fc.bias (5),
  logits (6*5), loss (1), grads of conv.weight, conv.bias, bn.weight, bn.bias, fc.weight, fc.bias,
  bn.running_mean after (4), bn.running_var after (4), eval-mode logits after the update (6*5).
Run: /usr/bin/python3 tests/bn_train_ref.py
"""
import os
import torch

torch.manual_seed(7)
torch.set_default_dtype(torch.float64)
x = torch.randn(6, 3, 6, 6) * 1.5 + 0.3
labels = torch.tensor([0, 3, 1, 4, 2, 0])
conv = torch.nn.Conv2d(3, 4, 3, padding=1)
bn = torch.nn.BatchNorm2d(4, momentum=0.1, eps=1e-5)
fc = torch.nn.Linear(4, 5)
with torch.no_grad():
    bn.weight.copy_(torch.tensor([1.2, 0.7, -0.5, 1.0]))
    bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    bn.running_mean.copy_(torch.tensor([0.1, -0.1, 0.2, 0.0]))
    bn.running_var.copy_(torch.tensor([1.2, 0.8, 1.0, 2.0]))
net = torch.nn.Sequential(conv, bn, torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                          torch.nn.Flatten(), fc)
before = [t.detach().clone() for t in (x, labels.double(), conv.weight, conv.bias, bn.weight,
                                        bn.bias, bn.running_mean, bn.running_var, fc.weight, fc.bias)]
net.train()
logits = net(x)
loss = torch.nn.functional.cross_entropy(logits, labels)
loss.backward()
grads = [p.grad.detach().clone() for p in (conv.weight, conv.bias, bn.weight, bn.bias, fc.weight,
                                           fc.bias)]
net.eval()
with torch.no_grad():
    eval_logits = net(x)
out = before + [logits.detach(), loss.detach().reshape(1)] + grads + [
    bn.running_mean.detach(), bn.running_var.detach(), eval_logits]
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "data", "bn_train_ref.f32"), "wb") as f:
    for t in out:
        f.write(t.reshape(-1).float().numpy().tobytes())
