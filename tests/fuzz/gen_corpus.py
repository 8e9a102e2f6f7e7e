#!/usr/bin/python3
"""Seed corpus for the libFuzzer targets (tests/fuzz/corpus/<target>/), committed so CI needs no
python. Run with Debian's python (onnx 1.12, numpy):   /usr/bin/python3 tests/fuzz/gen_corpus.py

Small valid inputs that reach every supported op / attribute / storage form, plus edge cases
(empty, truncated, one bad field) so the fuzzer starts next to the interesting boundaries. Crash
reproducers found later are added by hand as corpus/<target>/regress-*; this script never
deletes them.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261127)


def out(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def w(name, *shape, raw=True):
    a = (rng.standard_normal(shape) * 0.3).astype(np.float32)
    if raw:
        return numpy_helper.from_array(a, name)
    return helper.make_tensor(name, TensorProto.FLOAT, shape, a.flatten().tolist())


def model(nodes, inits, in_shape, out_shape, opset=13):
    g = helper.make_graph(
        nodes, "seed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"] + list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"] + list(out_shape))],
        inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


# conv -> relu -> maxpool -> flatten -> gemm (the reference net's shape, shrunk)
cnn = model([
    helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3]),
    helper.make_node("Relu", ["c"], ["r"], name="relu"),
    helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node("Flatten", ["p"], ["f"], name="flat", axis=1),
    helper.make_node("Gemm", ["f", "fcw", "fcb"], ["y"], name="fc", transB=1),
], [w("w", 2, 1, 3, 3), w("b", 2), w("fcw", 3, 8), w("fcb", 3)], [1, 6, 6], [3])
onnx.checker.check_model(cnn)
cnn_bytes = cnn.SerializeToString()
out("onnx", "cnn.onnx", cnn_bytes)
out("onnx", "cnn-truncated.onnx", cnn_bytes[: len(cnn_bytes) // 2])

# Reshape to (N, -1) with an int64 initializer; Identity
rs = model([
    helper.make_node("Conv", ["x", "w"], ["c"], name="conv", strides=[2, 2], pads=[1, 1, 1, 1]),
    helper.make_node("Identity", ["c"], ["i"], name="id"),
    helper.make_node("Reshape", ["i", "shape"], ["f"], name="reshape"),
    helper.make_node("Gemm", ["f", "fcw"], ["y"], name="fc", alpha=0.5, transB=0),
], [w("w", 2, 2, 3, 3), numpy_helper.from_array(np.array([-1, 18], np.int64), "shape"),
    w("fcw", 18, 4, raw=False)], [2, 5, 5], [4])
onnx.checker.check_model(rs)
out("onnx", "reshape.onnx", rs.SerializeToString())

# grouped / dilated / padded conv, padded ceil-mode maxpool, MatMul + Add
mix = model([
    helper.make_node("Conv", ["x", "w", "b"], ["c"], name="gconv", group=2, dilations=[2, 2],
                     pads=[2, 1, 2, 1], strides=[1, 2]),
    helper.make_node("MaxPool", ["c"], ["p"], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                     pads=[1, 1, 1, 1], ceil_mode=1),
    helper.make_node("Flatten", ["p"], ["f"], name="flat"),
    helper.make_node("MatMul", ["f", "mw"], ["mm"], name="mm"),
    helper.make_node("Add", ["mm", "mb"], ["y"], name="add"),
], [w("w", 4, 1, 3, 3), w("b", 4), w("mw", 24, 2), w("mb", 2)], [2, 7, 7], [2], opset=11)
onnx.checker.check_model(mix)
out("onnx", "convmix.onnx", mix.SerializeToString())

# edge cases: empty, a cycle, a dangling input, a huge declared dim, an unsupported op
out("onnx", "empty.onnx", b"")
cyc = onnx.ModelProto()
cyc.CopyFrom(cnn)
cyc.graph.node[0].input[0] = "r"
out("onnx", "cycle.onnx", cyc.SerializeToString())
dang = onnx.ModelProto()
dang.CopyFrom(cnn)
dang.graph.node[3].input[0] = "nowhere"
out("onnx", "dangling.onnx", dang.SerializeToString())
huge = onnx.ModelProto()
huge.CopyFrom(cnn)
del huge.graph.initializer[2].dims[:]
huge.graph.initializer[2].dims.extend([1000000, 1000000])
out("onnx", "huge-dims.onnx", huge.SerializeToString())
neg = onnx.ModelProto()
neg.CopyFrom(cnn)
neg.graph.input[0].type.tensor_type.shape.dim[2].dim_value = -6
out("onnx", "negative-input-dim.onnx", neg.SerializeToString())
sm = onnx.ModelProto()
sm.CopyFrom(cnn)
sm.graph.node[1].op_type = "Softmax"
out("onnx", "unsupported-op.onnx", sm.SerializeToString())

# ---- CIFAR-10 records: label byte + 3072 pixel bytes -------------------------------------------
def record(label):
    return bytes([label]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes()


out("cifar10", "one.bin", record(3))
out("cifar10", "two.bin", record(0) + record(9))
out("cifar10", "label10.bin", record(10))
out("cifar10", "short.bin", record(1)[:3072])
out("cifar10", "empty.bin", b"")

# ---- plans: the text form and the --ranks spec form ----------------------------------------------
plans = {
    "text-all.plan": b"# a full plan\nconv1 spatial-svd 3\nconv2 tucker2 12,4  # R_out,R_in\n"
                     b"fc1 svd 32\nfc2 svd 20\nfc3 none\n",
    "text-cp.plan": b"conv2 cp 8\nconv1 slice-svd 2\n",
    "text-bad.plan": b"conv2 tucker2 12,x\nfc9 svd 3\nfc1 svd 999999999999\n",
    "text-crlf.plan": b"fc1 svd 16\r\n\r\n  # indented comment\r\nfc2 svd 8 # trailing\r\n",
    "spec-all.txt": b"conv2=cp:16,fc1=svd:32,conv1=tucker2:6:3",
    "spec-none.txt": b"fc3=none,fc2=svd:84",
    "spec-bad.txt": b"conv2=cp:,=svd:3,fc1=svd:-1,,",
}
for name, data in plans.items():
    out("plan", name, data)
# ---- staged-compression recipes (recipe.h) ---------------------------------------------------------
recipes = {
    "two-stages.recipe": b"rankscope-recipe 1\ntrain-images 500\nval-images 500\nfit weights\nstage\n"
                         b"  epochs 1\n  lr 0.005\n  seed 1\n  distill 0.5 4\n  plan fc1 svd 56\n"
                         b"  plan fc2 svd 40\nstage\n  epochs 2\n  lr 0.0050000000000000001\n"
                         b"  distill off\n  plan conv2 tucker2 12,4\nint8 1\n",
    "fit-outputs-crlf.recipe": b"rankscope-recipe 1\r\nfit outputs 200\r\nstage # first\r\nepochs 3\r\n"
                               b"lr 1e-3\r\nplan conv1 spatial-svd 4\r\n",
    "bad-values.recipe": b"rankscope-recipe 1\nstage\nepochs x\nlr -1\nplan fc1 svd 0\n",
    "bad-twice.recipe": b"rankscope-recipe 1\nstage\nepochs 1\nlr 0.1\nplan fc1 svd 3\nstage\nepochs 1\n"
                        b"lr 0.1\nplan fc1 svd 2\n",
    "bad-version.recipe": b"rankscope-recipe 2\n",
    "empty.recipe": b"",
}
for name, data in recipes.items():
    out("recipe", name, data)
print("corpus written to", os.path.join(HERE, "corpus"))
