#!/usr/bin/python3
"""PyTorch's training speed on the same network, images and thread count as `rankscope bench`.

usage: /usr/bin/python3 tools/bench_torch_train.py (MODEL.onnx | --arch NAME) --images FILE
                                                  [--threads N] [--batch B] [--json]

  MODEL   the network to train (rankscope bench writes the graph it trains itself, BatchNormalization
          kept, to a temporary file). When its initializers match one of tools/zoo_torch.py's
          architectures by name and shape (resnet20, vgg, mobilenet, lenet) that nn.Module is used,
          else the ONNX graph is run op by op with torch.nn.functional (the same ops rankscope trains:
          Conv, Gemm, MatMul, Add, Relu, Clip, MaxPool, AveragePool, GlobalAveragePool,
          BatchNormalization, Flatten, Reshape, Identity).
  --arch  a zoo_torch architecture with PyTorch's default initialisation instead of a MODEL.
  --images a file of CIFAR-10 records (label byte + 3,072 CHW bytes); every record is trained on once.

What is timed matches rankscope's epoch: normalisation x/127.5 - 1, random crop with 4 pixels of
padding (the raw image padded with 0) and horizontal flip, batches of 128, SGD momentum 0.9, weight
decay 5e-4, softmax cross-entropy, BatchNormalization in training mode. One untimed warm-up step
first (allocator, thread pool), then the epoch; images/s = images / seconds. cpu_seconds is the
process's CPU time (every thread, time.process_time) over the same epoch: on a loaded machine the
CPU time per image compares where wall time does not.
OMP_WAIT_POLICY defaults to PASSIVE: on a shared machine, OpenMP threads spinning for each other
otherwise cost PyTorch up to half its speed (measured: LeNet 342 vs 735 images/s), which would
flatter rankscope.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zoo_torch  # noqa: E402


def fail(msg):
    print(f"bench_torch_train: {msg}", file=sys.stderr)
    sys.exit(2)


def read_images(path):
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % 3073:
        fail(f"{path}: size {raw.size} is not a positive multiple of 3073 (CIFAR-10 records)")
    rec = raw.reshape(-1, 3073)
    x = torch.from_numpy(rec[:, 1:].astype(np.float32).reshape(-1, 3, 32, 32) / 127.5 - 1.0)
    return x, torch.from_numpy(rec[:, 0].astype(np.int64))


class GraphNet(nn.Module):
    """An ONNX graph run node by node; Conv/Gemm/MatMul weights, biases and BN affine parameters
    are trainable, BN statistics are buffers."""

    TRAINED = {"Conv": (1, 2), "Gemm": (1, 2), "MatMul": (1,), "BatchNormalization": (1, 2),
               "Add": (0, 1)}

    def __init__(self, model):
        super().__init__()
        from onnx import helper, numpy_helper
        g = model.graph
        inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in g.initializer}
        self.params = nn.ParameterDict()
        self.consts = {}
        self.keys = {}
        trained = set()
        for n in g.node:
            for i in self.TRAINED.get(n.op_type, ()):
                if i < len(n.input) and n.input[i] in inits and inits[n.input[i]].dtype == torch.float32:
                    trained.add(n.input[i])
        for k, (name, t) in enumerate(inits.items()):
            key = f"p{k}"
            self.keys[name] = key
            if name in trained:
                self.params[key] = nn.Parameter(t)
            else:
                self.register_buffer(key, t)
        self.nodes = []
        for n in g.node:
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            if not hasattr(self, "op_" + n.op_type):
                fail(f"node {n.name}: op {n.op_type} has no PyTorch twin in this script")
            self.nodes.append((n.op_type, list(n.input), list(n.output), attrs))
        self.input = g.input[0].name
        self.output = g.output[0].name

    def value(self, env, name):
        if name == "":
            return None
        if name in env:
            return env[name]
        key = self.keys[name]
        return self.params[key] if key in self.params else getattr(self, key)

    def forward(self, x):
        env = {self.input: x}
        for op, ins, outs, attrs in self.nodes:
            args = [self.value(env, i) for i in ins]
            env[outs[0]] = getattr(self, "op_" + op)(attrs, *args)
        return env[self.output]

    @staticmethod
    def pads2d(attrs, x, value=0.0):
        p = list(attrs.get("pads", [0, 0, 0, 0]))
        if p[0] == p[2] and p[1] == p[3]:
            return x, (p[0], p[1])
        return F.pad(x, (p[1], p[3], p[0], p[2]), value=value), (0, 0)

    def op_Conv(self, a, x, w, b=None):
        x, pad = self.pads2d(a, x)
        return F.conv2d(x, w, b, tuple(a.get("strides", [1, 1])), pad,
                        tuple(a.get("dilations", [1, 1])), a.get("group", 1))

    def op_Gemm(self, a, x, w, c=None):
        if a.get("transA", 0):
            x = x.t()
        w = w.t() if a.get("transB", 0) else w
        y = a.get("alpha", 1.0) * (x @ w)
        return y if c is None else y + a.get("beta", 1.0) * c

    def op_MatMul(self, a, x, w):
        return x @ w

    def op_Add(self, a, x, y):
        return x + y

    def op_Relu(self, a, x):
        return F.relu(x)

    def op_Clip(self, a, x, lo=None, hi=None):
        lo = float(lo) if lo is not None else a.get("min", None)
        hi = float(hi) if hi is not None else a.get("max", None)
        return torch.clamp(x, lo, hi)

    def op_MaxPool(self, a, x):
        x, pad = self.pads2d(a, x, float("-inf"))
        return F.max_pool2d(x, tuple(a["kernel_shape"]), tuple(a.get("strides", a["kernel_shape"])),
                            pad, tuple(a.get("dilations", [1, 1])), bool(a.get("ceil_mode", 0)))

    def op_AveragePool(self, a, x):
        x, pad = self.pads2d(a, x)
        return F.avg_pool2d(x, tuple(a["kernel_shape"]), tuple(a.get("strides", a["kernel_shape"])),
                            pad, bool(a.get("ceil_mode", 0)), bool(a.get("count_include_pad", 0)))

    def op_GlobalAveragePool(self, a, x):
        return x.mean((2, 3), keepdim=True)

    def op_BatchNormalization(self, a, x, scale, bias, mean, var):
        return F.batch_norm(x, mean, var, scale, bias, self.training, 1.0 - a.get("momentum", 0.9),
                            a.get("epsilon", 1e-5))

    def op_Flatten(self, a, x):
        return torch.flatten(x, a.get("axis", 1))

    def op_Reshape(self, a, x, shape):
        s = [int(v) for v in shape]
        return x.reshape([x.shape[i] if v == 0 else v for i, v in enumerate(s)])

    def op_Identity(self, a, x):
        return x


class LeNet(nn.Module):
    """The PyTorch tutorial net, as the shipped assets/lenet-cifar10.onnx."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = torch.flatten(F.max_pool2d(F.relu(self.conv2(x)), 2), 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


