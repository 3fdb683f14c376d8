#!/usr/bin/env bash
# The real-data proofs of docs/results.md: 2-D VAEs on MNIST and Frey Face (manifold, scatter) and a
# 20-D VAE on MNIST (test ELBO, importance-weighted NLL with k=5000, probe accuracy).
# Usage: DATA=../shared/data bash scripts/proofs.sh   (writes runs/proof-* and docs/figures/*.png)
set -euo pipefail
DATA=${DATA:-../shared/data}
V=${VAEKIT:-vaekit}
mkdir -p docs/figures
$V train --dataset mnist --data-dir "$DATA" --latent-dim 2 --epochs 30 --out runs/proof-mnist-2d --overwrite --no-report --quiet
$V plot runs/proof-mnist-2d manifold -n 20 --out docs/figures/mnist-2d-manifold.png
$V plot runs/proof-mnist-2d latent --out docs/figures/mnist-2d-latent.png
$V plot runs/proof-mnist-2d interpolate --out docs/figures/mnist-2d-interpolate.png
$V train --dataset frey-face --data-dir "$DATA" --latent-dim 2 --hidden 200 --likelihood gaussian --learn-sigma \
    --batch-size 100 --epochs 300 --out runs/proof-frey-2d --overwrite --no-report --quiet
$V plot runs/proof-frey-2d manifold -n 12 --out docs/figures/frey-2d-manifold.png
$V train --dataset mnist --data-dir "$DATA" --latent-dim 20 --binarize dynamic --epochs 50 --out runs/proof-mnist-20d --overwrite --no-report --quiet
$V evaluate runs/proof-mnist-20d --k 5000 --json docs/figures/mnist-20d-evaluate.json
$V plot runs/proof-mnist-20d samples --out docs/figures/mnist-20d-samples.png
$V plot runs/proof-mnist-20d reconstructions --out docs/figures/mnist-20d-reconstructions.png
