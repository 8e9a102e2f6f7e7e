#!/usr/bin/python3
"""Single-op ONNX models for tests/ops.sh, written with onnx.helper at the opsets that change an
op's form (attributes vs inputs), plus malformed ones that must be refused with a one-line error.

usage: /usr/bin/python3 tests/op_models.py OUTDIR
Writes OUTDIR/<case>.onnx, OUTDIR/input.f32 (4 random images, 3x32x32) and OUTDIR/cases.txt:
one line per case, "<case> ok" (rankscope, ONNX Runtime and the C export must agree),
"<case> noc <text>" (rankscope and ONNX Runtime agree; the C exporter refuses it with <text>) or
"<case> bad <text the error must contain>".
Every model reads "input" (N,3,32,32); constants are initializers. The opset-18 forms are
written by hand (onnx 1.12 predates opset 18; ONNX Runtime runs them)."""
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

OUT = sys.argv[1]
rng = np.random.default_rng(28112026)
cases = []


def model(name, opset, nodes, inits=(), expect=None, c_refused=None):
    """nodes: onnx NodeProtos reading "input" and writing "y"; inits: (name, array) pairs;
    expect: the load error, c_refused: the C exporter's (the engine runs the model)."""
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph(nodes, name, [inp], [out],
                          [numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    with open(os.path.join(OUT, name + ".onnx"), "wb") as f:
        f.write(m.SerializeToString())
    cases.append(f"{name} bad {expect}" if expect else f"{name} noc {c_refused}" if c_refused
                 else f"{name} ok")


def i64(*v):
    return np.array(v, dtype=np.int64)


def f32(shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, shape).astype(np.float32)


N = helper.make_node
# ---- ReduceMean / ReduceSum: axes as attribute (ReduceMean < 18, ReduceSum < 13) or input
for keep in (0, 1):
    model(f"reducemean_hw_keep{keep}_op13", 13,
          [N("ReduceMean", ["input"], ["y"], axes=[2, 3], keepdims=keep)])
    model(f"reducemean_hw_keep{keep}_op18", 18,
          [N("ReduceMean", ["input", "ax"], ["y"], keepdims=keep)], [("ax", i64(2, 3))])
model("reducemean_c_op11", 11, [N("ReduceMean", ["input"], ["y"], axes=[1])])
model("reducemean_neg_op13", 13, [N("ReduceMean", ["input"], ["y"], axes=[-1], keepdims=0)])
model("reducemean_hc_op13", 13, [N("ReduceMean", ["input"], ["y"], axes=[1, 3])],
      c_refused="the reduced axes must be adjacent")
model("reducesum_hw_op11", 11, [N("ReduceSum", ["input"], ["y"], axes=[2, 3], keepdims=0)])
model("reducesum_hw_op13", 13, [N("ReduceSum", ["input", "ax"], ["y"])], [("ax", i64(-2, -1))])
model("reducemean_batch_op13", 13, [N("ReduceMean", ["input"], ["y"], axes=[0, 2], name="r")],
      expect='"r" (ReduceMean): axis 0 is the batch axis')
model("reducemean_all_op13", 13, [N("ReduceMean", ["input"], ["y"], name="r")],
      expect='"r" (ReduceMean): reducing over every axis')
model("reducemean_twice_op13", 13, [N("ReduceMean", ["input"], ["y"], axes=[2, -2], name="r")],
      expect='"r" (ReduceMean): axis -2 is given twice')
model("reducemean_range_op13", 13, [N("ReduceMean", ["input"], ["y"], axes=[4], name="r")],
      expect='"r" (ReduceMean): axis 4 is out of range')
model("reducesum_noop_op13", 13, [N("ReduceSum", ["input", "ax"], ["y"], noop_with_empty_axes=1,
                                    name="r")], [("ax", i64(2))],
      expect='"r" (ReduceSum): unsupported attribute "noop_with_empty_axes" = 1')

x = rng.standard_normal((4, 3, 32, 32)).astype("<f4")
x.tofile(os.path.join(OUT, "input.f32"))
with open(os.path.join(OUT, "cases.txt"), "w") as f:
    f.write("\n".join(cases) + "\n")
