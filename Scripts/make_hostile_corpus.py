#!/usr/bin/env python3
"""Writes a corpus of hostile and careless inputs for `weightcluster`, with a manifest of the command each
one is run with and what must happen.

    /usr/bin/python3 Scripts/make_hostile_corpus.py --small Tests/WeightClusterTests/Fixtures/hostile

Needs the `onnx` and `numpy` packages (Debian: python3-onnx). The output folder holds:
  cases.tsv   one case a line: name, expect, setup, arguments (tab-separated; arguments separated by '|')
  m/<case>/   each case's model in a folder of its own (its "model folder" for external data)
  data/       small .npy/IDX datasets, good and bad
The manifest is read by Tests/WeightClusterTests/HostileInputTests.swift and by Scripts/hostile.sh, which both
copy the folder to a scratch place, do the `setup` steps there and run the built binary:
  expect  error     exactly one stderr line, starting "error: ", a non-zero exit, no signal
          ok        exit 0, no signal (inputs that are odd but valid, e.g. Slice from INT64_MIN)
  setup   secret    write outside/secret.bin (the planted file no model may read)
          fifo:P    make a FIFO at P;  link:P=T  make a symlink P pointing to T;  dir:P  make a folder;
          file:P    write a small file at P
  {root} in arguments and setup is the scratch copy's path; the runner makes {root}/out/ (an empty folder) first.
"""
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

args = [a for a in sys.argv[1:] if not a.startswith("--")]
OUT = args[0] if args else "hostile-corpus"
# --small leaves out the 100,000-node graph (2 MB): the test fixtures use it; Scripts/hostile.sh does not.
SMALL = "--small" in sys.argv
INT64_MIN = -(2 ** 63)
cases = []


def model_bytes(nodes, inputs, outputs, initializers=(), opset=13, ir=8):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir
    return model.SerializeToString()


def write_model(name, data):
    folder = os.path.join(OUT, "m", name)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    with open(path, "wb") as f:
        f.write(data)
    return "{root}/m/%s/model.onnx" % name


def case(name, expect, args, setup=""):
    cases.append((name, expect, setup, "|".join(args)))


def vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def run_args(model, inp="{root}/data/x4.npy", out=None):
    return ["run", model, "--input", inp, "--output", out or "{root}/out/y.npy"]


def const(name, array):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name + "_v"))


def external_tensor(name, dims, location, offset=None, length=None, dtype=TensorProto.FLOAT):
    t = TensorProto()
    t.name = name
    t.data_type = dtype
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        if value is not None:
            entry = t.external_data.add()
            entry.key = key
            entry.value = str(value)
    return t


# ---------------------------------------------------------------- data
os.makedirs(os.path.join(OUT, "data"), exist_ok=True)
rng = np.random.default_rng(0)


def save_npy(name, array):
    np.save(os.path.join(OUT, "data", name), array)


save_npy("x4.npy", rng.standard_normal(4).astype(np.float32).reshape(1, 4))
save_npy("images.npy", rng.integers(0, 255, (4, 1, 8, 8)).astype(np.uint8))
save_npy("labels.npy", np.array([0, 1, 2, 3], dtype=np.int64))
save_npy("labels_negative.npy", np.array([0, -1, 2, 3], dtype=np.int64))
save_npy("images_empty.npy", np.zeros((0, 1, 8, 8), dtype=np.uint8))
save_npy("labels_empty.npy", np.zeros((0,), dtype=np.int64))
save_npy("images_nan.npy", np.full((4, 1, 8, 8), np.nan, dtype=np.float32))


def raw_npy(name, header, payload=b"", major=1):
    header = header + " " * ((64 - (len(header) + 11) % 64) % 64) + "\n"
    length = len(header).to_bytes(2 if major == 1 else 4, "little")
    with open(os.path.join(OUT, "data", name), "wb") as f:
        f.write(b"\x93NUMPY" + bytes([major, 0]) + length + header.encode() + payload)


