"""One integer check (``_array.check_int`` / ``is_int``): every argument that counts rejects a bool by name.

The check is written once; these pin that each place that uses it still names its
argument, tells the fix, and still takes NumPy integers as ints.
"""

from __future__ import annotations

import numpy as np
import pytest

import refprune
from refprune import data
from refprune._array import check_int, is_int, is_real, normalize_axis
from refprune.backends import get as backend


def test_is_int_and_is_real_reject_bools_and_take_numpy_scalars():
    assert is_int(3) and is_int(np.int64(3)) and not is_int(True) and not is_int(3.0) and not is_int("3")
    assert is_real(0.5) and is_real(np.float32(0.5)) and is_real(2) and not is_real(False) and not is_real("1")


def test_check_int_names_the_argument_and_converts():
    assert check_int("k", np.int64(4), minimum=1) == 4
    assert type(check_int("k", np.int64(4))) is int
    with pytest.raises(TypeError, match=r"^k must be an int \(a count\), got bool True$"):
        check_int("k", True, what=" (a count)")
    with pytest.raises(ValueError, match=r"^k must be >= 1, got k=0$"):
        check_int("k", 0, minimum=1)


W = np.arange(16.0).reshape(2, 8)
CALLS = {
    "prune_count n": (lambda v: refprune.prune_count(0.5, v), TypeError, "n must be an int"),
    "expected_l0 group_size": (lambda v: refprune.expected_l0(np.zeros(2), group_size=v), TypeError,
                               "group_size must be an int (parameters per gate)"),
    "nm_mask m": (lambda v: refprune.nm_mask(W, n=2, m=v), TypeError, "m must be an int"),
    "block_mask block": (lambda v: refprune.block_mask(W, block=(1, v), amount=0.5), TypeError, "block[1] must be an int"),
    "cosine_drop_fraction end": (lambda v: refprune.cosine_drop_fraction(0, initial=0.3, end=v), TypeError,
                                 "end must be an int"),
    "constant_sparsity step": (lambda v: refprune.constant_sparsity(v, target=0.5), TypeError, "step must be an int"),
    "normalize_axis": (lambda v: normalize_axis(v, 5), TypeError, "axis must be an int"),
    "num_batches batch_size": (lambda v: data.num_batches(10, v), TypeError, "batch_size must be an int >= 1"),
    "subset n": (lambda v: data.subset(None, v), ValueError, "subset must be an int >= 0"),
    "limit_threads": (lambda v: backend("numpy").limit_threads(v), ValueError, "threads must be an int >= 1"),
    "rng seed": (lambda v: backend("numpy").rng(v), ValueError, "seed must be a non-negative int"),
}


@pytest.mark.parametrize("where", sorted(CALLS))
def test_every_count_rejects_a_bool_by_name(where):
    call, error, message = CALLS[where]
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")) as info:
        call(True)
    assert "bool" in str(info.value) or "True" in str(info.value)


@pytest.mark.parametrize("where", ["prune_count n", "nm_mask m", "cosine_drop_fraction end", "num_batches batch_size",
                                   "normalize_axis"])
def test_numpy_integers_count_as_ints(where):
    CALLS[where][0](np.int64(4))
