#!/usr/bin/python3
"""Independent int8 reference (numpy) for tests/test_quant.c.

Run:   /usr/bin/python3 tests/quant_ref.py
Writes tests/data/quant_ref.f32: for each case below, in order, raw little-endian float32 arrays:
the two factor weights and the first factor's bias as given (inputs), then the balanced weights
and bias, then the int8 round trips of the balanced weights. Committed, so the C test needs no
Python.

Written from the documented rules (quant.h, export.h), not from rankscope's C code:
  balancing: for rank index k, r1 = max|first factor's output channel k|, r2 = max|second
  factor's input channel k|; two rescales are offered: s = g / r2 (g the geometric mean of
  sqrt(r1 r2): the second factor's input channels brought to one range) and s = sqrt(r1 / r2)
  (in float64); channel k of the first factor and its bias divided by s, input channel k of the
  second multiplied by s, rounded to float32 (ranks with |s - 1| < 1e-6 left alone). Up to three
  sweeps; in each, the rescale with the least first-order product error (int8 round trips ΔW:
  sum_k |ΔW2[:,k]|²|W1[k]|² + |W2[:,k]|²|ΔW1[k]|² over sum_k |W2[:,k]|²|W1[k]|²) is kept when
  it lowers the error by more than a relative 1e-9; a sweep that keeps none ends the balancing.
  int8: per output channel c, scale = float32(max|w_c|) / 127 in float32, r = w / scale in
  float32, q = round half away from zero, clamped to [-127, 127]; w' = q * scale in float32.
Cases (shapes as ONNX stores them):
  gemm_t : Gemm transB  W1 (8, 20) bias 8   -> Gemm transB W2 (12, 8)
  gemm_n : Gemm         W1 (20, 8) bias 8   -> MatMul      W2 (8, 12)
  conv   : Conv         W1 (6, 3, 5, 1) b 6 -> Conv        W2 (10, 6, 1, 5)
Column/channel magnitudes are deliberately uneven (a factor 1..100 per rank) so balancing matters.
"""
import os

import numpy as np

CASES = [("gemm_t", (8, 20), (12, 8)), ("gemm_n", (20, 8), (8, 12)),
         ("conv", (6, 3, 5, 1), (10, 6, 1, 5))]


def out_channel_axis(name, which):
    # axis of the output channel in the stored weight
    if name == "gemm_n":
        return 1
    return 0


def in_channel_axis(name):
    # axis of the second factor's input channel
    return 0 if name == "gemm_n" else 1


def quantize(w, axis):
    w = w.astype(np.float32)
    wm = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    out = np.empty_like(wm)
    for c in range(wm.shape[0]):
        scale = np.float32(np.max(np.abs(wm[c]))) / np.float32(127.0)
        scale = np.float32(scale)
        if scale == 0:
            out[c] = 0
            continue
        r = (wm[c] / scale).astype(np.float32)
        q = np.sign(r) * np.floor(np.abs(r).astype(np.float64) + 0.5)
        q = np.clip(q, -127, 127).astype(np.float32)
        out[c] = (q * scale).astype(np.float32)
    moved = np.moveaxis(w, axis, 0).shape
    return np.moveaxis(out.reshape(moved), 0, axis)


def chans(w, axis):
    return np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1).astype(np.float64)


def product_error(w1, w2, a1, a2, o2):
    d1 = chans(w1, a1) - chans(quantize(w1, a1), a1)
    d2 = chans(w2, a2) - chans(quantize(w2, o2), a2)
    n1, n2 = (chans(w1, a1) ** 2).sum(1), (chans(w2, a2) ** 2).sum(1)
    num = ((d2 ** 2).sum(1) * n1 + n2 * (d1 ** 2).sum(1)).sum()
    return num / (n1 * n2).sum()


def rescale(w1, b1, w2, a1, a2, rule):
    rank = w1.shape[a1]
    r1 = np.max(np.abs(chans(w1, a1)), axis=1)
    r2 = np.max(np.abs(chans(w2, a2)), axis=1)
    ok = (r1 > 0) & (r2 > 0)
    g = np.exp(np.mean(0.5 * np.log(r1[ok] * r2[ok]))) if ok.any() else 1.0
    s = np.where(ok, g / np.where(ok, r2, 1) if rule == 1 else np.sqrt(np.where(ok, r1 / np.where(ok, r2, 1), 1)), 1.0)
    s = np.where(np.abs(s - 1.0) < 1e-6, 1.0, s)
    if np.all(s == 1.0):
        return None
    sh1 = [1] * w1.ndim
    sh1[a1] = rank
    sh2 = [1] * w2.ndim
    sh2[a2] = rank
    return ((w1.astype(np.float64) / s.reshape(sh1)).astype(np.float32),
            (b1.astype(np.float64) / s).astype(np.float32),
            (w2.astype(np.float64) * s.reshape(sh2)).astype(np.float32))


def main():
    rng = np.random.default_rng(12)
    here = os.path.dirname(os.path.abspath(__file__))
    blobs = []
    for name, s1, s2 in CASES:
        a1, a2 = out_channel_axis(name, 1), in_channel_axis(name)
        rank = s1[a1]
        w1 = rng.standard_normal(s1).astype(np.float32)
        w2 = rng.standard_normal(s2).astype(np.float32)
        mag = np.exp(rng.uniform(0, np.log(100), rank))
        shape = [1] * w1.ndim
        shape[a1] = rank
        w1 = (w1 * mag.reshape(shape)).astype(np.float32)
        b1 = rng.standard_normal(rank).astype(np.float32)
        o2 = 1 if name == "gemm_n" else 0
        bw1, bb1, bw2 = w1, b1, w2
        cur = product_error(bw1, bw2, a1, a2, o2)
        for _ in range(3):
            best = None
            for rule in (1, 2):
                c = rescale(bw1, bb1, bw2, a1, a2, rule)
                if c is None:
                    continue
                err = product_error(c[0], c[2], a1, a2, o2)
                if err < cur * (1 - 1e-9):
                    cur, best = err, c
            if best is None:
                break
            bw1, bb1, bw2 = best
        q1 = quantize(bw1, a1)
        q2 = quantize(bw2, 1 if name == "gemm_n" else 0)
        for arr in (w1, b1, w2, bw1, bb1, bw2, q1, q2):
            blobs.append(np.ascontiguousarray(arr, dtype="<f4").tobytes())
    with open(os.path.join(here, "data", "quant_ref.f32"), "wb") as f:
        f.write(b"".join(blobs))


if __name__ == "__main__":
    main()