ARCHS = dict(zoo_torch.ARCHS, lenet=LeNet)


def twin_of(path):
    """(module, description): the zoo_torch architecture whose parameters match the file's
    initializers exactly, else the graph itself."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(path)
    # scalars are attribute-like constants (Clip bounds), not parameters
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer if len(t.dims) > 0}
    for name, cls in ARCHS.items():
        m = cls()
        state = {k: tuple(v.shape) for k, v in m.state_dict().items()
                 if not k.endswith("num_batches_tracked")}
        if state == shapes:
            inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
            with torch.no_grad():
                for k, v in m.state_dict().items():
                    if k in inits:
                        v.copy_(torch.from_numpy(inits[k].copy()))
            return m, f"tools/zoo_torch.py {name}"
    return GraphNet(model), "the ONNX graph, op by op"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--arch", choices=sorted(ARCHS))
    ap.add_argument("--images", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--json", action="store_true")
    o = ap.parse_args()
    if (o.model is None) == (o.arch is None):
        fail("name exactly one of MODEL.onnx and --arch")
    torch.set_num_threads(o.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(1)
    if o.arch:
        net, twin = ARCHS[o.arch](), f"tools/zoo_torch.py {o.arch}"
    else:
        net, twin = twin_of(o.model)
    x, y = read_images(o.images)
    n = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4), value=-1.0)  # the raw image padded with 0, normalised
    net.train()
    decay = [p for p in net.parameters() if p.dim() > 1]
    rest = [p for p in net.parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0}],
                          lr=0.001, momentum=0.9)
    gen = torch.Generator().manual_seed(1)

    def step(idx):
        dy = torch.randint(0, 9, (len(idx),), generator=gen).tolist()
        dx = torch.randint(0, 9, (len(idx),), generator=gen).tolist()
        xb = torch.stack([padded[i, :, a:a + 32, b:b + 32] for i, a, b in zip(idx.tolist(), dy, dx)])
        flip = torch.rand(len(idx), generator=gen) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        loss = F.cross_entropy(net(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    step(torch.arange(min(o.batch, n)))  # warm-up, untimed
    order = torch.randperm(n, generator=gen)
    t0, c0 = time.perf_counter(), time.process_time()
    for first in range(0, n, o.batch):
        loss = step(order[first:first + o.batch])
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    if not np.isfinite(loss):
        fail(f"the loss turned {loss}")
    r = {"runtime": f"torch {torch.__version__}", "twin": twin, "images": n, "threads": o.threads,
         "batch": o.batch, "seconds": secs, "images_per_second": n / secs, "cpu_seconds": cpu}
    if o.json:
        print(json.dumps(r))
    else:
        print(f"PyTorch {torch.__version__} ({twin}, {o.threads} threads, batch {o.batch}): "
              f"{n} images in {secs:.3f} s ({n / secs:.0f} images/s), CPU {1e3 * cpu / n:.3f} ms per image")


if __name__ == "__main__":
    main()
