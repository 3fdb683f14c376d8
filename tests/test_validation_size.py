"""The held-out validation rows: --val-fraction of the training data, at most MAX_VALIDATION of them.

Every epoch ends with a pass over them, so a tenth of a very large split (sprites: 663 552 images)
would cost more than short runs train; small and mid-sized data keep their exact fraction.
"""

from __future__ import annotations

import numpy as np
import torch

from vaekit.train import MAX_VALIDATION, TrainConfig, place_data, split_validation, validation_size


def test_the_fraction_is_kept_below_the_cap_and_capped_above_it():
    assert validation_size(60_000, 0.1) == 6_000
    assert validation_size(1_000, 0.25) == 250
    assert validation_size(100_000, 0.1) == MAX_VALIDATION == 10_000
    assert validation_size(663_552, 0.1) == MAX_VALIDATION
    assert validation_size(663_552, 0.0) == 0


def test_the_split_is_a_seeded_partition_of_the_rows():
    tr, va = split_validation(120_000, 0.1, seed=3)
    assert len(va) == MAX_VALIDATION and len(tr) == 120_000 - MAX_VALIDATION
    assert torch.equal(torch.sort(torch.cat([tr, va])).values, torch.arange(120_000))
    tr2, va2 = split_validation(120_000, 0.1, seed=3)
    assert torch.equal(va, va2) and torch.equal(tr, tr2)
    assert not torch.equal(va, split_validation(120_000, 0.1, seed=4)[1])


def test_training_data_placed_for_a_fit_holds_out_the_capped_count():
    X = torch.from_numpy(np.random.default_rng(0).random((MAX_VALIDATION * 2 + 10, 3)).astype(np.float32))
    Xt, _, Xv, _ = place_data(X, None, None, None, TrainConfig(val_fraction=0.9, device="cpu"), torch.device("cpu"))
    assert len(Xv) == MAX_VALIDATION and len(Xt) == len(X) - MAX_VALIDATION
