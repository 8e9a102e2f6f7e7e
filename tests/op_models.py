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

# ---- Add / Sub / Mul / Div: with constants (scalar, per channel, any broadcast), between
# activations (same shape, per-channel broadcast either side), constant first
for op in ("Add", "Sub", "Mul", "Div"):
    lo = 0.5 if op == "Div" else -1.0  # divisors away from zero
    model(f"{op.lower()}_scalar_op7", 7, [N(op, ["input", "c"], ["y"])], [("c", f32((), lo, 2.0))])
    model(f"{op.lower()}_channel_op13", 13, [N(op, ["input", "c"], ["y"])], [("c", f32((1, 3, 1, 1), lo, 2.0))])
    model(f"{op.lower()}_cfirst_op14", 14, [N(op, ["c", "input"], ["y"])], [("c", f32((3, 1, 1), lo, 2.0))])
    model(f"{op.lower()}_cscatter_op13", 13, [N(op, ["input", "c"], ["y"])], [("c", f32((3, 1, 32), lo, 2.0))])
    model(f"{op.lower()}_acts_op13", 13, [N("Sigmoid", ["input"], ["s"]), N("Add", ["s", "h"], ["t"]),
                                          N(op, ["input", "t"], ["y"])], [("h", f32((), 0.5, 0.5))])
model("mul_se_op13", 13, [N("ReduceMean", ["input"], ["s"], axes=[2, 3]), N("Sigmoid", ["s"], ["g"]),
                          N("Mul", ["input", "g"], ["y"])])
model("mul_se_first_op13", 13, [N("ReduceMean", ["input"], ["s"], axes=[2, 3]),
                                N("Mul", ["s", "input"], ["y"])])
model("div_se_op18", 18, [N("ReduceSum", ["input", "ax"], ["s"]), N("Sigmoid", ["s"], ["a"]),
                          N("Add", ["h", "a"], ["t"]), N("Div", ["input", "t"], ["y"])],
      [("ax", i64(1)), ("h", f32((), 0.5, 0.5))])
# ---- the activations MobileNetV3 / SE blocks use, alone (C export included)
model("sigmoid_op13", 13, [N("Sigmoid", ["input"], ["y"])])
model("hardsigmoid_op13", 13, [N("HardSigmoid", ["input"], ["y"], alpha=0.25, beta=0.4)])
model("hardswish_op14", 14, [N("HardSwish", ["input"], ["y"])])
model("prelu_channel_op13", 13, [N("PRelu", ["input", "s"], ["y"])], [("s", f32((3, 1, 1), 0.05, 0.4))])
model("prelu_scalar_op9", 9, [N("PRelu", ["input", "s"], ["y"])], [("s", f32((1,), 0.05, 0.4))])
model("leakyrelu_op11", 11, [N("LeakyRelu", ["input"], ["y"], alpha=0.2)])
model("sub_rows_op13", 13, [N("ReduceMean", ["input"], ["s"], axes=[2]), N("Sub", ["input", "s"], ["y"])],
      c_refused="broadcasts over non-adjacent axes")
model("add_bcast_acts_op13", 13, [N("ReduceMean", ["input"], ["s"], axes=[2, 3]),
                                  N("Add", ["input", "s"], ["y"], name="a")],
      expect='"a" (Add): inputs "input" and "s" differ in shape')
model("mul_int_op13", 13, [N("Mul", ["input", "c"], ["y"], name="m")], [("c", i64(2))],
      expect='"m" (Mul): input "c" must be a float tensor')
model("mul_batchconst_op13", 13, [N("Mul", ["input", "c"], ["y"], name="m")], [("c", f32((2, 3, 32, 32)))],
      expect='"m" (Mul): constant "c" has more dims than "input" or a batch extent')
model("mul_nobcast_op13", 13, [N("Mul", ["input", "c"], ["y"], name="m")], [("c", f32((5, 1, 1)))],
      expect='"m" (Mul): inputs "input" and "c" do not broadcast (dim 1: 3 vs 5)')

# ---- Concat of activations along the channels: two inputs, several (DenseNet), negative axis
model("concat2_op13", 13, [N("Relu", ["input"], ["r"]), N("Concat", ["input", "r"], ["y"], axis=1)])
model("concat4_op11", 11, [N("Relu", ["input"], ["r"]), N("Sigmoid", ["input"], ["s"]),
                           N("Concat", ["input", "r", "s", "r"], ["y"], axis=1)])
