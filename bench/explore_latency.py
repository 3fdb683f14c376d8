"""Round-trip latency of `vaekit explore`'s /decode over HTTP, for the models a course explores.

    OMP_NUM_THREADS=1 python bench/explore_latency.py [--requests 300] [--threads 1]

For each model (the 2-D and 20-D MLP VAEs, 784-400-d, and the convolutional VAE, d = 100), the
script saves a model fitted for one epoch on 500 embedded MNIST digits (the cost of a decode does
not depend on the weights), starts `vaekit explore RUN --port 0 --no-browser` as its own process,
and sends GET /decode?z=... over one keep-alive connection, as the page does while the pointer is
dragged: each request waits for the previous answer, and z walks a path across the plane. It
prints p50 / p95 / max of the round trip, split into what the server spends decoding and encoding
the PNG (the same calls in this process) and the rest (HTTP and the socket). The target is well
under 50 ms per round trip; `uptime` is printed beside the table.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = [
    # name, estimator parameters
    ("MLP VAE, 2-D", dict(latent_dim=2, hidden=(400,))),
    ("MLP VAE, 20-D", dict(latent_dim=20, hidden=(400,))),
    ("conv VAE, 100-D", dict(latent_dim=100, architecture="conv")),
]


def path(d: int, n: int) -> np.ndarray:
    """n codes along a drag: a circle of radius 2 in the first two dimensions, the rest at 0.3."""
    t = np.linspace(0, 2 * np.pi, n)
    z = np.full((n, d), 0.3)
    z[:, 0], z[:, 1 % d] = 2 * np.cos(t), 2 * np.sin(t)
    return z


def pct(ms: list[float]) -> tuple[float, float, float]:
    a = np.asarray(ms)
    return float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(a.max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300, help="timed /decode requests per model (after 20 warm-up ones)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in the server (OMP_NUM_THREADS)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import vaekit
    from vaekit.data import load_dataset
    from vaekit.explore import Explorer

    train = load_dataset("embedded", "train", limit=500)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, params in MODELS:
            est = vaekit.VAE(epochs=1, batch_size=100, device="cpu", **params).fit(train.X)
            run = est.save(Path(tmp) / name.replace(" ", "").replace(",", ""))
            d = est.model_.config.code_dim
            zs = path(d, args.requests + 20)
            # In-process: the model's decode, then decode + PNG (what the server does per request).
            ex = Explorer(est, load_dataset("embedded", "test", limit=200))
            model_ms, server_ms = [], []
            for z in zs:
                t = time.perf_counter()
                est.decode(z[None].astype(np.float32))
                model_ms.append(1000 * (time.perf_counter() - t))
                t = time.perf_counter()
                ex.decode_png(z[None].astype(np.float32))
                server_ms.append(1000 * (time.perf_counter() - t))
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            proc = subprocess.Popen([sys.executable, "-m", "vaekit", "explore", str(run), "--port", "0", "--no-browser"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            try:
                line = proc.stdout.readline()
                m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
                if not m:
                    raise SystemExit(f"the server did not start: {line}{proc.stderr.read()}")
                conn = http.client.HTTPConnection("127.0.0.1", int(m.group(1)), timeout=30)
                http_ms = []
                for z in zs:
                    q = ",".join(f"{v:.4f}" for v in z)
                    t = time.perf_counter()
                    conn.request("GET", f"/decode?z={q}")
                    r = conn.getresponse()
                    body = r.read()
                    http_ms.append(1000 * (time.perf_counter() - t))
                    assert r.status == 200 and body[:4] == b"\x89PNG", (r.status, body[:80])
                conn.close()
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            warm = slice(20, None)  # the first requests pay for lazy initialisation
            rows.append((name, pct(model_ms[warm]), pct(server_ms[warm]), pct(http_ms[warm])))

    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"/decode round trips, {args.requests} per model, torch threads {args.threads}; uptime: {load}")
    print(f"{'model':<18}{'decode p50':>11}{'+PNG p50':>10}{'HTTP p50':>10}{'HTTP p95':>10}{'HTTP max':>10}{'p95 / 50 ms':>13}")
    for name, model, server, http_ in rows:
        print(f"{name:<18}{model[0]:>9.2f}ms{server[0]:>8.2f}ms{http_[0]:>8.2f}ms{http_[1]:>8.2f}ms{http_[2]:>8.2f}ms{http_[1] / 50:>13.3f}")
    print("decode: est.decode alone; +PNG: decode and PNG encoding (the server's work); HTTP: the full round trip from a client")


if __name__ == "__main__":
    main()
