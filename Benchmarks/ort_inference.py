#!/usr/bin/env python3
"""onnxruntime CPU-provider throughput on random input, printed as JSON (the baseline of bench-inference.sh).
   ort_inference.py MODEL BATCH ITERATIONS THREADS [MIN_SECONDS [TIMES_FILE]]
With MIN_SECONDS, batches are timed until that much time has passed (at least three, after warm-up batches: two, the
second batch at batch 64 on 224 px maps ran 15-30% slower than the third, and more until WARM_UP_SECONDS have passed,
as wc-inference-bench does), and the quickest batch's seconds are printed too; TIMES_FILE then gets each timed batch's
microseconds, in order, one a line (as wc-inference-bench --times does)."""
import json, os, resource, sys, time
import numpy as np
import onnxruntime as ort

model, batch, iterations, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
inp = session.get_inputs()[0]
shape = [batch if not isinstance(d, int) or i == 0 else d for i, d in enumerate(inp.shape)]
x = np.random.RandomState(0).uniform(-1, 1, shape).astype(np.float32)
if len(sys.argv) > 5:
    minimum = float(sys.argv[5])
    WARM_UP_SECONDS = 0.25
    warm_up_start, warm_ups = time.perf_counter(), 0
    while warm_ups < 2 or time.perf_counter() - warm_up_start < WARM_UP_SECONDS:
        session.run(None, {inp.name: x})
        warm_ups += 1
    times = []
    while len(times) < 3 or sum(times) < minimum:
        start = time.perf_counter()
        session.run(None, {inp.name: x})
        times.append(time.perf_counter() - start)
    iterations, seconds = len(times), sum(times)
    if len(sys.argv) > 6:
        with open(sys.argv[6] + ".partial", "w") as f:
            f.write("".join("%.1f\n" % (t * 1e6) for t in times))
        os.replace(sys.argv[6] + ".partial", sys.argv[6])
else:
    for _ in range(2):
        session.run(None, {inp.name: x})
    start = time.perf_counter()
    for _ in range(iterations):
        session.run(None, {inp.name: x})
    seconds = time.perf_counter() - start
result = {"images_per_second": batch * iterations / seconds, "seconds_per_batch": seconds / iterations,
          "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "onnxruntime": ort.__version__}
if len(sys.argv) > 5:
    result["batch_seconds_least"] = min(times)
print(json.dumps(result))