model("concat3_neg_op13", 13, [N("Relu", ["input"], ["r"]), N("Concat", ["r", "input", "r"], ["y"], axis=-3)])
model("concat_spatial_op13", 13, [N("Relu", ["input"], ["r"]),
                                  N("Concat", ["input", "r"], ["y"], axis=2, name="c")],
      expect='"c" (Concat): only concatenation along the channel axis 1 is supported (axis 2)')

# ---- layout: Cast to float, Transpose, Slice, Expand, Reshape beyond flatten
model("cast_float_op13", 13, [N("Cast", ["input"], ["y"], to=TensorProto.FLOAT)])
model("cast_int_op13", 13, [N("Cast", ["input"], ["y"], to=TensorProto.INT64, name="c")],
      expect='"c" (Cast): a cast of an activation to int64 is not supported')
model("cast_half_op13", 13, [N("Cast", ["input"], ["y"], to=TensorProto.FLOAT16, name="c")],
      expect='"c" (Cast): unsupported attribute "to" = 10')
model("transpose_op13", 13, [N("Transpose", ["input"], ["y"], perm=[0, 2, 3, 1])])
model("transpose_batch_op13", 13, [N("Transpose", ["input"], ["y"], perm=[1, 0, 2, 3], name="t")],
      expect='"t" (Transpose): attribute "perm" moves the batch axis (perm[0] = 1)')
model("transpose_default_op13", 13, [N("Transpose", ["input"], ["y"], name="t")],
      expect='"t" (Transpose): attribute "perm" has 0 entries')
model("slice_channels_op13", 13, [N("Slice", ["input", "s", "e", "a"], ["y"])],
      [("s", i64(1)), ("e", i64(3)), ("a", i64(1))])
model("slice_steps_op11", 11, [N("Slice", ["input", "s", "e", "a", "st"], ["y"])],
      [("s", i64(-30, 1)), ("e", i64(1000, -1)), ("a", i64(2, -1)), ("st", i64(3, 2))])
model("slice_batch_op13", 13, [N("Slice", ["input", "s", "e", "a"], ["y"], name="s")],
      [("s", i64(0)), ("e", i64(2)), ("a", i64(0))], expect='"s" (Slice): slicing the batch axis')
model("slice_back_op13", 13, [N("Slice", ["input", "s", "e", "a", "st"], ["y"], name="s")],
      [("s", i64(-1)), ("e", i64(-100)), ("a", i64(1)), ("st", i64(-1))],
      expect='"s" (Slice): step -1 is not supported')
model("expand_op13", 13, [N("ReduceMean", ["input"], ["m"], axes=[2]), N("Expand", ["m", "sh"], ["y"])],
      [("sh", i64(1, 3, 32, 32))])
# an Expand whose only reader broadcasts anyway (squeeze-and-excitation's x * expand(gate)) is not
# materialised: the gate as either operand of Mul / Sub; and one the reader needs expanded (its
# other operand is thinner), which stays a step
model("expand_gate_op13", 13, [N("ReduceMean", ["input"], ["m"], axes=[2, 3]), N("Sigmoid", ["m"], ["g"]),
                               N("Expand", ["g", "sh"], ["e"]), N("Mul", ["input", "e"], ["y"])],
      [("sh", i64(1, 3, 32, 32))])
model("expand_gate_first_op13", 13, [N("ReduceMean", ["input"], ["m"], axes=[3]),
                                     N("Expand", ["m", "sh"], ["e"]), N("Sub", ["e", "input"], ["y"])],
      [("sh", i64(1, 1, 1, 32))])
model("expand_grows_op13", 13, [N("ReduceMean", ["input"], ["m"], axes=[2, 3]), N("ReduceMean", ["input"], ["r"], axes=[3]),
                                N("Expand", ["m", "sh"], ["e"]), N("Mul", ["e", "r"], ["y"])],
      [("sh", i64(1, 3, 32, 32))])
