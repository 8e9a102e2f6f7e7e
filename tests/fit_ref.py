#!/usr/bin/python3
"""Independent reference for `--fit outputs` (src/engine/fit.c), printed as TAP.

usage: /usr/bin/python3 tests/fit_ref.py ORIGINAL.onnx WEIGHT_FIT.onnx OUTPUT_FIT.onnx DATA_DIR N LAYER...

Runs both networks in float64 (PyTorch functional ops, weights read with python3-onnx) on the
first N images of data_batch_1.bin (x/127.5 - 1, as rankscope). For each factorized LAYER, in
graph order:
  x  = the layer's input in the original network (targets y = layer(x));
  xt = the input the fitted chain sees in OUTPUT_FIT (the already-compressed prefix);
  z  = the chain's prefix factors (taken from OUTPUT_FIT, fitted to the weights) applied to xt;
and solves the head again with numpy, from scratch: least squares (spatial-svd, cp) or the
reduced-rank regression / whitened SVD (svd, tucker2): eigh of the centred covariance of z's
patches, truncated SVD of G^1/2 W C Q Λ^-1/2 (G: the next weighted layer's per-channel weight
Gram plus its mean eigenvalue on the diagonal, as fit.h states), mapped back; bias
b' = b + W μx - W' μz. Checks:
  1. rankscope's chain output equals the reference chain output to 1e-3 of ‖y‖ (float32 factors,
     float32 activations in rankscope against float64 here);
  2. its relative output error equals the reference's within 1e-3 (absolute);
  3. it is not above the weight-only chain's output error from WEIGHT_FIT on the same xt
     (the fit minimises exactly that).
"""
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

torch.set_default_dtype(torch.float64)


def load(path):
    m = onnx.load(path)
    w = {i.name: torch.from_numpy(numpy_helper.to_array(i).astype(np.float64)) for i in m.graph.initializer}
    return m, w


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def run_node(node, w, env):
    a = attrs(node)
    ins = [env[i] if i in env else w[i] for i in node.input if i]
    op = node.op_type
    if op == "Conv":
        x, k = ins[0], ins[1]
        b = ins[2] if len(ins) > 2 else None
        p = list(a.get("pads", [0, 0, 0, 0]))
        x = F.pad(x, (p[1], p[3], p[0], p[2]))
        return F.conv2d(x, k, b, stride=tuple(a.get("strides", [1, 1])), dilation=tuple(a.get("dilations", [1, 1])),
                        groups=a.get("group", 1))
    if op == "Gemm":
        x, B = ins[0], ins[1]
        B = B.t() if a.get("transB", 0) else B
        y = a.get("alpha", 1.0) * (x @ B)
        if len(ins) > 2:
            y = y + a.get("beta", 1.0) * ins[2]
        return y
    if op == "MatMul":
        return ins[0] @ ins[1]
    if op == "Add":
        return ins[0] + ins[1]
    if op == "Relu":
        return torch.relu(ins[0])
    if op == "MaxPool":
        p = list(a.get("pads", [0, 0, 0, 0]))
        x = F.pad(ins[0], (p[1], p[3], p[0], p[2]), value=-float("inf"))
        return F.max_pool2d(x, tuple(a["kernel_shape"]), stride=tuple(a.get("strides", a["kernel_shape"])),
                            ceil_mode=bool(a.get("ceil_mode", 0)))
    if op == "Flatten":
        return ins[0].reshape(ins[0].shape[0], -1)
    if op == "Reshape":
        return ins[0].reshape(ins[0].shape[0], -1)
    raise SystemExit(f"fit_ref.py: op {op} not supported")


def forward(model, w, x):
    env = {model.graph.input[0].name: x}
    for node in model.graph.node:
        env[node.output[0]] = run_node(node, w, env)
    return env


def node_by_name(model, name):
    return next(n for n in model.graph.node if n.name == name)


def chain_nodes(model, layer):
    return [n for n in model.graph.node if n.name.startswith(layer + "_f")]


def patches(x, node):
    """im2col with the node's geometry: (rows = images × positions, cols = C·kh·kw)."""
    a = attrs(node)
    if x.dim() == 2:
        return x
    p = list(a.get("pads", [0, 0, 0, 0]))
    x = F.pad(x, (p[1], p[3], p[0], p[2]))
    k = tuple(a["kernel_shape"]) if "kernel_shape" in a else None
    cols = F.unfold(x, k, dilation=tuple(a.get("dilations", [1, 1])), stride=tuple(a.get("strides", [1, 1])))
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def as_matrix(wt, op_node):
    """A factor's weight as out × in (patch order c, kh, kw)."""
    if wt.dim() == 4:
        return wt.reshape(wt.shape[0], -1)
    a = attrs(op_node)
    return wt if (op_node.op_type == "Gemm" and a.get("transB", 0)) else wt.t()


def rows(y):
    """Activations as (image, h, w) rows × channels, the order of patches()."""
    return y.permute(0, 2, 3, 1).reshape(-1, y.shape[1]) if y.dim() == 4 else y


