"""CandidateIndex against brute force ``top_k(queries @ C^T)``: memory, latency, throughput, evaluate.

Every case runs in a fresh subprocess (its peak RSS is its own) and prints one
JSON line; the parent prints the rows (and writes them to ``--out`` if given). Timings
are medians of interleaved repeats; the load average (``/proc/loadavg``, the
machine is shared) is recorded before and after each case.

Cases:
  memory      Q queries x N candidates (default 1024 x 10^7, d=128): peak RSS of
              building the index from a tf.data dataset beyond the table, ids and
              id lookup, and of the first (tracing) and later searches beyond the
              RSS right after the build (VmHWM after ``/proc/self/clear_refs``);
              search time. No brute force (41 GB).
  latency     one query at N (default 10^6 and 10^7): the index (float32 and
              bfloat16 storage; float16 too below 10^7; one and two blocks in
              flight, ``_p1``/``_p2``), brute force, and this
              machine's memory-bandwidth floor: one pass reducing the table's
              bytes (``reduce_sum`` of the table bit-cast to int32 words), per
              storage dtype.
  exact       1024 queries at N=10^6: the index's ids and scores against brute
              force (count of differing ids, largest score difference), and both
              throughputs (queries/s).
  evaluate    ``model.evaluate`` with RetrievalRecall at k in {1, 10, 50, 100}
              over 4096 queries (batches of 1024) at N=10^6, against the scan
              alone (``search(k=100)`` over the same batches).

Usage:
  python bench/bench_candidate_index.py                  # all cases, issue sizes
  python bench/bench_candidate_index.py --quick          # small sizes, ~1 min
  python bench/bench_candidate_index.py --cases latency --latency-n 1000000
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MB = 2**20


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def _reset_peak() -> None:
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _load() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def _interleaved(fns: dict, repeats: int) -> dict:
    """Per call of each no-argument function, interleaved: wall seconds (median, min)
    and this process's CPU seconds (median; other processes on a shared machine
    lengthen the wall time much more than the CPU time)."""
    for fn in fns.values():  # trace and warm
        fn()
        fn()
    times = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {
        n: {
            "median_s": statistics.median(t),
            "min_s": min(t),
            "cpu_median_s": statistics.median(cpu[n]),
        }
        for n, t in times.items()
    }


# ------------------------------------------------------------------ children
def _setup():
    sys.path.insert(0, ROOT)
    import numpy as np
    import tensorflow as tf

    import tf_sampling.layers as tsl

    return np, tf, tsl


def _random_dataset(tf, n: int, dim: int, batch: int = 65536):
    """Batches of random candidate embeddings, made as they are read (never the whole table)."""

    def make(i):
        start = i * batch
        size = tf.minimum(tf.cast(batch, tf.int64), n - start)
        seed = tf.stack([tf.constant(7, tf.int64), i])
        return tf.random.stateless_normal(tf.stack([size, dim]), seed=seed)

    return tf.data.Dataset.range((n + batch - 1) // batch).map(make)


def _build(tf, tsl, n, dim, storage, record):
    """An index of n random candidates, built from a dataset; records the build's peak."""
    # A small build first: the kernels' code pages and TensorFlow's first-use
    # allocations are resident before the measured build starts.
    tsl.CandidateIndex(storage_dtype=storage).index_from_dataset(
        None, _random_dataset(tf, 1000, dim, batch=300), num_candidates=1000
    )
    index = tsl.CandidateIndex(storage_dtype=storage)
    dataset = _random_dataset(tf, n, dim)
    _reset_peak()
    before = _status_mb("VmRSS")
    t0 = time.perf_counter()
    index.index_from_dataset(None, dataset, num_candidates=n)
    record["build_s"] = time.perf_counter() - t0
    table_mb = n * dim * tf.as_dtype(storage).size / MB
    lookup_mb = n * (8 + 12) / MB  # int64 ids, sorted int64 keys and their int32 rows
    record["table_mb"] = round(table_mb)
    record["ids_and_lookup_mb"] = round(lookup_mb)
    record["build_extra_peak_mb"] = round(_status_mb("VmHWM") - before - table_mb - lookup_mb)
    return index