raw_npy("npy_overflow.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }")
raw_npy("npy_negative_dim.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 4), }", b"\0" * 48)
raw_npy("npy_bad_shape.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4x), }", b"\0" * 16)
raw_npy("npy_huge_alloc.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }")
raw_npy("npy_header_70k.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4), " + " " * 70000 + "}",
        b"\0" * 16, major=2)
raw_npy("npy_trailing.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4), }", b"\0" * 20)
raw_npy("npy_short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4), }", b"\0" * 8)
raw_npy("npy_fortran.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 4), }", b"\0" * 16)
raw_npy("npy_dtype.npy", "{'descr': '<c16', 'fortran_order': False, 'shape': (1, 4), }", b"\0" * 256)
with open(os.path.join(OUT, "data", "random.npy"), "wb") as f:
    f.write(bytes(rng.integers(0, 256, 300, dtype=np.uint8)))


def idx_folder(name, images_header, labels=b"\0\0\x08\x01\0\0\0\x04\0\1\2\3"):
    folder = os.path.join(OUT, "data", name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "t10k-images-idx3-ubyte"), "wb") as f:
        f.write(images_header)
    with open(os.path.join(folder, "t10k-labels-idx1-ubyte"), "wb") as f:
        f.write(labels)
    return "{root}/data/" + name


idx_overflow = idx_folder("idx_overflow", b"\0\0\x08\x03" + b"\xff\xff\xff\xff" * 3)
idx_truncated = idx_folder("idx_truncated", b"\0\0\x08\x03" + (4).to_bytes(4, "big") + (8).to_bytes(4, "big") * 2 + b"\0" * 10)
idx_type = idx_folder("idx_type", b"\0\0\x0d\x03" + (4).to_bytes(4, "big") + (8).to_bytes(4, "big") * 2 + b"\0" * 1024)
idx_rank0 = idx_folder("idx_rank0", b"\0\0\x08\x00")
idx_good_negative = idx_folder("idx_count_mismatch", b"\0\0\x08\x03" + (3).to_bytes(4, "big") + (8).to_bytes(4, "big") * 2 + b"\0" * 192)

# ---------------------------------------------------------------- models
# A small valid classifier over [N,1,8,8] images: Conv 1->2 3x3, Relu, Flatten, Gemm to 10 classes.
W = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
G = rng.standard_normal((10, 72)).astype(np.float32)


def classifier(conv_weight=W, gemm_weight=G, conv_attrs=None, opset=13):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv1", **(conv_attrs or {})),
             helper.make_node("Relu", ["c"], ["r"], name="relu1"),
             helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "g"], ["y"], name="fc", transB=1)]
    return model_bytes(nodes, [vi("x", ["N", 1, 8, 8])], [vi("y", ["N", 10])],
                       [numpy_helper.from_array(conv_weight, "w"), numpy_helper.from_array(gemm_weight, "g")], opset=opset)


data_args = ["--data", "{root}/data/images.npy,{root}/data/labels.npy", "--pad", "0"]
good = write_model("good_classifier", classifier())
case("good_evaluate", "ok", ["evaluate", good] + data_args)
case("good_inspect", "ok", ["inspect", good])


def one_node(op, inputs, initializers=(), attrs=None, in_shape=(1, 4), out_elem=TensorProto.FLOAT, extra_nodes=(), opset=13,
             x_elem=TensorProto.FLOAT):
    nodes = list(extra_nodes) + [helper.make_node(op, inputs, ["y"], name="node_" + op.lower(), **(attrs or {}))]
    return model_bytes(nodes, [vi("x", list(in_shape), x_elem)], [vi("y", None, out_elem)], initializers, opset=opset)


# --- external data: confinement (every refusal the same line; nothing outside the folder is read)
def ext_case(name, location, setup="", offset=None, length=None, dims=(1, 4), via_constant=False, expect="error"):
    if via_constant:
        t = external_tensor("k_v", list(dims), location, offset, length)
        nodes = [helper.make_node("Constant", [], ["k"], value=t), helper.make_node("Add", ["x", "k"], ["y"], name="add")]
        data = model_bytes(nodes, [vi("x", [1, 4])], [vi("y", None)])
    else:
        data = model_bytes([helper.make_node("Add", ["x", "k"], ["y"], name="add")], [vi("x", [1, 4])], [vi("y", None)],
                           [external_tensor("k", list(dims), location, offset, length)])
    case(name, expect, run_args(write_model(name, data)), setup)


