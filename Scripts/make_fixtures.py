#!/usr/bin/env python3
"""Writes the committed test fixtures under Tests/WeightClusterTests/Fixtures.

ops/NAME.onnx + NAME.input.npy + NAME.output.npy: one small graph per operator case, built with onnx.helper,
  the expected output computed by onnxruntime's CPU provider.
models/NAME.onnx + NAME.input.npy + NAME.output.npy: small PyTorch CNNs (VGG, AlexNet, ResNet and
  MobileNetV2 style, eval mode) exported with torch.onnx.export at opsets 11, 13 and 17; expected
  output from PyTorch itself.

Run with a Python that has torch (Debian python3-torch), onnx and onnxruntime:
    python3 Scripts/make_fixtures.py
The sections without PyTorch run alone without it: `make_fixtures.py real-model-ops`, `make_fixtures.py quantize-ops`.
"""
import functools
import os
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

try:
    import torch
    import torch.nn as nn
except ImportError:  # the sections without PyTorch models (real-model-ops, quantize-ops) run without it
    import types
    torch, nn = None, types.SimpleNamespace(Module=object)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "WeightClusterTests", "Fixtures")
rng = np.random.RandomState(1234)


def save_npy(path, array):
    np.save(path, np.ascontiguousarray(array))


def op_case(name, op, x, attrs=None, consts=(), opset=13, extra_nodes=(), out_rank=None):
    """One node `op` reading input `x` (float32) and constants `consts` (name -> array, or None to omit)."""
    inputs, inits = ["x"], []
    for i, c in enumerate(consts):
        if c is None:
            inputs.append("")
            continue
        cname = f"c{i}"
        inputs.append(cname)
        inits.append(numpy_helper.from_array(np.asarray(c), cname))
    nodes = [helper.make_node(op, inputs, ["y"], name=f"{name}_node", **(attrs or {}))] + list(extra_nodes)
    out_name = extra_nodes[-1].output[0] if extra_nodes else "y"
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": x})[0].astype(np.float32)
    d = os.path.join(ROOT, "ops")
    onnx.save(model, os.path.join(d, f"{name}.onnx"))
    save_npy(os.path.join(d, f"{name}.input.npy"), x)
    save_npy(os.path.join(d, f"{name}.output.npy"), y)


def f32(*shape):
    return rng.randn(*shape).astype(np.float32)


