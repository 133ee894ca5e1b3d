"""Each module's cost in our runtime and in onnxruntime, from prefix models (docs/RESULTS.md, session 56).

onnxruntime's profiler adds a few microseconds to every node, too much for layers of 5-50 us. Instead the model is cut
after each module (by default the last node of each group of nodes named /a/b/..., such as /features/features.6 in
torchvision's exports), a GlobalAveragePool is appended to each prefix (so that onnxruntime's reorder out of its NCHWc
layout is of 1x1 maps in every one; not after a classifier's output), and both runtimes time every prefix: the least
time of each over the rounds, alternated. The difference between consecutive prefixes is that module's cost;
onnxruntime's Python call is in every prefix and cancels.

Usage: module_costs.py MODEL BENCH [--threads N] [--batch N] [--rounds N] [--seconds S] [--cut NAME ...]
BENCH is our wc-inference-bench (swift build -c release --product wc-inference-bench). Run it in the benchmark
scripts' venv (.build/real-models-venv: onnx and onnxruntime).
"""
import argparse, json, os, subprocess, sys, tempfile

import onnx
import onnx.utils
from onnx import helper, TensorProto


def default_cuts(model):
    """The output of the last node of each group of nodes named /a/b/... (in the graph's order)."""
    last = {}
    for node in model.graph.node:
        parts = node.name.split("/")
        if len(parts) > 3 and len(node.output) == 1 and node.op_type not in ("Constant", "Identity"):
            last["/".join(parts[:3])] = node.output[0]
    return list(last.values())


def prefix(model_path, input_name, cut, path):
    """The model from `input_name` to `cut`, with a GlobalAveragePool after it where `cut` has spatial axes (not after
    a classifier's N x classes output: the whole model as it is), at `path`."""
    onnx.utils.extract_model(model_path, path, [input_name], [cut])
    m = onnx.load(path)
    if len(m.graph.output[0].type.tensor_type.shape.dim) < 3:
        return
    m.graph.node.append(helper.make_node("GlobalAveragePool", [cut], ["module_costs_output"]))
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info("module_costs_output", TensorProto.FLOAT, None))
    onnx.save(m, path)


def ours(bench, path, threads, batch, seconds):
    out = subprocess.run([bench, path, "--threads", str(threads), "--batch", str(batch), "--seconds", str(seconds),
                          "--throughput-only"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["batch_seconds_least"] * 1e6


def theirs(path, threads, batch, seconds):
    """onnxruntime's least batch, timed as the benchmark scripts time it (ort_inference.py, beside this file)."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ort_inference.py")
    out = subprocess.run([sys.executable, script, path, str(batch), "1", str(threads), str(seconds)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["batch_seconds_least"] * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("bench")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.7)
    parser.add_argument("--cut", nargs="*", help="tensor names to cut after (default: each module's last output)")
    args = parser.parse_args()
    model = onnx.shape_inference.infer_shapes(onnx.load(args.model))
    cuts = args.cut or default_cuts(model)
    with tempfile.TemporaryDirectory() as directory:
        inferred = os.path.join(directory, "model.onnx")
        onnx.save(model, inferred)
        paths = []
        for i, cut in enumerate(cuts):
            paths.append(os.path.join(directory, f"p{i:03d}.onnx"))
            prefix(inferred, model.graph.input[0].name, cut, paths[-1])
        best = {"ours": [float("inf")] * len(cuts), "onnxruntime": [float("inf")] * len(cuts)}
        for _ in range(args.rounds):
            for i, path in enumerate(paths):
                best["ours"][i] = min(best["ours"][i], ours(args.bench, path, args.threads, args.batch, args.seconds))
                best["onnxruntime"][i] = min(best["onnxruntime"][i], theirs(path, args.threads, args.batch, args.seconds))
    print(f"{'module (cut after)':48s} {'ours':>8s} {'ort':>8s} {'ours-ort':>9s}   (us, least; batch {args.batch}, "
          f"{args.threads} threads)")
    previous = (0.0, 0.0)
    for i, cut in enumerate(cuts):
        o, t = best["ours"][i], best["onnxruntime"][i]
        print(f"{cut[-48:]:48s} {o - previous[0]:8.1f} {t - previous[1]:8.1f} {(o - previous[0]) - (t - previous[1]):+9.1f}")
        previous = (o, t)
    print(f"{'whole (the last prefix)':48s} {previous[0]:8.1f} {previous[1]:8.1f} {previous[0] - previous[1]:+9.1f}")


if __name__ == "__main__":
    sys.exit(main())
