#!/bin/bash
# The FactorVAE discriminator's size, chosen on held-apart seeds (4 and 5; the headline table uses 0-2):
# the default (3 x 256) against the paper's width (5 x 1000), 10 training minutes each, two runs side by side at
# one thread, then `vaekit evaluate --disentanglement`. Results: bench/factorvae_discriminator_pilot.json, which also
# holds seeds 0 and 1 of the headline bench run with the wide discriminator (there it scored below the plain VAE).
#     bash bench/factorvae_discriminator_pilot.sh [OUT=runs/fvae-pilot]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/fvae-pilot}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 PYTHONPATH=src
C="--dataset sprites --model conv-vae --latent-dim 10 --batch-size 64 --lr 0.001 --epochs 1000 --val-fraction 0.01 --threads 1
   --no-report --quiet --max-minutes 10 --log-every 200 --overwrite --objective factor-vae --factor-gamma 35 --discriminator-lr 0.001"
for seed in 4 5; do
  uptime
  python -m vaekit train $C --seed $seed --out "$OUT/small-s$seed" &
  python -m vaekit train $C --seed $seed --discriminator-hidden 1000,1000,1000,1000,1000 --out "$OUT/big-s$seed" &
  wait
  for v in small big; do
    python -m vaekit evaluate "$OUT/$v-s$seed" --disentanglement --quiet --json "$OUT/$v-s$seed/dis.json" &
  done
  wait
done
