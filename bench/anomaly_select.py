"""Choose the detectors' combined score by leave-one-group-out over the corpus, and say what it is worth.

Reads the files ``bench/anomaly_terms.py`` wrote. A candidate is a set of one to ``--max-terms``
score terms; its score is the sum of each term's robust z-score (median and IQR/1.349 of the term
on the rows the detector was fitted on, as ``method="combined"`` does). The objective is the mean
ROC-AUC over groups (a group's tables averaged first, so three MNIST-derived tables weigh as much
as one ADBench table) over both protocols, or (``--per-protocol``, as the shipped defaults were
chosen) over each protocol on its own, giving one pick per protocol.

For each group in turn, the candidate best on the *other* groups is picked and scored on the
group left out: the mean of those left-out scores is the cross-validated estimate of what the
selection rule gives on a table it has not seen. The in-sample number (the candidate best on all
groups, scored on the same groups) is printed beside it; only the first is an honest estimate.

    PYTHONPATH=src python bench/anomaly_select.py /tmp/anomaly_terms --seeds 0 1 2 --shipped [--family ae]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anomaly_corpus import PROTOCOLS  # noqa: E402

# The candidates. ``vae.knn5_feat`` (the fifth neighbour among *all* training rows) is dumped for
# comparison but is no candidate: a detector would have to keep every training row and compare
# each scored row with all of them (a 619 000-row table: 4e11 distances). ``knnf5`` / ``knnf10``
# are what it can afford: the 1024 saved rows (``knn_input`` with n_neighbors 5 or 10). The
# input-space view does not depend on the model, so the autoencoder's candidates share it.
TERMS = {
    "vae": ["vae.elbo", "vae.likelihood", "vae.reconstruction", "vae.knn", "vae.iso_feat", "vae.iso_featc", "vae.iso_zr",
            "vae.iso_z", "vae.knnf5", "vae.knnf10"],
    "ae": ["ae.reconstruction", "ae.knn", "ae.iso_zr", "vae.iso_feat", "vae.iso_featc", "vae.knnf5", "vae.knnf10"],
}
# The reference-set variants (``--references``): neighbour terms over a self-cleaned reference (``_c{q}``: 1024
# rows drawn from the training rows below the first pass's 1 - q quantile) and over up to 8192 training rows
# (``all``: for training rows known to be normal). A candidate mixes no two kinds of reference set, so that
# it is one detector's setting.
REFERENCES = {
    "vae": ["vae.knnfall5", "vae.knnfall10", "vae.knnall5"] + [f"vae.{t}_c{q}" for q in (5, 10, 20) for t in ("knnf10", "knn")]
    + [f"vae.knnf10_c{q}" for q in (30, 40, 50)],
    "ae": ["vae.knnfall5", "vae.knnfall10", "ae.knnall5"] + [f"ae.{t}_c{q}" for q in (5, 10, 20) for t in ("knnf10", "knn")]
    + [f"ae.knnf10_c{q}" for q in (30, 40, 50)],
}
BASELINES = ["base.iso", "base.knn5"]


# The rule behind the shipped defaults (``--shipped``): each protocol on its own, among the candidates
# one detector setting can be (one reference set and one n_neighbors per protocol, no isolation
# forest, which vaekit does not ship) that include the model's own view of a row.
SHIPPED = {
    "vae": {"require": ["vae.elbo", "vae.likelihood"],
            "exclude": ["vae.knnfall10", "vae.iso_feat", "vae.iso_featc", "vae.iso_zr", "vae.iso_z"]},
    "ae": {"require": ["ae.reconstruction", "ae.knn", "ae.knnall5", "ae.knn_c5", "ae.knn_c10", "ae.knn_c20"],
           "exclude": ["vae.knnfall10", "vae.iso_feat", "vae.iso_featc", "ae.iso_zr"]},
}


def reference_kind(term: str) -> str:
    """'all', 'c5' / 'c10' / 'c20', or '' (the 1024 random rows, or no reference set)."""
    if "knnfall" in term or "knnall" in term:
        return "all"
    return term.rsplit("_", 1)[1] if "_c" in term else ("random" if term.split(".")[1] in ("knn", "knnf5", "knnf10") else "")


def consistent(cand) -> bool:
    return len({reference_kind(t) for t in cand} - {""}) <= 1


def robust_z(fit: np.ndarray, score: np.ndarray) -> np.ndarray:
    med = np.median(fit)
    q75, q25 = np.percentile(fit, [75, 25])
    scale = (q75 - q25) / 1.349
    if not scale > 0:
        scale = fit.std() or 1.0
    return (score - med) / scale


def load(folder: Path, seeds):
    """{(protocol, table): {term: z-scores of the scored rows, 'y': labels}} and {table: group}."""
    data, groups = {}, {}
    for f in sorted(folder.glob("*.npz")):
        if f.name.endswith(".tmp.npz"):
            continue
        table, protocol, seed = f.stem.split("__")
        if int(seed[1:]) not in seeds:
            continue
        d = np.load(f)
        groups[table] = str(d["group"])
        terms = {k.split("@")[0] for k in d.files if k.endswith("@fit")}
        entry = {t: robust_z(d[f"{t}@fit"], d[f"{t}@score"]) for t in terms}
        entry["y"] = d["y"]
        data[(protocol, table, seed)] = entry
    return data, groups


def auc_table(data, candidates):
    """{candidate: {(protocol, table, seed): ROC-AUC %}}."""
    out = defaultdict(dict)
    for key, entry in data.items():
        for cand in candidates:
            s = sum(entry[t] for t in cand)
            out[cand][key] = 100 * roc_auc_score(entry["y"], s)
    return out


def by_group(aucs: dict, groups: dict, protocol: str | None = None) -> dict[str, float]:
    """{group: mean ROC-AUC of its tables (and seeds)}, one protocol or both."""
    acc = defaultdict(list)
    for (p, table, _), v in aucs.items():
        if protocol is None or p == protocol:
            acc[groups[table]].append(v)
    return {g: float(np.mean(v)) for g, v in acc.items()}


def objective(aucs: dict, groups: dict, keep, protocols=PROTOCOLS) -> float:
    vals = [v for p in protocols for g, v in by_group(aucs, groups, p).items() if g in keep]
    return float(np.mean(vals))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--family", choices=list(TERMS), default="vae")
    ap.add_argument("--max-terms", type=int, default=3)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--show", type=int, default=12, help="in-sample best candidates listed")
    ap.add_argument("--references", action="store_true", help="also the self-cleaned and 8192-row reference sets")
    ap.add_argument("--per-protocol", action="store_true", help="choose for each protocol on that protocol alone")
    ap.add_argument("--require", nargs="*", default=[], help="keep only candidates with at least one of these terms")
    ap.add_argument("--exclude", nargs="*", default=[], help="terms left out of the candidates")
    ap.add_argument("--shipped", action="store_true", help="the rule behind the shipped defaults (see SHIPPED): implies "
                    "--references --per-protocol and its --require / --exclude")
    args = ap.parse_args()
    if args.shipped:
        args.references = args.per_protocol = True
        args.require, args.exclude = SHIPPED[args.family]["require"], SHIPPED[args.family]["exclude"]
    data, groups = load(args.folder, set(args.seeds))
    terms = [t for t in TERMS[args.family] + (REFERENCES[args.family] if args.references else []) if t not in args.exclude]
    cands = [c for r in range(1, args.max_terms + 1) for c in itertools.combinations(terms, r) if consistent(c)
             and (not args.require or set(c) & set(args.require))]
    cands += [(b,) for b in BASELINES]
    aucs = auc_table(data, cands)
    all_groups = sorted(set(groups.values()))
    print(f"{len(data)} (protocol, table, seed) files, {len(all_groups)} groups, {len(cands)} candidates")
    # One rule for both protocols, or (--per-protocol) one for each, chosen on that protocol alone.
    rules = {p: (p,) for p in PROTOCOLS} if args.per_protocol else {p: PROTOCOLS for p in PROTOCOLS}
    search = [c for c in cands if not c[0].startswith("base.")]
    ranked = {p: sorted(search, key=lambda c, r=r: -objective(aucs[c], groups, all_groups, r)) for p, r in rules.items()}
    for p in (PROTOCOLS if args.per_protocol else PROTOCOLS[:1]):
        print(f"\nin-sample (every group), mean ROC-AUC over groups, ranked by {' and '.join(rules[p])}:")
        print(f"{'candidate':70s}" + "".join(f"{q:>14s}" for q in PROTOCOLS) + f"{'both':>8s}")
        for c in ranked[p][: args.show] + [(b,) for b in BASELINES]:
            per = [np.mean(list(by_group(aucs[c], groups, q).values())) for q in PROTOCOLS]
            print(f"{' + '.join(c):70s}" + "".join(f"{v:14.2f}" for v in per) + f"{np.mean(per):8.2f}")
    picks, held = defaultdict(dict), defaultdict(dict)
    for g in all_groups:
        rest = [x for x in all_groups if x != g]
        for p, r in rules.items():
            best = max(search, key=lambda c, r=r: objective(aucs[c], groups, rest, r))
            picks[p][g] = best
            held[p][g] = by_group(aucs[best], groups, p)[g]
    print("\nleave-one-group-out: the candidate picked without the group, scored on it (ROC-AUC %)")
    print(f"{'group':18s}" + "".join(f"{p + ' cv':>16s}{'forest':>8s}{'kNN':>8s}" for p in PROTOCOLS)
          + ("  picked (" + " | ".join(PROTOCOLS) + ")" if args.per_protocol else "  picked"))
    for g in all_groups:
        row = ""
        for p in PROTOCOLS:
            row += f"{held[p][g]:16.2f}{by_group(aucs[('base.iso',)], groups, p)[g]:8.2f}{by_group(aucs[('base.knn5',)], groups, p)[g]:8.2f}"
        shown = PROTOCOLS if args.per_protocol else PROTOCOLS[:1]
        print(f"{g[:18]:18s}{row}  " + " | ".join(" + ".join(picks[p][g]) for p in shown))
    for p in PROTOCOLS:
        cv = np.mean(list(held[p].values()))
        iso = np.mean(list(by_group(aucs[("base.iso",)], groups, p).values()))
        kn = np.mean(list(by_group(aucs[("base.knn5",)], groups, p).values()))
        worst = min(held[p][g] - by_group(aucs[("base.iso",)], groups, p)[g] for g in all_groups)
        print(f"{p:14s} cross-validated {cv:6.2f}   in-sample best {np.mean(list(by_group(aucs[ranked[p][0]], groups, p).values())):6.2f}"
              f"   IsolationForest {iso:6.2f}   kNN {kn:6.2f}   worst group vs forest {worst:+6.1f}")
    for p in (PROTOCOLS if args.per_protocol else PROTOCOLS[:1]):
        print(f"the candidate best on every group{' for ' + p if args.per_protocol else ''} (the default this rule gives): "
              f"{' + '.join(ranked[p][0])}")


if __name__ == "__main__":
    main()