ext_case("ext_traversal", "../../outside/secret.bin", "secret")
ext_case("ext_traversal_deep", "../../../../../../../../etc/shadow")
ext_case("ext_traversal_inner", "sub/../../../outside/secret.bin", "secret;dir:m/ext_traversal_inner/sub")
ext_case("ext_absolute", "/etc/passwd")
ext_case("ext_absolute_proc", "/proc/self/environ")
ext_case("ext_symlink_outside", "link.bin", "secret;link:m/ext_symlink_outside/link.bin={root}/outside/secret.bin")
ext_case("ext_symlink_dir_outside", "sub/secret.bin", "secret;link:m/ext_symlink_dir_outside/sub={root}/outside")
ext_case("ext_constant_traversal", "../../outside/secret.bin", "secret", via_constant=True)
ext_case("ext_dev_zero", "/dev/zero")
ext_case("ext_symlink_dev_zero", "zero.bin", "link:m/ext_symlink_dev_zero/zero.bin=/dev/zero")
ext_case("ext_fifo", "pipe.bin", "fifo:m/ext_fifo/pipe.bin")
ext_case("ext_directory", "sub", "dir:m/ext_directory/sub")
ext_case("ext_missing", "absent.bin")
ext_case("ext_empty_location", "")
ext_case("ext_negative_offset", "w.bin", "file:m/ext_negative_offset/w.bin", offset=-4)
ext_case("ext_text_offset", "w.bin", "file:m/ext_text_offset/w.bin", offset="abc")
ext_case("ext_huge_offset", "w.bin", "file:m/ext_huge_offset/w.bin", offset=2 ** 63 - 1)
ext_case("ext_length_too_long", "w.bin", "file:m/ext_length_too_long/w.bin", length=32)
ext_case("ext_past_end", "w.bin", "file:m/ext_past_end/w.bin", offset=60)
ext_case("ext_huge_dims", "w.bin", "file:m/ext_huge_dims/w.bin", dims=(1 << 40, 1 << 40))
ext_case("ext_inside_ok", "w.bin", "file:m/ext_inside_ok/w.bin", expect="ok")
ext_case("ext_symlink_inside_ok", "alias.bin", "file:m/ext_symlink_inside_ok/w.bin;link:m/ext_symlink_inside_ok/alias.bin=w.bin",
         expect="ok")


# --- initializers and raw data
def init_case(name, tensor, expect="error"):
    data = model_bytes([helper.make_node("Add", ["x", "k"], ["y"], name="add")], [vi("x", [1, 4])], [vi("y", None)], [tensor])
    case(name, expect, run_args(write_model(name, data)))


t = TensorProto(name="k", data_type=TensorProto.FLOAT, dims=[1 << 40, 1 << 40])
init_case("init_dims_overflow", t)
t = TensorProto(name="k", data_type=TensorProto.FLOAT, dims=[1 << 31, 1 << 31, 1 << 31])
init_case("init_dims_wrap_to_zero", t)
t = TensorProto(name="k", data_type=TensorProto.FLOAT, dims=[-4])
init_case("init_negative_dim", t)
t = TensorProto(name="k", data_type=TensorProto.FLOAT, dims=[1, 4], raw_data=b"\0" * 24)
init_case("raw_data_too_long", t)
t = TensorProto(name="k", data_type=TensorProto.FLOAT, dims=[1, 4], raw_data=b"\0" * 8)
init_case("raw_data_too_short", t)
t = TensorProto(name="k", data_type=TensorProto.STRING, dims=[1], string_data=[b"x"])
init_case("init_string_type", t)
t = TensorProto(name="k", data_type=TensorProto.COMPLEX64, dims=[1, 4], raw_data=b"\0" * 32)
init_case("init_complex_type", t)


