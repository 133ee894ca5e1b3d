#!/usr/bin/env python3
"""scikit-learn KMeans and faiss-cpu Kmeans on the same kernel matrix, as JSON (baselines of bench-kmeans.sh).
    python kmeans_baselines.py kernels.npy K [--iterations 25] [--skip-sklearn]
"""
import json, resource, sys, time
import numpy as np

path, k = sys.argv[1], int(sys.argv[2])
iterations = int(sys.argv[sys.argv.index("--iterations") + 1]) if "--iterations" in sys.argv else 25
x = np.ascontiguousarray(np.load(path).astype(np.float32))
results = {}

import faiss
faiss.omp_set_num_threads(2)
km = faiss.Kmeans(x.shape[1], k, niter=iterations, seed=1, max_points_per_centroid=1 << 30)
start = time.perf_counter()
km.train(x)
seconds = time.perf_counter() - start
distances, _ = km.index.search(x, 1)
results["faiss"] = {"seconds": seconds, "inertia": float(distances.astype(np.float64).sum()), "version": faiss.__version__}

if "--skip-sklearn" not in sys.argv:
    import sklearn
    from sklearn.cluster import KMeans
    start = time.perf_counter()
    model = KMeans(n_clusters=k, n_init=1, max_iter=iterations, random_state=0).fit(x)
    seconds = time.perf_counter() - start
    results["sklearn"] = {"seconds": seconds, "inertia": float(model.inertia_), "version": sklearn.__version__}
results["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(results))
