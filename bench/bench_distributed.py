"""Parameter-server training on a loopback cluster: steps per second and task memory.

Each configuration starts its own cluster with ``examples/distributed_ps.py
--bench`` (one process per task on 127.0.0.1, all killed afterwards), trains
``--warmup`` untimed and ``--steps`` timed sampled-softmax steps on random
data, and reports the steps per second and the peak resident memory (VmHWM)
of every task. Runs:

* 1 and 2 workers (2 PS) at ``--classes`` x ``--dim``: the throughput ratio;
* 2 workers at ``--big-classes`` x 64 (default 10^7, a 2.56 GB table split
  over the 2 PS tasks, lazy SGD so no slot memory): a worker's peak memory
  must stay that of the small table, since workers only receive gathered rows.

On a machine whose cores are shared by all tasks (this project's has 2),
read the ratios, not the absolute numbers::

    python bench/bench_distributed.py
    python bench/bench_distributed.py --steps 100 --big-classes 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "distributed_ps.py"


def run(workers: int, classes: int, dim: int, args) -> dict:
    command = [
        sys.executable, str(EXAMPLE), "--bench", "--json", "--workers", str(workers), "--ps", "2",
        "--num-classes", str(classes), "--dim", str(dim), "--steps", str(args.steps),
        "--warmup", str(args.warmup), "--batch", str(args.batch), "--num-sampled",
        str(args.num_sampled), "--sampler", "log_uniform", "--optimizer", "sgd",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=args.timeout, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--big-classes", type=int, default=10_000_000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--num-sampled", type=int, default=1024)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)

    rows = [
        run(1, args.classes, args.dim, args),
        run(2, args.classes, args.dim, args),
        run(2, args.big_classes, 64, args),
    ]
    print(
        f"{os.cpu_count()} CPUs on this machine, shared by every task; batch {args.batch}, "
        f"{args.num_sampled} sampled, 2 PS, lazy SGD, {args.steps} timed steps after {args.warmup}"
    )
    print(f"{'workers':>7} {'classes':>10} {'dim':>4} {'steps/s':>8} "
          f"{'worker peak MiB':>18} {'PS peak MiB':>18}")  # fmt: skip
    for r in rows:
        workers = "/".join(f"{m:.0f}" for m in r["worker_peak_rss_mb"])
        ps = "/".join(f"{m:.0f}" for m in r["ps_peak_rss_mb"])
        print(f"{r['workers']:>7} {r['num_classes']:>10} {r['dim']:>4} "
              f"{r['steps_per_second']:>8.1f} {workers:>18} {ps:>18}")  # fmt: skip
    print(f"2 workers / 1 worker: {rows[1]['steps_per_second'] / rows[0]['steps_per_second']:.2f}x")
    growth = max(rows[2]["worker_peak_rss_mb"]) / max(rows[1]["worker_peak_rss_mb"])
    print(
        f"worker peak memory, {args.big_classes} vs {args.classes} classes: {growth:.2f}x "
        f"(the table: {args.big_classes * 64 * 4 / 2**20:.0f} MiB over the PS tasks)"
    )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
