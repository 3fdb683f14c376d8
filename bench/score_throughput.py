"""Streaming scoring: rows per second and peak memory of `vaekit detect score` as the file grows.

Writes synthetic CSVs (``--features`` float columns plus an id column) of each size in ``--rows``,
fits one small detector on 20k rows, then scores each file in a fresh subprocess and reports the
wall time, rows/s and the subprocess's peak resident memory (``ru_maxrss``). Flat memory across
sizes is the point: a file 20x larger must not need 20x the memory. Not a timed test.

    python bench/score_throughput.py --rows 100000 2000000 --json bench/score_throughput.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CHILD = r"""
import resource, sys, time
from vaekit.cli import main
t = time.perf_counter()
rc = main(sys.argv[1:])
secs = time.perf_counter() - t
print(f"RESULT {rc} {secs} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")
"""


def write_csv(path: Path, n: int, d: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    block = 250_000
    for start in range(0, n, block):
        m = min(block, n - start)
        df = pd.DataFrame(rng.normal(size=(m, d)).astype(np.float32), columns=[f"f{j}" for j in range(d)])
        df.insert(0, "id", np.arange(start, start + m))
        df.to_csv(path, mode="w" if start == 0 else "a", header=start == 0, index=False, float_format="%.5g")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 2_000_000], help="file sizes in rows")
    ap.add_argument("--features", type=int, default=8, help="feature columns")
    ap.add_argument("--chunk-rows", type=int, default=65536, help="rows per chunk")
    ap.add_argument("--model", default="ae", choices=["ae", "vae"], help="detector model")
    ap.add_argument("--method", default="reconstruction", help="score method")
    ap.add_argument("--json", default="bench/score_throughput.json", help="where to write the results")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_csv(tmp / "train.csv", 20_000, args.features, seed=1)
        subprocess.run([sys.executable, "-m", "vaekit.cli", "detect", "fit", str(tmp / "train.csv"), "--out", str(tmp / "det"),
                        "--id-column", "id", "--model", args.model, "--method", args.method, "--steps", "300", "--quiet"], check=True)
        rows = []
        for n in args.rows:
            data = tmp / f"rows{n}.csv"
            t = time.perf_counter()
            write_csv(data, n, args.features)
            gen = time.perf_counter() - t
            out = subprocess.run([sys.executable, "-c", CHILD, "detect", "score", str(tmp / "det"), str(data), "--out", str(tmp / "s.csv"),
                                  "--id-column", "id", "--chunk-rows", str(args.chunk_rows), "--quiet"],
                                 check=True, capture_output=True, text=True).stdout
            rc, secs, rss = out.split("RESULT")[-1].split()
            n_out = sum(1 for _ in open(tmp / "s.csv")) - 1
            assert n_out == n, (n_out, n)
            rows.append({"rows": n, "csv_mb": round(data.stat().st_size / 2**20, 1), "seconds": round(float(secs), 2),
                         "rows_per_s": round(n / float(secs)), "peak_rss_mb": round(int(rss) / 1024, 1), "write_s": round(gen, 1)})
            data.unlink()
    print(f"vaekit detect score, {args.model}/{args.method}, {args.features} features, --chunk-rows {args.chunk_rows}")
    print(f"{'rows':>10} {'CSV MB':>8} {'seconds':>8} {'rows/s':>10} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['rows']:>10} {r['csv_mb']:>8} {r['seconds']:>8} {r['rows_per_s']:>10} {r['peak_rss_mb']:>12}")
    with open(args.json, "w") as f:
        json.dump({"features": args.features, "chunk_rows": args.chunk_rows, "model": args.model, "method": args.method,
                   "results": rows}, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