def downstream_metric(model, w, node, c_out):
    """G = A + tr(A)/C_out I, A the Gram of the next weighted layer's weights per input channel,
    when the output reaches exactly one weighted layer through ReLU / pooling / reshaping."""
    v = node.output[0]
    for _ in range(16):
        readers = [n for n in model.graph.node if v in n.input]
        if len(readers) != 1:
            return None
        nd = readers[0]
        if nd.op_type in ("Relu", "MaxPool", "AveragePool", "Flatten", "Reshape", "Identity", "Clip"):
            v = nd.output[0]
            continue
        if nd.op_type not in ("Conv", "Gemm", "MatMul") or nd.input[0] != v:
            return None
        K = as_matrix(w[nd.input[1]], nd).numpy()  # out × (c_in · taps)
        per = K.shape[1] // c_out
        if per * c_out != K.shape[1]:
            return None
        K3 = K.reshape(K.shape[0], c_out, per)
        A = np.einsum("ocs,ods->cd", K3, K3)
        return A + np.trace(A) / c_out * np.eye(c_out)
    return None


def solve(Xp, Zp, W, b, rank, G=None, floor=1e-6):
    """Head weights W' (out × pz) and bias from patches X (rows × px), Z (rows × pz)."""
    mx, mz = Xp.mean(0), Zp.mean(0)
    Xc, Zc = Xp - mx, Zp - mz
    n = Xp.shape[0]
    C = Xc.t() @ Zc / n
    S = Zc.t() @ Zc / n
    lam, Q = np.linalg.eigh(S.numpy())
    order = np.argsort(lam)[::-1]
    lam, Q = lam[order], Q[:, order]
    k = int(np.sum(lam > floor * lam[0]))
    lam, Q = lam[:k], Q[:, :k]
    T = (W @ C).numpy()
    M = T @ Q / np.sqrt(lam)
    if rank:
        if G is not None:
            ge, gq = np.linalg.eigh(G)
            M = ((gq * np.sqrt(ge)) @ gq.T) @ M
        U, s, Vt = np.linalg.svd(M, full_matrices=False)
        M = (U[:, :rank] * s[:rank]) @ Vt[:rank]
        if G is not None:
            M = ((gq / np.sqrt(ge)) @ gq.T) @ M
    Wp = torch.from_numpy((M / np.sqrt(lam)) @ Q.T)
    bp = b + W @ mx - Wp @ mz
    return Wp, bp


def main():
    orig_p, wfit_p, ofit_p, data, n = sys.argv[1:6]
    layers = sys.argv[6:]
    n = int(n)
    raw = np.fromfile(f"{data}/data_batch_1.bin", dtype=np.uint8, count=n * 3073).reshape(n, 3073)
    x = torch.from_numpy(raw[:, 1:].astype(np.float64).reshape(n, 3, 32, 32) / 127.5 - 1.0)
    mo, wo = load(orig_p)
    mw, ww = load(wfit_p)
    mf, wf = load(ofit_p)
    eo, ew, ef = forward(mo, wo, x), forward(mw, ww, x), forward(mf, wf, x)
    t = 0
    for layer in layers:
        node = node_by_name(mo, layer)
        xin, W = eo[node.input[0]], wo[node.input[1]]
        b = wo[node.input[2]] if len(node.input) > 2 else torch.zeros(W.shape[0])
        y = eo[node.output[0]]
        W = as_matrix(W, node)
        if node.op_type == "Gemm" and attrs(node).get("alpha", 1.0) != 1.0:
            raise SystemExit("fit_ref.py: alpha != 1 not covered")
        chain = chain_nodes(mf, layer)
        if chain[0].op_type != "Conv":
            method = "svd"
        else:
            method = {2: "spatial-svd", 3: "tucker2", 4: "cp"}[len(chain)]
        prefix = {"svd": 0, "tucker2": 1, "spatial-svd": 1, "cp": 3}[method]
        rank = {"svd": 1, "tucker2": 1}.get(method, 0)
        xt = ef[chain[0].input[0]]
        z = xt
        env = {chain[0].input[0]: xt}
        for c in chain[:prefix]:
            z = run_node(c, wf, env)
            env[c.output[0]] = z
        head = chain[prefix]
        Xp, Zp = patches(xin, node), patches(z, head)
        r = as_matrix(wf[head.input[1]], head).shape[0] if rank else 0
        G = downstream_metric(mo, wo, node, W.shape[0]) if r else None
        Wp, bp = solve(Xp, Zp, W, b, r, G)
        Yp = rows(y)
        y_ref = Zp @ Wp.t() + bp
        y_rs = rows(ef[chain[-1].output[0]])
        # the weight-only chain on the same input xt
        wchain = chain_nodes(mw, layer)
        envw = {wchain[0].input[0]: xt}
        for c in wchain:
            envw[c.output[0]] = run_node(c, ww, envw)
        y_w = rows(envw[wchain[-1].output[0]])
        ny = torch.linalg.norm(Yp)
        d = float(torch.linalg.norm(y_rs - y_ref) / ny)
        err_rs, err_ref = float(torch.linalg.norm(y_rs - Yp) / ny), float(torch.linalg.norm(y_ref - Yp) / ny)
        err_w = float(torch.linalg.norm(y_w - Yp) / ny)
        t += 1
        print(f"{'ok' if d <= 1e-3 else 'not ok'} {t} - {layer} ({method}): rankscope's fitted chain output = "
              f"numpy reference to {d:.2e} of |y| (tolerance 1e-3)")
        t += 1
        print(f"{'ok' if abs(err_rs - err_ref) <= 1e-3 else 'not ok'} {t} - {layer}: output error {err_rs:.5f} "
              f"= reference {err_ref:.5f} (tolerance 1e-3)")
        t += 1
        print(f"{'ok' if err_rs <= err_w + 1e-6 else 'not ok'} {t} - {layer}: fitted output error {err_rs:.5f} "
              f"<= weight-only {err_w:.5f} on the same inputs")
    print(f"1..{t}")


if __name__ == "__main__":
    main()
