#!/usr/bin/python3
"""Independent EVBMF reference (numpy / scipy) for tests/test_evbmf.c.

Run:   /usr/bin/python3 tests/evbmf_ref.py
Writes tests/data/evbmf_<name>.f64 (the matrix, raw little-endian float64, row-major) and
tests/data/evbmf_ref.txt (one line per matrix: name rows cols sigma2 rank threshold), both
committed, so the C test needs no Python.

Written from the papers, not from rankscope's C code:
  Nakajima, Sugiyama, Babacan, Tomioka, "Global analytic solution of fully-observed variational
  Bayesian matrix factorization", JMLR 14 (2013);
  Nakajima, Tomioka, Sugiyama, Babacan, "Perfect dimensionality recovery by variational Bayesian
  PCA", NIPS 2012 (Theorems 1-2: threshold, free energy in sigma^2, search bounds).
For Y of shape L x M (L <= M, transpose otherwise), alpha = L/M, singular values g_h:
  x_h = g_h^2 / (M s2)
  Omega(s2) = sum_{h=1..L} psi0(x_h) + sum_{h: x_h > x_lo} psi1(x_h)
  psi0(x) = x - log(x);   psi1(x) = log(tau + 1) + alpha log(tau/alpha + 1) - tau
  tau(x) = (x - (1 + alpha) + sqrt((x - (1 + alpha))^2 - 4 alpha)) / 2
  x_lo = (1 + tau_lo)(1 + alpha/tau_lo), tau_lo the root of Phi(t) + Phi(t/alpha),
  Phi(z) = log(z + 1)/z - 1/2
  s2 in [max(g_{xi+1}^2 / (M x_bar), sum_{h>xi} g_h^2 / (M (L - xi))), sum g^2 / (L M)],
  xi = ceil(L/(1+alpha)) - 1, x_bar from tau_bar = 2.5129 sqrt(alpha)
  rank = #{g_h > sqrt(M s2 x_lo)}.
The minimiser here is different from the C code's on purpose: a 20001-point log grid, then
scipy's bounded scalar minimiser in the best grid cell.
"""
import os

import numpy as np
from scipy.optimize import brentq, minimize_scalar

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def tau_lo(alpha):
    phi = lambda z: np.log1p(z) / z - 0.5
    return brentq(lambda t: phi(t) + phi(t / alpha), 1e-3 * np.sqrt(alpha), 50.0, xtol=1e-15, rtol=1e-15)


def evbmf(Y):
    L, M = Y.shape
    if L > M:
        Y = Y.T
        L, M = M, L
    g = np.linalg.svd(Y, compute_uv=False)
    alpha = L / M
    tl = tau_lo(alpha)
    x_lo = (1 + tl) * (1 + alpha / tl)
    tb = 2.5129 * np.sqrt(alpha)
    x_bar = (1 + tb) * (1 + alpha / tb)
    xi = min(int(np.ceil(L / (1 + alpha))) - 1, L - 1)
    upper = np.sum(g ** 2) / (L * M)
    lower = max(g[xi] ** 2 / (M * x_bar), np.sum(g[xi:] ** 2) / (M * (L - xi)))

    def omega(s2):
        x = g ** 2 / (M * s2)
        total = np.sum(x - np.log(x))
        big = x[x > x_lo]
        t = 0.5 * (big - (1 + alpha) + np.sqrt((big - (1 + alpha)) ** 2 - 4 * alpha))
        total += np.sum(np.log(t + 1) + alpha * np.log(t / alpha + 1) - t)
        return total

    grid = np.exp(np.linspace(np.log(lower), np.log(upper), 20001))
    vals = np.array([omega(s) for s in grid])
    k = int(np.argmin(vals))
    s2 = grid[k]
    if 0 < k < len(grid) - 1:
        res = minimize_scalar(omega, bounds=(grid[k - 1], grid[k + 1]), method="bounded",
                              options={"xatol": grid[k] * 1e-13, "maxiter": 500})
        if res.fun <= vals[k]:
            s2 = res.x
    thr = np.sqrt(M * s2 * x_lo)
    return s2, int(np.sum(g > thr)), thr


def low_rank(rng, L, M, svals, noise):
    U, _ = np.linalg.qr(rng.standard_normal((L, len(svals))))
    V, _ = np.linalg.qr(rng.standard_normal((M, len(svals))))
    return (U * np.asarray(svals)) @ V.T + noise * rng.standard_normal((L, M))


def main():
    rng = np.random.default_rng(20261127)
    mats = {
        "wide_rank4": low_rank(rng, 30, 50, [40, 30, 25, 20], 1.0),
        "tall_rank3": low_rank(rng, 50, 30, [20, 15, 12], 0.5),
        "square_rank6": low_rank(rng, 64, 64, [9, 8, 7, 6, 5, 4], 0.1),
        "very_wide_rank2": low_rank(rng, 20, 200, [60, 45], 1.0),
        "pure_noise": rng.standard_normal((40, 60)),
        "decaying_16x150": low_rank(rng, 16, 150, 30.0 * 0.6 ** np.arange(10), 0.3),
        "small_6x400": low_rank(rng, 6, 400, [50, 30], 0.5),
    }
    lines = ["# name rows cols sigma2 rank threshold  (tests/evbmf_ref.py, numpy "
             + np.__version__ + ")"]
    for name, Y in mats.items():
        Y.astype("<f8").tofile(os.path.join(OUT, "evbmf_%s.f64" % name))
        s2, rank, thr = evbmf(Y)
        lines.append("%s %d %d %.12e %d %.12e" % (name, Y.shape[0], Y.shape[1], s2, rank, thr))
        print(lines[-1])
    with open(os.path.join(OUT, "evbmf_ref.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
