#!/usr/bin/env python3
"""Plain numpy reference palettizer for ONNX models (the baseline of WeightCluster's palettization, issue 11).

Every weight initializer with >= 2 dims that feeds Conv input 1, Gemm input 1 or a MatMul's constant input becomes
one of K = 2^bits values of a look-up table (LUT): one LUT per tensor (--granularity per-tensor) or one per group of
G consecutive output channels (--granularity per-grouped-channel --group-size G; the last group of a tensor whose
output channels are not a multiple of G is smaller). Output axis: 0 for Conv and for Gemm with transB=1, 1 for Gemm
with transB=0, the last axis for a MatMul's constant input 1 ([in, out]) and the second-to-last for a constant input 0.
A tensor shared by several nodes is palettized once (the first consumer's axis).

The LUT is 1-D k-means: centroids start at the (j + 0.5)/K quantiles of the values (j = 0..K-1, numpy's linear
quantiles); Lloyd iterations until the assignment no longer changes (at most --max-iterations, default 100). The
assignment is exact: the values are sorted once, the boundaries between clusters are the midpoints of consecutive
sorted centroids (np.searchsorted), and each cluster's mean comes from prefix sums of the sorted values, so one Lloyd
step costs O(K log n) after an O(n log n) sort. A value exactly on a midpoint goes to the upper centroid; an empty
cluster keeps its centroid. The converged LUT is rounded to fp16, and each weight becomes its nearest fp16 LUT entry.

    palettize_reference.py MODEL.onnx --bits 4 [--granularity per-tensor|per-grouped-channel] [--group-size 16]
                           [-o OUT.onnx] [--evaluate] [--json] [--time-only] [--fp32] [--threads 2]
--evaluate: top-1 of the palettized (dense fp32) model in onnxruntime on the 10,000 Fashion-MNIST test images, with
  the same preprocessing as the Swift tool (pad 2 -> 32x32, x = (p/255 - 0.2860) / 0.3530).
--json: one line {"top1", "seconds", "mse", "weights", ...}; seconds = palettization time only (sorting, k-means,
  assignment; not loading, writing or evaluating); mse = mean squared error between the original and palettized
  weights over all palettized weights; weights = how many weights were palettized; cpu_seconds = this process's CPU
  time over the same span (numpy runs on one thread here, so on a busy machine cpu_seconds is the fairer figure).
--time-only: palettize and print seconds and mse without writing or evaluating.
--fp32: skip palettization (evaluate the model as it is; the baseline row).
Needs numpy, onnx and (for --evaluate) onnxruntime, e.g. .build/ort-venv from Scripts/test.sh plus `pip install onnx`.
"""
import argparse, gzip, json, sys, time
import numpy as np
import onnx
from onnx import numpy_helper

DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530


def weight_axes(model):
    """name -> (output axis, consumer) for every palettizable initializer, in graph order."""
    inits = {t.name: t for t in model.graph.initializer}
    found = {}

    def take(name, axis, op):
        t = inits.get(name)
        if t is None or name in found or len(t.dims) < 2 or t.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
            return
        found[name] = (axis % len(t.dims), op)

    for node in model.graph.node:
        if node.op_type == "Conv" and len(node.input) > 1:
            take(node.input[1], 0, "Conv")
        elif node.op_type == "Gemm" and len(node.input) > 1:
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            take(node.input[1], 0 if trans_b else 1, "Gemm")
        elif node.op_type == "MatMul":
            if node.input[1] in inits:
                take(node.input[1], -1, "MatMul")
            elif node.input[0] in inits:
                take(node.input[0], -2, "MatMul")
    return found


def kmeans_1d(values, k, max_iterations=100):
    """LUT (float64, sorted, before fp16 rounding) and the number of Lloyd steps run, for 1-D values."""
    xs = np.sort(values).astype(np.float64)  # sort the float32 values (numpy's SIMD sort), sum in float64
    n = xs.size
    prefix = np.concatenate(([0.0], np.cumsum(xs)))
    pos = (np.arange(k) + 0.5) / k * (n - 1)  # numpy's linear quantiles, read off the sorted values
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    centroids = xs[lo] + (pos - lo) * (xs[hi] - xs[lo])
    bounds = None
    steps = 0
    for steps in range(1, max_iterations + 1):
        cuts = np.searchsorted(xs, 0.5 * (centroids[1:] + centroids[:-1]), side="left")
        if bounds is not None and np.array_equal(cuts, bounds):
            steps -= 1
            break
        bounds = cuts
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [n]))
        counts = ends - starts
        sums = prefix[ends] - prefix[starts]
        nonempty = counts > 0
        centroids = np.where(nonempty, sums / np.maximum(counts, 1), centroids)
        centroids.sort()
    return centroids, steps


def assign(values, lut):
    """values mapped to their nearest entry of the sorted LUT (ties to the upper entry)."""
    lut = np.sort(lut)
    idx = np.searchsorted(0.5 * (lut[1:] + lut[:-1]), values, side="right")
    return lut[idx]


