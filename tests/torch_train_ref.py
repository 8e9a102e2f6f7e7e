#!/usr/bin/python3
"""torch_train_ref.py — PyTorch reference for `rankscope train`'s recipe.

Trains the reference net (conv1 3->6 5x5, pool 2, conv2 6->16 5x5, pool 2, fc1 400->120,
fc2 120->84, fc3 84->10, ReLU) on the first 45,000 CIFAR-10 training images with the same recipe
rankscope implements in src/engine/train.c, and reports validation (last 5,000 training images)
and test accuracy. It is not run by CI; it documents what the recipe reaches in PyTorch so the C
implementation's accuracy can be judged against an independent implementation.

Recipe (mirrors train_default_options):
  - SGD, momentum 0.9 (PyTorch form: v = mu*v + g; w -= lr*v), weight decay 5e-4 on weights only
  - batch 128, reshuffled every epoch, last partial batch kept
  - schedule "onecycle": linear warm-up from peak/25 to peak over the first 15 % of steps, then
    cosine down to peak/1e4 (the same formula as train_lr_at in train.c)
  - augmentation: RandomCrop(32, padding=4) with 0-padding of the raw image (= -1 after
    normalisation) + RandomHorizontalFlip
  - data normalised (x/255 - 0.5)/0.5

Measured here (torch 1.13, 1 thread, seed 1, 30 epochs): --lr 0.05 -> 71.95 % test accuracy,
--lr 0.1 -> 70.90 %. rankscope's own run of the same recipe (the shipped model) reached 70.93 %.

Usage: RANKSCOPE_DATA=/path/to/cifar-10-batches-bin /usr/bin/python3 tests/torch_train_ref.py \
           [--epochs 30] [--lr 0.05] [--seed 1] [--threads 1] [--schedule onecycle|cosine]
"""
import argparse
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_batches(data_dir, names):
    recs = []
    for n in names:
        raw = np.fromfile(os.path.join(data_dir, n), dtype=np.uint8)
        assert raw.size % 3073 == 0, n
        recs.append(raw.reshape(-1, 3073))
    r = np.concatenate(recs)
    return r[:, 1:].reshape(-1, 3, 32, 32), r[:, 0].astype(np.int64)


def normalize(u8):
    return torch.from_numpy(u8.astype(np.float32) / 127.5 - 1.0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def lr_at(step, total, peak, schedule, warmup_frac):
    """Same formula as train_lr_at() in src/engine/train.c."""
    warm = int(warmup_frac * total)
    lo = peak / 25.0 if schedule == "onecycle" else 0.0
    final = peak / 1e4 if schedule == "onecycle" else 0.0
    if step < warm:
        return lo + (peak - lo) * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return final + (peak - final) * 0.5 * (1.0 + math.cos(math.pi * t))


def augment(xpad, idx, gen):
    """xpad: (N,3,40,40) normalised with -1 borders. Random 32x32 crop + horizontal flip."""
    n = len(idx)
    ox = torch.randint(0, 9, (n,), generator=gen)
    oy = torch.randint(0, 9, (n,), generator=gen)
    flip = torch.randint(0, 2, (n,), generator=gen)
    out = torch.empty(n, 3, 32, 32)
    for k in range(n):
        img = xpad[idx[k], :, oy[k]:oy[k] + 32, ox[k]:ox[k] + 32]
        out[k] = img.flip(2) if flip[k] else img
    return out


def accuracy(net, x, y):
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            correct += (net(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
    net.train()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--schedule", default="onecycle", choices=["onecycle", "cosine"])
    ap.add_argument("--warmup", type=float, default=0.15)
    ap.add_argument("--no-augment", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data_dir = os.environ.get("RANKSCOPE_DATA")
    if not data_dir:
        raise SystemExit("set RANKSCOPE_DATA to the cifar-10-batches-bin directory")
    xtr_u8, ytr = load_batches(data_dir, ["data_batch_%d.bin" % i for i in range(1, 6)])
    xte_u8, yte = load_batches(data_dir, ["test_batch.bin"])
    xtrain = normalize(xtr_u8[:45000])
    ytrain = torch.from_numpy(ytr[:45000])
    xval, yval = normalize(xtr_u8[45000:]), torch.from_numpy(ytr[45000:])
    xtest, ytest = normalize(xte_u8), torch.from_numpy(yte)
    xpad = F.pad(xtrain, (4, 4, 4, 4), value=-1.0)  # raw 0 -> -1 after normalisation

    net = Net()
    decay = [p for n, p in net.named_parameters() if not n.endswith("bias")]
    nodecay = [p for n, p in net.named_parameters() if n.endswith("bias")]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": args.wd},
                           {"params": nodecay, "weight_decay": 0.0}],
                          lr=args.lr, momentum=0.9)
    gen = torch.Generator().manual_seed(args.seed)
    n = len(xtrain)
    steps_per_epoch = (n + args.batch - 1) // args.batch
    total = steps_per_epoch * args.epochs
    step = 0
    for ep in range(args.epochs):
        t0 = time.time()
        perm = torch.randperm(n, generator=gen)
        tot_loss, tot_correct = 0.0, 0
        for b in range(steps_per_epoch):
            idx = perm[b * args.batch:(b + 1) * args.batch]
            x = xtrain[idx] if args.no_augment else augment(xpad, idx, gen)
            y = ytrain[idx]
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, args.lr, args.schedule, args.warmup)
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            tot_loss += loss.item() * len(idx)
            tot_correct += (logits.argmax(1) == y).sum().item()
        va = accuracy(net, xval, yval)
        print("epoch %2d  loss %.4f  train acc %.4f  val acc %.4f  %.1fs" %
              (ep + 1, tot_loss / n, tot_correct / n, va, time.time() - t0), flush=True)
    print("test accuracy %.4f  (epochs %d lr %g wd %g batch %d schedule %s seed %d)" %
          (accuracy(net, xtest, ytest), args.epochs, args.lr, args.wd, args.batch,
           args.schedule, args.seed), flush=True)


if __name__ == "__main__":
    main()