def make_ops():
    os.makedirs(os.path.join(ROOT, "ops"), exist_ok=True)
    x4 = f32(2, 4, 7, 7)
    op_case("conv_basic", "Conv", x4, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, [f32(6, 4, 3, 3), f32(6)])
    op_case("conv_strided_dilated", "Conv", x4, {"kernel_shape": [3, 3], "strides": [2, 1], "dilations": [2, 1], "pads": [2, 0, 1, 1]}, [f32(5, 4, 3, 3)])
    op_case("conv_grouped", "Conv", x4, {"kernel_shape": [3, 3], "group": 2, "pads": [1, 1, 1, 1]}, [f32(6, 2, 3, 3), f32(6)])
    op_case("conv_depthwise", "Conv", x4, {"kernel_shape": [3, 3], "group": 4, "strides": [2, 2], "pads": [1, 1, 1, 1]}, [f32(4, 1, 3, 3), f32(4)])
    op_case("conv_pointwise", "Conv", x4, {"kernel_shape": [1, 1]}, [f32(8, 4, 1, 1), f32(8)])
    op_case("conv_same_upper", "Conv", x4, {"kernel_shape": [2, 2], "auto_pad": "SAME_UPPER", "strides": [2, 2]}, [f32(3, 4, 2, 2)])
    op_case("gemm_transb", "Gemm", f32(3, 5), {"transB": 1, "alpha": 0.5, "beta": 2.0}, [f32(4, 5), f32(4)])
    op_case("gemm_transa", "Gemm", f32(5, 3), {"transA": 1}, [f32(5, 4), f32(3, 4)])
    op_case("matmul_2d", "MatMul", f32(3, 5), {}, [f32(5, 4)])
    op_case("matmul_batched", "MatMul", f32(2, 3, 5), {}, [f32(5, 4)])
    op_case("matmul_broadcast", "MatMul", f32(2, 1, 3, 5), {}, [f32(3, 5, 2)])
    op_case("add_bias", "Add", x4, {}, [f32(1, 4, 1, 1)])
    op_case("add_rowvec", "Add", f32(3, 5), {}, [f32(5)])
    op_case("sub_broadcast", "Sub", f32(2, 1, 5), {}, [f32(3, 1)])
    op_case("mul_scalar", "Mul", x4, {}, [np.array(1.5, dtype=np.float32)])
    op_case("div_channels", "Div", x4, {}, [np.abs(f32(4, 1, 1)) + 0.5])
    op_case("relu", "Relu", x4)
    op_case("leaky_relu", "LeakyRelu", x4, {"alpha": 0.2})
    op_case("clip_inputs", "Clip", x4, {}, [np.array(-0.5, np.float32), np.array(0.7, np.float32)])
    op_case("clip_min_only", "Clip", x4, {}, [np.array(0.0, np.float32)])
    op_case("clip_opset6", "Clip", x4, {"min": 0.0, "max": 6.0}, opset=6)
    op_case("sigmoid", "Sigmoid", x4)
    op_case("tanh", "Tanh", x4)
    op_case("maxpool", "MaxPool", x4, {"kernel_shape": [2, 2], "strides": [2, 2]})
    op_case("maxpool_pad_ceil", "MaxPool", x4, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1})
    op_case("avgpool", "AveragePool", x4, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]})
    op_case("avgpool_include_pad", "AveragePool", x4, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1})
    op_case("global_avgpool", "GlobalAveragePool", x4)
    op_case("flatten", "Flatten", x4, {"axis": 1})
    op_case("flatten_axis2", "Flatten", x4, {"axis": 2})
    op_case("reshape", "Reshape", x4, {}, [np.array([0, -1, 7], np.int64)])
    op_case("transpose", "Transpose", x4, {"perm": [0, 2, 3, 1]})
    op_case("concat", "Concat", x4, {"axis": 1}, [f32(2, 3, 7, 7)])
    op_case("batchnorm", "BatchNormalization", x4, {"epsilon": 1e-3},
            [f32(4), f32(4), f32(4), np.abs(f32(4)) + 0.1])
    op_case("dropout", "Dropout", x4)
    op_case("identity", "Identity", x4)
    op_case("softmax", "Softmax", f32(3, 10), {"axis": 1})
    op_case("softmax_axis_opset11", "Softmax", f32(2, 3, 4), {"axis": 1}, opset=11)
    op_case("log_softmax", "LogSoftmax", f32(3, 10), {"axis": -1})
    op_case("lrn", "LRN", x4, {"size": 3, "alpha": 1e-2, "beta": 0.75, "bias": 2.0})
    op_case("pad_constant", "Pad", x4, {"mode": "constant"}, [np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), np.array(0.5, np.float32)])
    op_case("pad_reflect", "Pad", x4, {"mode": "reflect"}, [np.array([0, 0, 2, 1, 0, 0, 1, 2], np.int64)])
    op_case("pad_edge", "Pad", x4, {"mode": "edge"}, [np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)])
    op_case("gather_axis1", "Gather", x4, {"axis": 1}, [np.array([3, 0, -1], np.int64)])
    op_case("unsqueeze", "Unsqueeze", f32(3, 5), {}, [np.array([0, 3], np.int64)])
    op_case("unsqueeze_opset11", "Unsqueeze", f32(3, 5), {"axes": [1]}, opset=11)
    op_case("squeeze", "Squeeze", f32(3, 1, 5, 1), {}, [np.array([1], np.int64)])
    op_case("squeeze_all", "Squeeze", f32(3, 1, 5, 1))
    op_case("slice", "Slice", x4, {}, [np.array([1, 6], np.int64), np.array([3, 0], np.int64), np.array([1, 3], np.int64), np.array([1, -2], np.int64)])
    # Shape chain: y = Reshape(x, Concat(Gather(Shape(x), 0), [-1])), what x.view(x.size(0), -1) exports.
    chain = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.int64))),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    graph = helper.make_graph(chain, "shape_chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 7, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.array([0], np.int64), "axes0"),
                               numpy_helper.from_array(np.array([-1], np.int64), "minus1")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x4})[0]
    onnx.save(model, os.path.join(ROOT, "ops", "shape_chain.onnx"))
    save_npy(os.path.join(ROOT, "ops", "shape_chain.input.npy"), x4)
    save_npy(os.path.join(ROOT, "ops", "shape_chain.output.npy"), y)
    # Constant node folded at load time, then Mul.
    const = helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(f32(1, 4, 1, 1)))
    mul = helper.make_node("Mul", ["x", "k"], ["y"])
    graph = helper.make_graph([const, mul], "constant_mul", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x4.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x4})[0]
    onnx.save(model, os.path.join(ROOT, "ops", "constant_mul.onnx"))
    save_npy(os.path.join(ROOT, "ops", "constant_mul.input.npy"), x4)
    save_npy(os.path.join(ROOT, "ops", "constant_mul.output.npy"), y)