# --- operators: overflow, NaN to integer, negative counts, bad attributes
def op_case(name, op, inputs, initializers=(), attrs=None, extra_nodes=(), in_shape=(1, 4), expect="error", opset=13,
            x_elem=TensorProto.FLOAT, input_file="{root}/data/x4.npy"):
    data = one_node(op, inputs, initializers, attrs, in_shape, extra_nodes=extra_nodes, opset=opset, x_elem=x_elem)
    case(name, expect, run_args(write_model(name, data), inp=input_file))


def i64(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def f32(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.float32), name)


op_case("reshape_overflow", "Reshape", ["x", "s"], [i64("s", [1 << 62, 4])])
op_case("reshape_product_overflow", "Reshape", ["x", "s"], [i64("s", [-1, 1 << 40, 1 << 40])])
op_case("reshape_two_unknowns", "Reshape", ["x", "s"], [i64("s", [-1, -1])])
op_case("reshape_negative", "Reshape", ["x", "s"], [i64("s", [-5, 2])])
op_case("reshape_int64_min", "Reshape", ["x", "s"], [i64("s", [INT64_MIN, 4])])
op_case("reshape_nan_shape", "Reshape", ["x", "s"], extra_nodes=[
    const("sf", np.array([np.nan, 4], dtype=np.float32)), helper.make_node("Cast", ["sf"], ["s"], to=TensorProto.INT64)])
op_case("cast_1e30_to_int", "Cast", ["k"], [f32("k", [1e30])], attrs={"to": TensorProto.INT64})
op_case("cast_inf_to_int", "Cast", ["k"], [f32("k", [np.inf])], attrs={"to": TensorProto.INT64})
op_case("cast_to_string", "Cast", ["x"], attrs={"to": TensorProto.STRING})
op_case("gather_nan_index", "Gather", ["x", "i"], [f32("i", [np.nan])], attrs={"axis": 1})
op_case("gather_out_of_range", "Gather", ["x", "i"], [i64("i", [1 << 40])], attrs={"axis": 1})
op_case("gather_int64_min", "Gather", ["x", "i"], [i64("i", [INT64_MIN])], attrs={"axis": 1})
op_case("pad_overflow", "Pad", ["x", "p"], [i64("p", [0, 1 << 62, 0, 1 << 62])])
op_case("pad_huge_alloc", "Pad", ["x", "p"], [i64("p", [1 << 20, 1 << 20, 0, 0])])
op_case("pad_int64_min", "Pad", ["x", "p"], [i64("p", [0, INT64_MIN, 0, 0])])
op_case("pad_wrong_count", "Pad", ["x", "p"], [i64("p", [1, 1, 1])])
op_case("pad_axes_mismatch", "Pad", ["x", "p", "", "a"], [i64("p", [1]), i64("a", [0, 1])], opset=18)
op_case("pad_bad_mode", "Pad", ["x", "p"], [i64("p", [0, 0, 0, 0])], attrs={"mode": "wrap-around"})
op_case("constantofshape_huge", "ConstantOfShape", ["s"], [i64("s", [1 << 40, 1 << 40])])
op_case("constantofshape_alloc", "ConstantOfShape", ["s"], [i64("s", [65536, 65536])])
op_case("constantofshape_negative", "ConstantOfShape", ["s"], [i64("s", [-1])])
op_case("constantofshape_2d_shape", "ConstantOfShape", ["s"], [i64("s", [[2, 2]])])
op_case("neg_int64_min", "Neg", ["k"], [i64("k", [INT64_MIN])], expect="ok")
op_case("div_int64_min_by_minus1", "Div", ["k", "m"], [i64("k", [INT64_MIN]), i64("m", [-1])], expect="ok")
op_case("div_int_by_zero", "Div", ["k", "m"], [i64("k", [7]), i64("m", [0])], expect="ok")
op_case("slice_int64_min", "Slice", ["x", "s", "e", "a", "t"],
        [i64("s", [-1]), i64("e", [INT64_MIN]), i64("a", [1]), i64("t", [-1])], expect="ok")
op_case("slice_step_int64_min", "Slice", ["x", "s", "e", "a", "t"],
        [i64("s", [3]), i64("e", [INT64_MIN]), i64("a", [1]), i64("t", [INT64_MIN])], expect="ok")