def palettize_array(w, axis, bits, granularity, group_size, max_iterations):
    """(palettized array as float32, Lloyd steps summed over its LUTs, number of LUTs)."""
    k = 1 << bits
    w32 = np.asarray(w, dtype=np.float32)
    if granularity == "per-tensor":
        groups = [w32.reshape(-1)]
        moved = None
    else:
        moved = np.moveaxis(w32, axis, 0)
        rows = moved.reshape(moved.shape[0], -1)
        groups = [rows[i:i + group_size].reshape(-1) for i in range(0, rows.shape[0], group_size)]
    out, steps = [], 0
    for g in groups:
        lut, s = kmeans_1d(g, k, max_iterations)
        steps += s
        lut16 = lut.astype(np.float16).astype(np.float32)
        out.append(assign(g, lut16))
    if moved is None:
        result = out[0].reshape(w32.shape)
    else:
        result = np.moveaxis(np.concatenate(out).reshape(moved.shape), 0, axis)
    return np.ascontiguousarray(result, dtype=np.float32), steps, len(groups)


def palettize(model, bits, granularity, group_size, max_iterations):
    axes = weight_axes(model)
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if t.name in axes}
    start, cpu_start = time.perf_counter(), time.process_time()
    results, sq, count, steps, luts = {}, 0.0, 0, 0, 0
    for name, (axis, _) in axes.items():
        w = arrays[name]
        p, s, g = palettize_array(w, axis, bits, granularity, group_size, max_iterations)
        results[name] = p
        steps += s
        luts += g
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    for name, p in results.items():
        d = arrays[name].astype(np.float64) - p
        sq += float(np.dot(d.reshape(-1), d.reshape(-1)))
        count += p.size
    return results, {"seconds": seconds, "cpu_seconds": cpu_seconds, "mse": sq / max(count, 1), "weights": count, "tensors": len(results),
                     "luts": luts, "lloyd_steps": steps}


def replace_initializers(model, arrays):
    for i, t in enumerate(model.graph.initializer):
        if t.name in arrays:
            a = arrays[t.name].astype(numpy_helper.to_array(t).dtype)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(a, t.name))


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def test_set():
    x = load_idx(f"{DATA}/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    x = ((x - MEAN) / STD)[:, None, :, :].astype(np.float32)
    return x, load_idx(f"{DATA}/t10k-labels-idx1-ubyte.gz").astype(np.int64)


def evaluate(model_bytes, threads, batch=500):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x, y = test_set()
    correct = 0
    for i in range(0, len(x), batch):
        logits = session.run(None, {name: x[i:i + batch]})[0]
        correct += int((logits.argmax(1) == y[i:i + batch]).sum())
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--granularity", choices=["per-tensor", "per-grouped-channel"], default="per-tensor")
    ap.add_argument("--group-size", type=int, default=16)
    ap.add_argument("--max-iterations", type=int, default=100)
    ap.add_argument("-o", "--output")
    ap.add_argument("--evaluate", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--time-only", action="store_true")
    ap.add_argument("--fp32", action="store_true", help="no palettization: the unmodified model's baseline")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    args = ap.parse_args()
    if not 1 <= args.bits <= 8:
        ap.error("--bits must be 1..8")
    if args.group_size < 1:
        ap.error("--group-size must be >= 1")

    model = onnx.load(args.model)
    if args.fp32:
        stats = {"seconds": 0.0, "cpu_seconds": 0.0, "mse": 0.0, "weights": 0, "tensors": 0, "luts": 0, "lloyd_steps": 0}
    else:
        arrays, stats = palettize(model, args.bits, args.granularity, args.group_size, args.max_iterations)
    info = {"model": args.model, "bits": None if args.fp32 else args.bits,
            "granularity": "fp32" if args.fp32 else args.granularity,
            "group_size": args.group_size if args.granularity == "per-grouped-channel" and not args.fp32 else None}
    if args.time_only:
        info.update(seconds=stats["seconds"], cpu_seconds=stats["cpu_seconds"], mse=stats["mse"], weights=stats["weights"], tensors=stats["tensors"],
                    luts=stats["luts"], lloyd_steps=stats["lloyd_steps"])
        print(json.dumps(info) if args.json else
              f"seconds {stats['seconds']:.3f} (process CPU {stats['cpu_seconds']:.3f})  mse {stats['mse']:.4e}  weights {stats['weights']:,}  "
              f"tensors {stats['tensors']}  LUTs {stats['luts']}  Lloyd steps {stats['lloyd_steps']}")
        return
    if not args.fp32:
        replace_initializers(model, arrays)
    if args.output:
        onnx.save(model, args.output)
    top1 = evaluate(model.SerializeToString(), args.threads) if args.evaluate else None
    info.update(top1=top1, seconds=stats["seconds"], cpu_seconds=stats["cpu_seconds"], mse=stats["mse"], weights=stats["weights"],
                tensors=stats["tensors"], luts=stats["luts"], lloyd_steps=stats["lloyd_steps"])
    if args.json:
        print(json.dumps(info))
    else:
        print(f"palettized {stats['weights']:,} weights in {stats['tensors']} tensors ({stats['luts']} LUTs of "
              f"{1 << args.bits} entries) in {stats['seconds']:.3f} s, mse {stats['mse']:.4e}"
              if not args.fp32 else "fp32 (not palettized)")
        if top1 is not None:
            print(f"top-1: {top1:.4f}")
        if args.output:
            print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