def cast_to_float(name):
    """An extra node turning a boolean output `y` into float32 `yf` (fixtures store float outputs)."""
    return (helper.make_node("Cast", ["y"], ["yf"], name=f"{name}_cast", to=TensorProto.FLOAT),)


def make_real_model_ops():
    """The operators the real models of Scripts/fetch-real-models.sh need (and their close relatives), with their own
    seed so that the older cases above keep their bytes. Run alone with `make_fixtures.py real-model-ops`."""
    global rng
    rng = np.random.RandomState(2026)
    x4 = f32(2, 4, 5, 6)
    # ConvTranspose: weight [C_in, C_out/group, kH, kW].
    op_case("convtranspose_basic", "ConvTranspose", x4, {}, [f32(4, 3, 3, 3), f32(3)])
    op_case("convtranspose_stride2", "ConvTranspose", x4, {"kernel_shape": [2, 2], "strides": [2, 2]}, [f32(4, 5, 2, 2)], opset=12)
    op_case("convtranspose_pads_output_padding", "ConvTranspose", x4,
            {"strides": [2, 3], "pads": [1, 0, 2, 1], "output_padding": [1, 2], "dilations": [1, 2]}, [f32(4, 2, 3, 3), f32(2)])
    op_case("convtranspose_grouped", "ConvTranspose", x4, {"group": 2, "strides": [2, 2], "pads": [1, 1, 1, 1]}, [f32(4, 3, 4, 4), f32(6)])
    op_case("convtranspose_output_shape", "ConvTranspose", x4, {"strides": [2, 2], "output_shape": [10, 13]}, [f32(4, 2, 3, 3)])
    # Resize (X, roi, scales, sizes).
    x = f32(1, 2, 4, 5)
    no_roi = np.array([], np.float32)
    up = np.array([1, 1, 2, 2], np.float32)
    op_case("resize_nearest_asymmetric_floor", "Resize", x, {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
            [no_roi, up], opset=12)
    op_case("resize_nearest_half_pixel", "Resize", x, {"mode": "nearest"}, [no_roi, np.array([1, 1, 1.7, 2.4], np.float32)])
    op_case("resize_nearest_sizes_prefer_ceil", "Resize", x, {"mode": "nearest", "nearest_mode": "round_prefer_ceil", "coordinate_transformation_mode": "align_corners"},
            [None, None, np.array([1, 2, 7, 3], np.int64)])
    op_case("resize_nearest_ceil_tf_half_pixel", "Resize", x, {"mode": "nearest", "nearest_mode": "ceil", "coordinate_transformation_mode": "tf_half_pixel_for_nn"},
            [no_roi, np.array([1, 1, 1.5, 1.5], np.float32)], opset=11)
    op_case("resize_linear_half_pixel", "Resize", x, {"mode": "linear"}, [no_roi, np.array([1, 1, 2.5, 1.5], np.float32)])
    op_case("resize_linear_align_corners", "Resize", x, {"mode": "linear", "coordinate_transformation_mode": "align_corners"},
            [None, None, np.array([1, 2, 9, 4], np.int64)])
    op_case("resize_linear_pytorch_half_pixel_down", "Resize", f32(1, 2, 9, 11), {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"},
            [None, None, np.array([1, 2, 4, 1], np.int64)])
    op_case("resize_linear_half_pixel_symmetric", "Resize", x, {"mode": "linear", "coordinate_transformation_mode": "half_pixel_symmetric"},
            [no_roi, np.array([1, 1, 2.5, 0.6], np.float32)], opset=19)
    op_case("resize_cubic", "Resize", x, {"mode": "cubic"}, [no_roi, np.array([1, 1, 2, 1.6], np.float32)])
    op_case("resize_cubic_exclude_outside", "Resize", x, {"mode": "cubic", "cubic_coeff_a": -0.5, "exclude_outside": 1,
                                                          "coordinate_transformation_mode": "asymmetric"}, [no_roi, np.array([1, 1, 1.5, 2], np.float32)])
    op_case("resize_axes_opset18", "Resize", x, {"mode": "linear", "axes": [3, 2]}, [None, np.array([2, 1.5], np.float32)], opset=18)
    # Layer normalisation and transformer activations.
    op_case("layernorm_last_axis", "LayerNormalization", f32(2, 3, 8), {"epsilon": 1e-5}, [f32(8), f32(8)], opset=17)
    op_case("layernorm_axis1_no_bias", "LayerNormalization", f32(2, 3, 4), {"axis": 1, "epsilon": 1e-3}, [f32(3, 4)], opset=17)
    op_case("erf", "Erf", x4)
    op_case("gelu", "Gelu", x4 * 2, opset=20)
    op_case("gelu_tanh", "Gelu", x4 * 2, {"approximate": "tanh"}, opset=20)
    op_case("hardswish", "HardSwish", x4 * 3, opset=14)
    op_case("softplus", "Softplus", x4 * 4)
    op_case("mish", "Mish", x4 * 3, opset=18)
    op_case("abs", "Abs", x4)
    op_case("reciprocal", "Reciprocal", np.abs(x4) + 0.1)
    op_case("floor", "Floor", x4 * 3)
    op_case("ceil", "Ceil", x4 * 3)
    op_case("min_broadcast", "Min", x4, {}, [f32(1, 4, 1, 6), f32(5, 1)])
    op_case("max_broadcast", "Max", x4, {}, [f32(4, 5, 1)])
    # Shape and selection.
    op_case("expand", "Expand", f32(3, 1), {}, [np.array([2, 1, 4], np.int64)])
    split = [helper.make_node("Split", ["x", "sizes"], ["a", "b", "c"], name="split_node", axis=3),
             helper.make_node("Concat", ["c", "a"], ["y"], name="concat_node", axis=3)]
    graph_case("split_sizes", split, x4, [numpy_helper.from_array(np.array([1, 2, 3], np.int64), "sizes")])
    split = [helper.make_node("Split", ["x"], ["a", "b"], name="split_node", axis=1, split=[3, 1]),
             helper.make_node("Mul", ["a", "a"], ["a2"]), helper.make_node("Concat", ["b", "a2"], ["y"], axis=1)]
    graph_case("split_attribute_opset11", split, x4, [], opset=11)
    split = [helper.make_node("Split", ["x"], ["a", "b", "c"], name="split_node", axis=2, num_outputs=3),
             helper.make_node("Concat", ["c", "b", "a"], ["y"], axis=2)]
    graph_case("split_num_outputs_opset18", split, f32(2, 3, 7), [], opset=18)
    where = [helper.make_node("Greater", ["x", "zero"], ["positive"]), helper.make_node("Where", ["positive", "x", "other"], ["y"])]
    graph_case("where_greater", where, x4, [numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
                                            numpy_helper.from_array(f32(5, 6), "other")])
    op_case("equal", "Equal", np.round(x4), {}, [np.round(f32(4, 1, 6))], extra_nodes=cast_to_float("equal"))
    op_case("less", "Less", x4, {}, [f32(6)], extra_nodes=cast_to_float("less"))
    op_case("greater", "Greater", x4, {}, [f32(4, 1, 1)], extra_nodes=cast_to_float("greater"))
    logic = [helper.make_node("Greater", ["x", "zero"], ["p"]), helper.make_node("Less", ["x", "half"], ["q"]),
             helper.make_node("And", ["p", "q"], ["pq"]), helper.make_node("Not", ["pq"], ["r"]),
             helper.make_node("Cast", ["r"], ["y"], to=TensorProto.FLOAT)]
    graph_case("not_and", logic, x4, [numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
                                      numpy_helper.from_array(np.array(0.5, np.float32), "half")])
    # Normalisation, reductions, selection (the list beyond the real models).
    op_case("instancenorm", "InstanceNormalization", x4, {"epsilon": 1e-3}, [f32(4), f32(4)])
    op_case("groupnorm_opset21", "GroupNormalization", x4, {"num_groups": 2, "epsilon": 1e-4}, [f32(4), f32(4)], opset=21)
    op_case("groupnorm_opset18", "GroupNormalization", x4, {"num_groups": 2}, [f32(2), f32(2)], opset=18)
    op_case("tile", "Tile", f32(2, 3, 4), {}, [np.array([2, 1, 3], np.int64)])
    r = [helper.make_node("Range", ["start", "limit", "delta"], ["r"]), helper.make_node("Add", ["x", "r"], ["y0"]),
         helper.make_node("Range", ["istart", "ilimit", "idelta"], ["ri"]), helper.make_node("Cast", ["ri"], ["rf"], to=TensorProto.FLOAT),
         helper.make_node("Mul", ["y0", "rf"], ["y"])]
    graph_case("range", r, f32(7), [numpy_helper.from_array(np.array(0.5, np.float32), "start"), numpy_helper.from_array(np.array(4.0, np.float32), "limit"),
                                    numpy_helper.from_array(np.array(0.5, np.float32), "delta"), numpy_helper.from_array(np.array(10, np.int64), "istart"),
                                    numpy_helper.from_array(np.array(-4, np.int64), "ilimit"), numpy_helper.from_array(np.array(-2, np.int64), "idelta")])
    topk = [helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=2), helper.make_node("Cast", ["i"], ["fi"], to=TensorProto.FLOAT),
            helper.make_node("Concat", ["v", "fi"], ["y"], axis=2)]
    graph_case("topk_largest", topk, x4, [numpy_helper.from_array(np.array([3], np.int64), "k")], opset=11)
    topk = [helper.make_node("TopK", ["x", "k"], ["v", "i"], largest=0), helper.make_node("Cast", ["i"], ["fi"], to=TensorProto.FLOAT),
            helper.make_node("Concat", ["v", "fi"], ["y"], axis=-1)]
    graph_case("topk_smallest", topk, x4, [numpy_helper.from_array(np.array([2], np.int64), "k")])
    op_case("argmax", "ArgMax", x4, {"axis": 1}, extra_nodes=cast_to_float("argmax"))
    op_case("argmin_last_index", "ArgMin", np.round(x4), {"axis": -1, "keepdims": 0, "select_last_index": 1}, extra_nodes=cast_to_float("argmin"))
    for op in ["ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp"]:
        op_case(op.lower(), op, x4, {"axes": [1, 3]})
        op_case(op.lower() + "_opset18", op, x4, {"keepdims": 0}, [np.array([-1], np.int64)], opset=18)
    op_case("reducesum_noop_empty_axes", "ReduceSum", x4, {"noop_with_empty_axes": 1})

    # The CLI's unsupported-operator line: a model with two operators the executor does not run (no expected output).
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("RoiAlign", ["r", "rois", "index"], ["pooled"], name="roi_align"),
             helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["y"], name="nms")]
    graph = helper.make_graph(nodes, "two_unsupported", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, None), helper.make_tensor_value_info("pooled", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(f32(2, 4), "rois"), numpy_helper.from_array(np.zeros(2, np.int64), "index"),
                               numpy_helper.from_array(f32(1, 3, 4), "boxes"), numpy_helper.from_array(f32(1, 1, 3), "scores")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    model.ir_version = 8
    os.makedirs(os.path.join(ROOT, "unsupported"), exist_ok=True)
    onnx.save(model, os.path.join(ROOT, "unsupported", "two_unsupported.onnx"))


def graph_case(name, nodes, x, inits, opset=13, optimize=True):
    """Several nodes reading `x` (float32) and writing float32 `y`; expected output from onnxruntime (without its graph
    optimisations when `optimize` is false)."""
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    y = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    d = os.path.join(ROOT, "ops")
    onnx.save(model, os.path.join(d, f"{name}.onnx"))
    save_npy(os.path.join(d, f"{name}.input.npy"), x)
    save_npy(os.path.join(d, f"{name}.output.npy"), y.astype(np.float32))


def make_quantize_ops():
    """QuantizeLinear / DequantizeLinear, and weights behind constant chains (DequantizeLinear, Cast, Transpose) that the
    loader folds into initializers; their own seed. Run alone with `make_fixtures.py quantize-ops`."""
    global rng
    rng = np.random.RandomState(2027)
    init = numpy_helper.from_array
    # The operators' own semantics: onnxruntime's optimiser turns DequantizeLinear → MatMul into an integer product
    # that quantizes the activations too (0.07 off here).
    graph_case = functools.partial(globals()["graph_case"], optimize=False)
    # Halves of the scale (ties: round half to even) and values far outside the range (saturation).
    x = (rng.randint(-600, 600, size=(2, 4, 3, 5)) * 0.25).astype(np.float32)
    scale = np.array([0.5, 0.25, 1.0, 2.0], np.float32)
    zp = np.array([0, -3, 7, 100], np.int8)
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"], axis=1),
             helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["y"], axis=1)]
    graph_case("quantize_dequantize_int8_per_axis", nodes, x, [init(scale, "scale"), init(zp, "zp")])
    nodes = [helper.make_node("QuantizeLinear", ["x", "s"], ["q"]), helper.make_node("DequantizeLinear", ["q", "s"], ["y"])]
    graph_case("quantize_uint8_default", nodes, x, [init(np.array(0.5, np.float32), "s")])
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]), helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    graph_case("quantize_uint8_opset10", nodes, x, [init(np.array(0.75, np.float32), "s"), init(np.array(128, np.uint8), "z")], opset=10)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s"], ["q"], output_dtype=TensorProto.INT8),
             helper.make_node("DequantizeLinear", ["q", "s"], ["y"])]
    graph_case("quantize_output_dtype_opset21", nodes, x, [init(np.array(0.5, np.float32), "s")], opset=21)
    nodes = [helper.make_node("DequantizeLinear", ["w", "s", "z"], ["d"], axis=-1), helper.make_node("Add", ["x", "d"], ["y"])]
    graph_case("dequantize_uint8_last_axis", nodes, x, [init(rng.randint(0, 256, size=(3, 5)).astype(np.uint8), "w"),
                                                        init((rng.rand(5) * 0.1 + 0.01).astype(np.float32), "s"),
                                                        init(rng.randint(0, 256, size=5).astype(np.uint8), "z")])
    # An int8 weight [out, in] with one scale per output channel, dequantized and transposed for MatMul.
    w = rng.randint(-128, 128, size=(6, 5)).astype(np.int8)
    chain = [init(w, "w_q"), init((rng.rand(6) * 0.05 + 0.01).astype(np.float32), "w_scale"),
             init(rng.randint(-10, 10, size=6).astype(np.int8), "w_zero")]
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w_dq"], name="dequantize", axis=0),
             helper.make_node("Transpose", ["w_dq"], ["w"], name="transpose", perm=[1, 0]),
             helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")]
    graph_case("weight_chain_dequantize_transpose_matmul", nodes, f32(3, 5), chain)
    # The same chain, but the dequantized weight is also read elsewhere: ambiguous, left to the executor.
    nodes = nodes[:2] + [helper.make_node("MatMul", ["x", "w"], ["m"], name="fc"),
                         helper.make_node("ReduceSum", ["w_dq", "axes"], ["r"], name="row_sums", keepdims=0),
                         helper.make_node("Add", ["m", "r"], ["y"], name="add_sums")]
    graph_case("weight_chain_ambiguous", nodes, f32(3, 5), chain + [init(np.array([1], np.int64), "axes")])
    # A float16 Conv weight cast to float.
    nodes = [helper.make_node("Cast", ["w16"], ["w"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    graph_case("weight_chain_cast_conv", nodes, f32(2, 4, 7, 7), [init(f32(6, 4, 3, 3).astype(np.float16), "w16"), init(f32(6), "b")])


class TinyVGG(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(16 * 8 * 8, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, 10))

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))  # exports a Shape/Gather/Unsqueeze/Concat/Reshape chain


class TinyAlexNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 5, stride=2, padding=2), nn.ReLU(),
                                      nn.MaxPool2d(3, stride=2), nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(),
                                      nn.AvgPool2d(3, stride=2))
        self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(12 * 9, 24), nn.ReLU(), nn.Linear(24, 10))

    def forward(self, x):
        return torch.softmax(self.classifier(torch.flatten(self.features(x), 1)), dim=1)


