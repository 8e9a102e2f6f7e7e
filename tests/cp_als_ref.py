#!/usr/bin/python3
"""CP-ALS timing and error reference for `rankscope decompose --method cp` (the README's performance figures).

TensorLy cannot be installed here (no PyPI), so this is a plain numpy CP-ALS following TensorLy's
`parafac` (init="svd": leading left singular vectors of each unfolding, random columns beyond the
mode size; normalised factors; stop when |rel_err[k-1] - rel_err[k]| < tol; n_iter_max sweeps),
the same stopping rule rankscope uses by default (tol 1e-8, 200 sweeps).

usage: /usr/bin/python3 tests/cp_als_ref.py MODEL.onnx WEIGHT_INITIALIZER RANK [RANKSCOPE_BIN LAYER [TOL]]
Prints numpy's time and final relative error; with RANKSCOPE_BIN and LAYER also runs
`rankscope decompose --json` on the same layer and rank and prints both side by side; with TOL,
exits 1 unless rankscope's relative error <= numpy's + TOL (tests/cli_decomp.sh uses this).
"""
import json
import subprocess
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper


def unfold(x, mode):
    return np.moveaxis(x, mode, 0).reshape(x.shape[mode], -1)


def khatri_rao(mats):
    r = mats[0].shape[1]
    out = mats[0]
    for m in mats[1:]:
        out = (out[:, None, :] * m[None, :, :]).reshape(-1, r)
    return out


def cp_als(x, rank, n_iter_max=200, tol=1e-8, seed=0):
    rng = np.random.default_rng(seed)
    factors = []
    for mode in range(x.ndim):
        u, _, _ = np.linalg.svd(unfold(x, mode), full_matrices=False)
        f = rng.standard_normal((x.shape[mode], rank))
        k = min(rank, u.shape[1])
        f[:, :k] = u[:, :k]
        factors.append(f)
    norm_x = np.linalg.norm(x)
    errs = []
    for it in range(n_iter_max):
        for mode in range(x.ndim):
            others = [factors[m] for m in range(x.ndim) if m != mode]
            v = np.ones((rank, rank))
            for f in others:
                v *= f.T @ f
            mttkrp = unfold(x, mode) @ khatri_rao(others)
            factors[mode] = np.linalg.solve(v.T, mttkrp.T).T
        weights = np.ones(rank)
        for f in factors:
            n = np.linalg.norm(f, axis=0)
            n[n == 0] = 1
            f /= n
            weights *= n
        rec = np.einsum("r,ir,jr,kr,lr->ijkl", weights, *factors)
        errs.append(np.linalg.norm(x - rec) / norm_x)
        if it > 0 and abs(errs[-2] - errs[-1]) < tol:
            break
        factors[0] *= weights  # keep the scale in one factor for the next sweep
    return errs


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    model, init, rank = sys.argv[1], sys.argv[2], int(sys.argv[3])
    g = onnx.load(model).graph
    w = [numpy_helper.to_array(t) for t in g.initializer if t.name == init]
    if not w:
        sys.exit("no initializer %r (have %s)" % (init, [t.name for t in g.initializer]))
    x = w[0].astype(np.float64)
    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        errs = cp_als(x, rank)
        t = time.perf_counter() - t0
        best = t if best is None else min(best, t)
    print("numpy CP-ALS (TensorLy's parafac rule): %s rank %d: %d sweeps, rel. error %.4f, %.1f ms"
          % (x.shape, rank, len(errs), errs[-1], 1e3 * best))
    if len(sys.argv) >= 6:
        out = subprocess.run([sys.argv[4], "decompose", model, "--layer", sys.argv[5], "--method", "cp",
                              "--rank", str(rank), "--json", "--calib", "1"],
                             check=True, capture_output=True, text=True).stdout
        d = json.loads(out)
        print("rankscope CP-ALS:                       %d sweeps, rel. error %.4f, %.1f ms"
              % (d["iterations"], d["weight_error"], 1e3 * d["seconds"]))
        if len(sys.argv) >= 7 and d["weight_error"] > errs[-1] + float(sys.argv[6]):
            sys.exit("rankscope's CP error %.4f exceeds numpy's %.4f + %s"
                     % (d["weight_error"], errs[-1], sys.argv[6]))


if __name__ == "__main__":
    main()