op_case("slice_step_zero", "Slice", ["x", "s", "e", "a", "t"], [i64("s", [0]), i64("e", [4]), i64("a", [1]), i64("t", [0])])
op_case("slice_nan_start", "Slice", ["x", "s", "e"], [f32("s", [np.nan]), i64("e", [4])])
op_case("unsqueeze_duplicate_axes", "Unsqueeze", ["x", "a"], [i64("a", [0, 0])])
op_case("squeeze_non_one", "Squeeze", ["x", "a"], [i64("a", [1])])
op_case("transpose_bad_perm", "Transpose", ["x"], attrs={"perm": [0, 0]})
op_case("concat_axis_out_of_range", "Concat", ["x", "x"], attrs={"axis": 1 << 40})
op_case("concat_no_axis", "Concat", ["x", "x"])
op_case("broadcast_huge", "Add", ["a", "b"], [f32("a", np.zeros((32768, 1))), f32("b", np.zeros((1, 32768)))])
op_case("matmul_mismatch", "MatMul", ["x", "m"], [f32("m", np.zeros((5, 3)))])
op_case("gemm_mismatch", "Gemm", ["x", "m"], [f32("m", np.zeros((5, 3)))])
op_case("softmax_bad_axis", "Softmax", ["x"], attrs={"axis": 1 << 40})
op_case("reducemean_bad_axis", "ReduceMean", ["x"], attrs={"axes": [7]})
op_case("flatten_bad_axis", "Flatten", ["x"], attrs={"axis": -(1 << 40)})

img = dict(in_shape=(1, 1, 4, 4), input_file="{root}/data/img4.npy")
save_npy("img4.npy", rng.standard_normal((1, 1, 4, 4)).astype(np.float32))
op_case("maxpool_kernel_zero", "MaxPool", ["x"], attrs={"kernel_shape": [0, 0]}, **img)
op_case("maxpool_kernel_negative", "MaxPool", ["x"], attrs={"kernel_shape": [-3, -3]}, **img)
op_case("maxpool_no_kernel", "MaxPool", ["x"], **img)
op_case("avgpool_kernel_zero", "AveragePool", ["x"], attrs={"kernel_shape": [0, 2]}, **img)
op_case("pool_stride_zero", "MaxPool", ["x"], attrs={"kernel_shape": [2, 2], "strides": [0, 0]}, **img)
op_case("pool_pads_huge", "MaxPool", ["x"], attrs={"kernel_shape": [2, 2], "pads": [1 << 62] * 4}, **img)
op_case("lrn_size_negative", "LRN", ["x"], attrs={"size": -5}, **img)
op_case("lrn_size_zero", "LRN", ["x"], attrs={"size": 0}, **img)
w1 = f32("w", np.ones((1, 1, 3, 3)))
op_case("conv_pads_huge", "Conv", ["x", "w"], [w1], attrs={"pads": [1 << 62] * 4}, **img)
op_case("conv_pads_negative", "Conv", ["x", "w"], [w1], attrs={"pads": [-1] * 4}, **img)
op_case("conv_dilations_huge", "Conv", ["x", "w"], [w1], attrs={"dilations": [1 << 62, 1 << 62]}, **img)
op_case("conv_strides_int64_min", "Conv", ["x", "w"], [w1], attrs={"strides": [INT64_MIN, 1]}, **img)
op_case("conv_group_zero", "Conv", ["x", "w"], [w1], attrs={"group": 0}, **img)
op_case("conv_channel_mismatch", "Conv", ["x", "w"], [f32("w", np.ones((2, 3, 3, 3)))], **img)
op_case("conv_zero_size_weight", "Conv", ["x", "w"], [f32("w", np.ones((0, 1, 3, 3)))], **img)
op_case("conv_kernel_bigger_than_input", "Conv", ["x", "w"], [f32("w", np.ones((1, 1, 9, 9)))], **img)
op_case("conv_im2col_huge", "Conv", ["x", "w"], [f32("w", np.ones((1, 1, 1, 1)))],
        attrs={"pads": [60000, 60000, 60000, 60000]}, **img)
