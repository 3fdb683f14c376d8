"""The novelty detector's threshold: the share of new normal rows and of anomalies it flags.

Normal-only protocol (``bench/anomaly_corpus.py``: fitted on a seeded half of a table's normal rows,
scoring the other half and every anomaly), ``VAEDetector(novelty=True)`` and
``AutoencoderDetector(novelty=True)`` at ``contamination`` 0.05 (``--contamination``). Two
thresholds on the same fitted detector, so the scores are the same and only the threshold differs:

* **in-sample**: the 1 - contamination quantile of the training rows' own scores
  (``decision_scores_``), what a PyOD detector does;
* **held-out** (the detector's ``threshold_``): the split-conformal threshold of a twin detector's
  scores of a fifth of the training rows it did not train on (``calibration_scores_``).

For each: the share of the held-out *normal* rows flagged (false-positive rate; the target is at
most ``contamination``) and of the anomalies flagged (recall), percent, and the fit's seconds.

    PYTHONPATH=src python bench/novelty_threshold.py --json bench/novelty_threshold.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anomaly_corpus import DATA, split, tables  # noqa: E402

from vaekit.anomaly import AutoencoderDetector, VAEDetector  # noqa: E402


def measure(det_cls, X_fit, X_score, y_score, contamination: float, seed: int) -> dict:
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = det_cls(novelty=True, contamination=contamination, random_state=seed).fit(X_fit)
        s = det.decision_function(X_score)
    secs = time.perf_counter() - t
    normal, anom = y_score == 0, y_score == 1
    out = {"seconds": secs}
    for name, thr in (("in_sample", np.quantile(det.decision_scores_, 1 - contamination)), ("held_out", det.threshold_)):
        out[name] = {"normal_flagged": 100 * float(np.mean(s[normal] > thr)), "anomalies_flagged": 100 * float(np.mean(s[anom] > thr))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contamination", type=float, default=0.05, help="the detectors' contamination (default 0.05)")
    ap.add_argument("--seed", type=int, default=0, help="the normal rows' split and the detectors' seed")
    ap.add_argument("--max-rows", type=int, default=10000, help="subsample larger tables to this many rows (seeded)")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    if not (DATA / "adbench-dev").is_dir():
        raise SystemExit(f"no ADBench tables in {DATA / 'adbench-dev'}; this bench reads the shared data beside the repository")
    chosen = [t for t in tables() if t.source == "adbench" or t.name in ("breast_cancer", "wine")]
    results: dict = {}
    print(f"normal-only protocol, contamination {args.contamination:g}: % of new normal rows / % of anomalies flagged")
    print(f"{'table':<16} {'detector':<20} {'in-sample':>16} {'held-out':>16} {'fit+score s':>11}")
    for table in chosen:
        X, y = table.load(args.max_rows)
        X_fit, X_score, y_score = split(X, y, "normal-only", seed=args.seed)
        for det_cls in (VAEDetector, AutoencoderDetector):
            r = measure(det_cls, X_fit, X_score, y_score, args.contamination, args.seed)
            results.setdefault(table.name, {})[det_cls.__name__] = r
            cell = {k: f"{r[k]['normal_flagged']:5.1f} / {r[k]['anomalies_flagged']:5.1f}" for k in ("in_sample", "held_out")}
            print(f"{table.name:<16} {det_cls.__name__:<20} {cell['in_sample']:>16} {cell['held_out']:>16} {r['seconds']:11.1f}", flush=True)
    for det in ("VAEDetector", "AutoencoderDetector"):
        for k in ("in_sample", "held_out"):
            fp = [results[t][det][k]["normal_flagged"] for t in results]
            rec = [results[t][det][k]["anomalies_flagged"] for t in results]
            print(f"mean over {len(fp)} tables, {det}, {k}: {np.mean(fp):.1f} % of new normal rows (median {np.median(fp):.1f}, "
                  f"worst {np.max(fp):.1f}), {np.mean(rec):.1f} % of anomalies")
    if args.json:
        args.json.write_text(json.dumps({"contamination": args.contamination, "seed": args.seed, "max_rows": args.max_rows,
                                         "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