model("shuffle_op14", 14, [N("Reshape", ["input", "s1"], ["r"]), N("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4]),
                           N("Reshape", ["t", "s2"], ["y"])], [("s1", i64(0, 3, 4, 8, 32)), ("s2", i64(0, -1, 32, 32))])
# shape vectors computed at run time from Shape(x), as torch exports view() with a dynamic batch
shape_of = [N("Shape", ["input"], ["sh"]), N("Gather", ["sh", "i0"], ["b"], axis=0),
            N("Gather", ["sh", "i2"], ["h"], axis=0), N("Div", ["h", "two"], ["h2"]),
            N("Cast", ["h2"], ["h2c"], to=TensorProto.INT64),
            N("Unsqueeze", ["b", "ax0"], ["bu"]), N("Unsqueeze", ["h2c", "ax0"], ["hu"])]
shape_consts = [("i0", i64(0).reshape(())), ("i2", i64(2).reshape(())), ("two", i64(2).reshape(())),
                ("ax0", i64(0)), ("c3", i64(3)), ("c64", i64(64))]
model("reshape_computed_op13", 13, shape_of + [N("Concat", ["bu", "c3", "hu", "c64"], ["t"], axis=0),
                                              N("Reshape", ["input", "t"], ["y"])], shape_consts)
model("expand_computed_op13", 13, [N("ReduceMean", ["input"], ["m"], axes=[2, 3]),
                                   N("Shape", ["input"], ["sh"]), N("Expand", ["m", "sh"], ["y"])])
model("slice_computed_op13", 13, shape_of + [N("Slice", ["input", "ax0", "hu", "i2v"], ["y"])],
      shape_consts + [("i2v", i64(2))])
model("reshape_batchmath_op13", 13, shape_of + [N("Mul", ["bu", "c3"], ["b3"]),
                                                N("Concat", ["b3", "hu", "c64"], ["t"], axis=0),
                                                N("Reshape", ["input", "t"], ["y"])], shape_consts,
      expect='(Mul): input 0 (bu) depends on the batch size')
model("slice_batchend_op13", 13, shape_of + [N("Slice", ["input", "ax0", "bu", "i2v"], ["y"], name="s")],
      shape_consts + [("i2v", i64(2))], expect='"s" (Slice): input 2 (bu) depends on the batch size')

# ---- Split (static sizes: torch.chunk/split without a dynamic batch), rewritten into Slices
model("split_attr_op11", 11, [N("Split", ["input"], ["a", "b"], axis=1, split=[1, 2]),
                              N("Concat", ["b", "a"], ["y"], axis=1)])
model("split_input_op13", 13, [N("Split", ["input", "sz"], ["a", "b"], axis=1),
                               N("Concat", ["b", "a", "b"], ["y"], axis=1)], [("sz", i64(2, 1))])
model("split_equal_op13", 13, [N("Split", ["input"], ["a", "b"], axis=2), N("Sub", ["a", "b"], ["y"])])
model("split_num_outputs_op18", 18,
      [N("Split", ["input"], ["a", "b", "c"], axis=-1, num_outputs=3)] +
      [N("ReduceMean", [v, "ax3"], [v + "m"], keepdims=0) for v in "abc"] +
      [N("Add", ["am", "bm"], ["ab"]), N("Add", ["ab", "cm"], ["y"])], [("ax3", i64(3))])
model("split_batch_op13", 13, [N("Split", ["input"], ["a", "b"], axis=0, name="s"),
                               N("Add", ["a", "b"], ["y"])],
      expect='"s" (Split): the split of axis 0 into 2 parts')
model("split_sizes_op13", 13, [N("Split", ["input", "sz"], ["a", "b"], axis=1, name="s"),
                               N("Concat", ["a", "b"], ["y"], axis=1)], [("sz", i64(1, 1))],
      expect='"s" (Split): the split of axis 1 into 2 parts of the given sizes does not fit')

# ---- MatMul of two activations (x @ x^T per channel)
model("matmul_acts_op13", 13, [N("Transpose", ["input"], ["t"], perm=[0, 1, 3, 2]),
                               N("MatMul", ["input", "t"], ["y"])],
      c_refused="B must be a 2-D float initializer")
model("matmul_acts_bad_op13", 13, [N("ReduceMean", ["input"], ["s"], axes=[2]),
                                   N("MatMul", ["input", "s"], ["y"], name="mm")],
      expect='"mm" (MatMul): activations "input" and "s" must be (N,...,M,K) and (N,...,K,P)')

x = rng.standard_normal((4, 3, 32, 32)).astype("<f4")
x.tofile(os.path.join(OUT, "input.f32"))
with open(os.path.join(OUT, "cases.txt"), "w") as f:
    f.write("\n".join(cases) + "\n")