op_case("conv_auto_pad_garbage", "Conv", ["x", "w"], [w1], attrs={"auto_pad": "SOMETIMES"}, **img)
op_case("conv_1d_weight", "Conv", ["x", "w"], [f32("w", np.ones((3,)))], **img)
op_case("batchnorm_wrong_channels", "BatchNormalization", ["x", "s", "b", "m", "v"],
        [f32(n, np.ones(3)) for n in "sbmv"], **img)

# --- graphs
nodes = [helper.make_node("Relu", ["b"], ["a"], name="first"), helper.make_node("Relu", ["a"], ["b"], name="second"),
         helper.make_node("Relu", ["x"], ["y"], name="third")]
case("graph_cycle", "error", run_args(write_model("graph_cycle", model_bytes(nodes, [vi("x", [1, 4])], [vi("y", None)]))))
nodes = [helper.make_node("Relu", ["x"], ["y"], name="one"), helper.make_node("Relu", ["x"], ["y"], name="two")]
case("graph_duplicate_output", "error", run_args(write_model("graph_duplicate_output", model_bytes(nodes, [vi("x", [1, 4])], [vi("y", None)]))))
nodes = [helper.make_node("Add", ["x", "nowhere"], ["y"], name="add")]
case("graph_missing_value", "error", run_args(write_model("graph_missing_value", model_bytes(nodes, [vi("x", [1, 4])], [vi("y", None)]))))
case("graph_unsupported_op_run", "error", run_args(write_model("graph_unsupported_op",
     one_node("Einsum", ["x"], attrs={"equation": "ij->ji"}))))
case("graph_unsupported_op_inspect", "ok", ["inspect", "{root}/m/graph_unsupported_op/model.onnx"])
case("opset_99", "error", run_args(write_model("opset_99", one_node("Relu", ["x"], opset=99))))
case("opset_99_inspect", "error", ["inspect", "{root}/m/opset_99/model.onnx"])
case("opset_0", "error", run_args(write_model("opset_0", one_node("Relu", ["x"], opset=0))))
# A reversed chain of 100,000 nodes (the file lists the last node first).
n = 1_000 if SMALL else 100_000
chain = [helper.make_node("Relu" if i % 2 else "Neg", ["x" if i == 0 else "v%d" % (i - 1)], ["y" if i == n - 1 else "v%d" % i])
         for i in range(n)]
case("graph_%dk_reversed" % (n // 1000), "ok", run_args(write_model("graph_%dk_reversed" % (n // 1000),
     model_bytes(list(reversed(chain)), [vi("x", [1, 4])], [vi("y", None)]))))
# Protobuf nesting: attribute graphs inside attribute graphs, deeper than the decoder's limit.
inner = helper.make_graph([], "g0", [], [])
for depth in range(300):
    inner = helper.make_graph([helper.make_node("Loop", [], [], body=inner)], "g%d" % depth, [], [])
deep = helper.make_model(inner, opset_imports=[helper.make_opsetid("", 13)])
case("protobuf_nesting", "error", run_args(write_model("protobuf_nesting", deep.SerializeToString())))
case("truncated_model", "error", run_args(write_model("truncated_model", classifier()[:300])))
case("random_model", "error", run_args(write_model("random_model", bytes(rng.integers(0, 256, 2000, dtype=np.uint8)))))
case("empty_model", "error", run_args(write_model("empty_model", b"")))
case("model_is_fifo", "error", run_args("{root}/m/model_fifo.onnx"), "fifo:m/model_fifo.onnx")
case("model_is_directory", "error", run_args("{root}/m/good_classifier"))
case("model_is_dev_zero", "error", ["inspect", "/dev/zero"])

# --- numbers that lied
nan_g = G.copy()
nan_g[3, 5] = np.nan
case("nan_weights", "error", ["evaluate", write_model("nan_weights", classifier(gemm_weight=nan_g))] + data_args)
inf_w = W.copy()
inf_w[1, 0, 1, 1] = np.inf
case("inf_weights", "error", ["evaluate", write_model("inf_weights", classifier(conv_weight=inf_w))] + data_args)
case("std_denormal", "error", ["evaluate", good, "--data", "{root}/data/images.npy,{root}/data/labels.npy", "--pad", "0",
                               "--std", "1e-45"])