class Bottleneck(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return torch.relu(self.body(x) + x)


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.MaxPool2d(3, stride=2, padding=1))
        self.block = Bottleneck(8)
        self.down = nn.Conv2d(8, 16, 1, stride=2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.down(self.block(self.stem(x)))
        x = nn.functional.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


class InvertedResidual(nn.Module):
    def __init__(self, c, expand):
        super().__init__()
        h = c * expand
        self.conv = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                                  nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                                  nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.conv(x)


class TinyMobileNetV2(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.block = InvertedResidual(8, 4)
        self.head = nn.Sequential(nn.Conv2d(8, 16, 1), nn.ReLU6())
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(16, 10))

    def forward(self, x):
        x = self.head(self.block(self.stem(x)))
        return self.classifier(x.mean([2, 3]))


def make_models():
    os.makedirs(os.path.join(ROOT, "models"), exist_ok=True)
    torch.manual_seed(0)
    x = torch.randn(3, 1, 32, 32)
    for name, cls in [("tiny_vgg", TinyVGG), ("tiny_alexnet", TinyAlexNet), ("tiny_resnet", TinyResNet),
                      ("tiny_mobilenetv2", TinyMobileNetV2)]:
        model = cls()
        # Non-trivial BatchNorm statistics so folding is exercised.
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
        model.eval()
        with torch.no_grad():
            y = model(x).numpy()
        for opset in (11, 13, 17):
            path = os.path.join(ROOT, "models", f"{name}_opset{opset}.onnx")
            torch.onnx.export(model, x, path, input_names=["input"], output_names=["logits"], opset_version=opset,
                              dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
            save_npy(path.replace(".onnx", ".input.npy"), x.numpy())
            save_npy(path.replace(".onnx", ".output.npy"), y)


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["real-model-ops"]:
        make_real_model_ops()
    elif sys.argv[1:] == ["quantize-ops"]:
        make_quantize_ops()
    else:
        make_ops()
        make_models()
        make_real_model_ops()
        make_quantize_ops()
    print("fixtures written to", os.path.normpath(ROOT))