def case_memory(args) -> dict:
    np, tf, tsl = _setup()
    rec = {"case": "memory", "n": args.n, "dim": args.dim, "queries": args.queries, "k": args.k}
    index = _build(tf, tsl, args.n, args.dim, args.storage, rec)
    rec["storage"] = args.storage
    queries = tf.random.stateless_normal([args.queries, args.dim], seed=[1, 2])
    # Peaks over the RSS after the build, so that nothing a first search left
    # resident (a copy of the table, say) hides in the baseline.
    _reset_peak()
    before = _status_mb("VmRSS")
    index.search(queries, k=args.k)[0].numpy()  # the first call traces
    rec["first_search_extra_peak_mb"] = round(_status_mb("VmHWM") - before)
    _reset_peak()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        scores, _ = index.search(queries, k=args.k)
        scores.numpy()
        times.append(time.perf_counter() - t0)
    rec["search_extra_peak_mb"] = round(_status_mb("VmHWM") - before)
    rec["search_s"] = statistics.median(times)
    rec["queries_per_s"] = args.queries / rec["search_s"]
    rec["chunk_size"] = index.chunk_size or "auto"
    return rec


def _floor_fn(tf, variable):
    """One pass over the table's bytes: a float32 sum of its 32-bit words.

    A reduced-precision table is bit-cast to float32 (two values a word; the
    sum is meaningless, the bytes read are the table's). Float, not integer,
    words: TensorFlow's int32 sum runs at a third of the float sum's speed
    here, below the memory bandwidth.
    """
    dim = int(variable.shape[1])

    @tf.function
    def floor():
        table = variable.read_value()
        if table.dtype != tf.float32:
            table = tf.bitcast(tf.reshape(table, [-1, dim // 2, 2]), tf.float32)
        return tf.reduce_sum(table)

    return floor


def case_latency(args) -> dict:
    np, tf, tsl = _setup()
    rec = {"case": "latency", "n": args.n, "dim": args.dim, "k": args.k}
    index = _build(tf, tsl, args.n, args.dim, "float32", rec)
    table = index._table.embeddings
    storages = ["bfloat16"] + (["float16"] if args.n < 10**7 else [])
    reduced = {s: tsl.CandidateIndex(storage_dtype=s).index(table) for s in storages}
    query = tf.random.stateless_normal([1, args.dim], seed=[3, 4])
    brute = tf.function(lambda q: tf.math.top_k(tf.matmul(q, table, transpose_b=True), args.k))
    fns = {
        "brute_force": lambda: brute(query)[0].numpy(),
        "floor_float32": (lambda f: lambda: f().numpy())(_floor_fn(tf, table)),
    }
    for name, idx in [("float32", index), *reduced.items()]:
        for par in (1, 2):
            fns[f"index_{name}_p{par}"] = (
                lambda i, p: lambda: i.search(query, k=args.k, parallel_iterations=p)[0].numpy()
            )(idx, par)
        if name != "float32":
            floor = _floor_fn(tf, idx._table.embeddings)
            fns[f"floor_{name}"] = (lambda f: lambda: f().numpy())(floor)
    rec["timings"] = _interleaved(fns, args.repeats)
    got = index.search(query, k=args.k)
    want = brute(query)
    rec["ids_equal_brute_force"] = bool(
        np.array_equal(got[1].numpy(), want[1].numpy().astype(np.int64))
    )
    for name, idx in reduced.items():
        ids = idx.search(query, k=args.k)[1].numpy()
        rec[f"overlap_{name}_vs_float32"] = float(np.isin(ids, got[1].numpy()).mean())
    return rec


def case_exact(args) -> dict:
    np, tf, tsl = _setup()
    rec = {"case": "exact", "n": args.n, "dim": args.dim, "queries": args.queries, "k": args.k}
    index = _build(tf, tsl, args.n, args.dim, "float32", rec)
    table = index._table.embeddings
    queries = tf.random.stateless_normal([args.queries, args.dim], seed=[5, 6])
    brute = tf.function(lambda q: tf.math.top_k(tf.matmul(q, table, transpose_b=True), args.k))
    timings = _interleaved(
        {
            "brute_force": lambda: brute(queries)[0].numpy(),
            "index": lambda: index.search(queries, k=args.k)[0].numpy(),
        },
        args.repeats,
    )
    rec["timings"] = timings
    for name in timings:
        rec[f"{name}_queries_per_s"] = args.queries / timings[name]["median_s"]
    s1, i1 = index.search(queries, k=args.k)
    s2, i2 = brute(queries)
    rec["ids_differing"] = int((i1.numpy() != i2.numpy().astype(np.int64)).sum())
    rec["ids_total"] = int(i1.shape[0] * i1.shape[1])
    rec["max_score_diff"] = float(np.abs(s1.numpy() - s2.numpy()).max())
    return rec


def case_evaluate(args) -> dict:
    np, tf, tsl = _setup()
    import keras

    rec = {"case": "evaluate", "n": args.n, "dim": args.dim, "queries": args.queries}
    index = _build(tf, tsl, args.n, args.dim, "float32", rec)
    ks = (1, 10, 50, 100)

    class QueryModel(keras.Model):
        """Identity query tower; the retrieval loss is not the point here."""

        def call(self, x):
            return x

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return tf.constant(0.0)

    model = QueryModel()
    model.compile(metrics=[tsl.RetrievalRecall(index, ks=ks)])
    queries = tf.random.stateless_normal([args.queries, args.dim], seed=[7, 8])
    positives = tf.random.stateless_uniform(
        [args.queries], seed=[9, 10], maxval=args.n, dtype=tf.int64
    )
    batch = min(1024, args.queries)
    data = tf.data.Dataset.from_tensor_slices((queries, positives)).batch(batch).cache()
    scan = tf.function(lambda q: index.search(q, k=max(ks)))

    def scan_all():
        for q, _ in data:
            scan(q)[0].numpy()

    def evaluate():
        return model.evaluate(data, verbose=0, return_dict=True)

    timings = _interleaved({"scan_alone": scan_all, "evaluate": evaluate}, args.repeats)
    rec["timings"] = timings
    rec["ratio_evaluate_over_scan"] = (
        timings["evaluate"]["median_s"] / timings["scan_alone"]["median_s"]
    )
    rec["recall"] = {k: float(v) for k, v in evaluate().items() if "@" in k}
    return rec


CASES = {
    "memory": case_memory,
    "latency": case_latency,
    "exact": case_exact,
    "evaluate": case_evaluate,
}


# -------------------------------------------------------------------- parent
def _run_child(case: str, **kw) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", case]
    for key, value in kw.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    load_before = _load()
    out = subprocess.run(cmd, capture_output=True, text=True)
    rows = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not rows:
        rec = {"case": case, **kw, "error": out.stderr[-2000:]}
    else:
        rec = json.loads(rows[-1][len("RESULT ") :])
    rec["load_before"], rec["load_after"] = load_before, _load()
    print(json.dumps(rec), flush=True)
    return rec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=sorted(CASES))
    parser.add_argument("--n", type=int, default=10**6)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1024)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--storage", default="float32")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="small sizes for development")
    parser.add_argument("--cases", default="memory,latency,exact,evaluate")
    parser.add_argument("--memory-n", type=int, default=10**7)
    parser.add_argument("--latency-n", default="1000000,10000000")
    parser.add_argument("--out", help="also write the rows to this JSON file")
    args = parser.parse_args()
    if args.child:
        rec = CASES[args.child](args)
        print("RESULT " + json.dumps(rec), flush=True)
        return
    big = 10**5 if args.quick else 10**6
    plan = {
        "memory": [dict(n=10**5 if args.quick else args.memory_n, queries=args.queries)],
        "latency": [dict(n=10**5)]
        if args.quick
        else [dict(n=int(n)) for n in args.latency_n.split(",")],
        "exact": [dict(n=big, queries=256 if args.quick else 1024)],
        "evaluate": [dict(n=big, queries=1024 if args.quick else 4096)],
    }
    results = []
    for case in args.cases.split(","):
        for kw in plan[case]:
            results.append(_run_child(case, dim=args.dim, k=args.k, repeats=args.repeats, **kw))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