case("nan_images", "error", ["evaluate", good, "--data", "{root}/data/images_nan.npy,{root}/data/labels.npy", "--pad", "0"])
case("zero_images", "error", ["evaluate", good, "--data", "{root}/data/images_empty.npy,{root}/data/labels_empty.npy", "--pad", "0"])
case("negative_labels", "error", ["evaluate", good, "--data", "{root}/data/images.npy,{root}/data/labels_negative.npy", "--pad", "0"])
case("pad_flag_huge", "error", ["evaluate", good] + data_args[:2] + ["--pad", "9223372036854775807"])
case("compress_channel_mismatch", "error", ["compress", write_model("compress_channel_mismatch",
     classifier(conv_weight=np.ones((2, 3, 3, 3), np.float32))), "-o", "{root}/out/c.onnx", "--kernel-reduction", "0.5"])
case("compress_zero_size_conv", "error", ["compress", write_model("compress_zero_size_conv",
     classifier(conv_weight=np.ones((0, 1, 3, 3), np.float32))), "-o", "{root}/out/c.onnx", "--kernel-reduction", "0.5"])
case("compress_unsupported_op_warns", "ok", ["compress", write_model("compress_unsupported", model_bytes(
    [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), helper.make_node("Einsum", ["c"], ["y"], equation="ij->ji")],
    [vi("x", ["N", 1, 8, 8])], [vi("y", None)], [numpy_helper.from_array(W, "w")])),
    "-o", "{root}/out/c.onnx", "--kernel-clusters", "1"])

# --- arrays and datasets
for name in ["npy_overflow", "npy_negative_dim", "npy_bad_shape", "npy_huge_alloc", "npy_header_70k", "npy_trailing",
             "npy_short", "npy_fortran", "npy_dtype", "random"]:
    case("input_" + name, "error", run_args(good, inp="{root}/data/%s.npy" % name))
case("input_fifo", "error", run_args(good, inp="{root}/data/pipe.npy"), "fifo:data/pipe.npy")
case("input_directory", "error", run_args(good, inp="{root}/data"))
for name, folder in [("idx_overflow", idx_overflow), ("idx_truncated", idx_truncated), ("idx_type", idx_type),
                     ("idx_rank0", idx_rank0), ("idx_count_mismatch", idx_good_negative)]:
    case(name, "error", ["evaluate", good, "--data", folder, "--pad", "0"])
case("idx_not_a_folder", "error", ["evaluate", good, "--data", "{root}/data/x4.npy"])

# --- outputs
case("output_is_directory", "error", run_args(good, inp="{root}/data/img_cls.npy", out="{root}/out"))
save_npy("img_cls.npy", rng.standard_normal((1, 1, 8, 8)).astype(np.float32))
case("output_is_input", "error", run_args(good, inp="{root}/data/img_cls.npy", out="{root}/data/img_cls.npy"))
case("output_symlink_replaced", "ok", run_args(good, inp="{root}/data/img_cls.npy", out="{root}/out/link.npy"),
     "secret;link:out/link.npy={root}/outside/secret.bin")
case("output_missing_folder", "error", run_args(good, inp="{root}/data/img_cls.npy", out="{root}/nowhere/y.npy"))
case("sweep_out_is_a_file", "error", ["sweep", good, "--data", "{root}/data/images.npy,{root}/data/labels.npy", "--pad", "0",
                                      "--kernel-reduction", "0.5", "--kernel-modes", "plain", "--out", "{root}/data/x4.npy"])

with open(os.path.join(OUT, "cases.tsv"), "w") as f:
    f.write("# name\texpect\tsetup\targuments ('|'-separated; {root} = the corpus copy)\n")
    for c in cases:
        f.write("\t".join(c) + "\n")
print("wrote %d cases to %s" % (len(cases), OUT))
