"""N:M and block masks: exact counts per group and per tile, the tie rule, edge tiles, bad input.

Every backend is compared with host references written out here with a sort key
(score descending, then position ascending), independent of refprune's code.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import refprune as rp

# ---------------------------------------------------------------- helpers


def _host(backend, x):
    return np.asarray(backend.to_numpy(x))


def _put(backend, host, dtype="float64"):
    host = np.asarray(host)
    return backend.xp.reshape(backend.asarray(host.reshape(-1), dtype=dtype), host.shape)


def _check(backend, mask, like, expected):
    assert type(mask) is type(like)
    assert backend.xp.isdtype(mask.dtype, "bool")
    assert rp._array.device_of(mask) == rp._array.device_of(like)
    np.testing.assert_array_equal(_host(backend, mask), expected)


def ref_nm(scores, n, m, axis):
    """Keep the n best of every m consecutive entries along ``axis``: sort key (-score, position)."""
    s = np.moveaxis(np.asarray(scores, dtype=np.float64), axis, -1)
    keep = np.zeros(s.shape, dtype=bool)
    for idx in np.ndindex(s.shape[:-1]):
        row = s[idx]
        for start in range(0, row.shape[0], m):
            group = row[start : start + m]
            order = sorted(range(m), key=lambda i: (-group[i], i))
            for i in order[:n]:
                keep[idx + (start + i,)] = True
    return np.moveaxis(keep, -1, axis)


def ref_tile_scores(s, block, pool):
    """Pooled score of every tile over its real entries, in float64, one tile at a time."""
    s = np.asarray(s, dtype=np.float64)
    grid = tuple(-(-n // b) for n, b in zip(s.shape, block))
    out = np.zeros(grid)
    for t in np.ndindex(grid):
        tile = s[tuple(slice(i * b, (i + 1) * b) for i, b in zip(t, block))]
        out[t] = {
            "l1": lambda x: np.sum(np.abs(x)),
            "l2": lambda x: np.sqrt(np.sum(x * x)),
            "max": np.max,
            "mean": np.mean,
        }[pool](tile)
    return out


def ref_block(w, block, k, pool, scores=None):
    s = np.abs(np.asarray(w, dtype=np.float64)) if scores is None else np.asarray(scores, dtype=np.float64)
    tiles = ref_tile_scores(s, block, pool)
    flat = tiles.reshape(-1)
    order = np.lexsort((np.arange(flat.size), -flat))
    keep_tiles = np.zeros(flat.size, dtype=bool)
    keep_tiles[order[: flat.size - k]] = True
    keep_tiles = keep_tiles.reshape(tiles.shape)
    out = keep_tiles
    for axis, b in enumerate(block):
        out = np.repeat(out, b, axis=axis)
    return out[tuple(slice(0, n) for n in np.shape(w))]


def _tied(rng, shape, levels=3):
    return rng.integers(-levels, levels + 1, size=shape).astype(np.float64) / 2


# ---------------------------------------------------------------- nm_mask


def test_nm_hand_worked(backend, dtype):
    w = _put(backend, [[0.1, -3.0, 2.0, 0.5, 1.0, 1.0, 1.0, 0.0]], dtype)
    _check(backend, rp.nm_mask(w, n=2, m=4), w, [[False, True, True, False, True, True, False, False]])
    # three tied 1.0s and a -1.0 (|.| ties it too): keep the first two positions
    w = _put(backend, [1.0, -1.0, 1.0, 1.0], dtype)
    _check(backend, rp.nm_mask(w, n=2, m=4), w, [True, True, False, False])
    _check(backend, rp.nm_mask(w, n=3, m=4), w, [True, True, True, False])
    _check(backend, rp.nm_mask(w, n=1, m=2), w, [True, False, True, False])


def test_nm_ties_prune_the_higher_position_in_every_group(backend):
    w = _put(backend, np.ones((3, 8)))
    expected = np.tile([True, True, False, False], (3, 2))
    _check(backend, rp.nm_mask(w, n=2, m=4), w, expected)
    z = _put(backend, np.zeros((2, 6)))
    _check(backend, rp.nm_mask(z, n=1, m=3), z, np.tile([True, False, False], (2, 2)))


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_nm_matches_reference_on_every_axis(backend, dtype, rng, axis):
    for n, m in [(2, 4), (1, 2), (1, 3), (0, 2), (2, 2), (3, 8), (5, 16)]:
        shape = [3, 4, 5]
        shape[axis] = 2 * m
        for host in (rng.normal(size=shape), _tied(rng, shape)):
            host = host.astype(dtype)
            w = _put(backend, host, dtype)
            mask = rp.nm_mask(w, n=n, m=m, axis=axis)
            _check(backend, mask, w, ref_nm(np.abs(host), n, m, axis))
            kept = np.moveaxis(_host(backend, mask), axis, -1).reshape(-1, m).sum(axis=1)
            assert (kept == n).all()


def test_nm_scores_are_ranked_as_given(backend, dtype, rng):
    w = _put(backend, np.ones((2, 8)), dtype)
    s_host = np.asarray([[-1.0, 5.0, 0.0, 5.0, 2.0, -np.inf, np.inf, 2.0], [0.0] * 8])
    mask = rp.nm_mask(w, n=2, m=4, scores=_put(backend, s_host, dtype))
    _check(backend, mask, w, [[False, True, False, True, True, False, True, False], [True, True, False, False] * 2])
    for _ in range(5):
        s = _tied(rng, (4, 12))
        got = rp.nm_mask(w if False else _put(backend, np.zeros((4, 12)), dtype), n=1, m=3, scores=_put(backend, s, dtype))
        np.testing.assert_array_equal(_host(backend, got), ref_nm(s, 1, 3, -1))


def test_nm_edge_values(backend, dtype):
    big = np.finfo(dtype).max
    tiny = np.finfo(dtype).smallest_subnormal
    host = np.asarray([big, -big, tiny, 0.0, np.inf, -np.inf, -0.0, 0.0], dtype=dtype)
    w = _put(backend, host, dtype)
    _check(backend, rp.nm_mask(w, n=2, m=4), w, [True, True, False, False, True, True, False, False])
    _check(backend, rp.nm_mask(w, n=1, m=8), w, [False] * 4 + [True] + [False] * 3)


def test_nm_empty_and_trivial_shapes(backend, dtype):
    e = _put(backend, np.zeros((0, 8)), dtype)
    _check(backend, rp.nm_mask(e, n=2, m=4), e, np.zeros((0, 8), dtype=bool))
    e2 = _put(backend, np.zeros((3, 0)), dtype)
    _check(backend, rp.nm_mask(e2, n=2, m=4), e2, np.zeros((3, 0), dtype=bool))
    one = _put(backend, [2.0, -1.0], dtype)
    _check(backend, rp.nm_mask(one, n=1, m=1), one, [True, True])
    _check(backend, rp.nm_mask(one, n=0, m=1), one, [False, False])


def test_nm_does_not_modify_inputs_and_is_idempotent(backend, rng):
    host = rng.normal(size=(4, 8))
    w = _put(backend, host)
    mask = rp.nm_mask(w, n=2, m=4)
    np.testing.assert_array_equal(_host(backend, w), host)
    again = rp.nm_mask(rp.apply_mask(w, mask), n=2, m=4)
    np.testing.assert_array_equal(_host(backend, again), _host(backend, mask))


def test_nm_bad_input(backend):
    w = _put(backend, np.ones((2, 8)))
    with pytest.raises(ValueError, match=r"w.shape\[1\]=8 is not a multiple of m=3"):
        rp.nm_mask(w, n=1, m=3)
    with pytest.raises(ValueError, match=r"w.shape\[0\]=2 is not a multiple of m=4"):
        rp.nm_mask(w, n=2, m=4, axis=0)
    with pytest.raises(ValueError, match="n must be <= m"):
        rp.nm_mask(w, n=5, m=4)
    with pytest.raises(ValueError, match="m must be >= 1"):
        rp.nm_mask(w, n=0, m=0)
    with pytest.raises(ValueError, match="n must be >= 0"):
        rp.nm_mask(w, n=-1, m=4)
    for bad in (2.0, True, "2", None):
        with pytest.raises(TypeError, match="n must be an int"):
            rp.nm_mask(w, n=bad, m=4)
        with pytest.raises(TypeError, match="m must be an int"):
            rp.nm_mask(w, n=2, m=bad)
    with pytest.raises(ValueError, match="0-d"):
        rp.nm_mask(backend.xp.reshape(_put(backend, [1.0]), ()), n=1, m=1)
    with pytest.raises(ValueError, match="axis"):
        rp.nm_mask(w, n=1, m=2, axis=2)
    with pytest.raises(ValueError, match="NaN"):
        rp.nm_mask(_put(backend, [1.0, np.nan, 2.0, 3.0]), n=2, m=4)
    with pytest.raises(ValueError, match="NaN"):
        rp.nm_mask(_put(backend, np.ones(4)), n=2, m=4, scores=_put(backend, [1.0, np.nan, 2.0, 3.0]))
    with pytest.raises(ValueError, match="same shape"):
        rp.nm_mask(w, n=2, m=4, scores=_put(backend, np.ones(8)))
    with pytest.raises(TypeError, match="floating"):
        rp.nm_mask(backend.asarray(np.ones((2, 8), dtype=np.int64)), n=2, m=4)


# ---------------------------------------------------------------- block_mask


def test_block_hand_worked_edge_tiles(backend, dtype):
    w = _put(backend, [[1.0, 1.0, 0.1, 0.1, 5.0], [1.0, 1.0, 0.1, 0.1, 5.0]], dtype)
    # tiles (2x2, 2x2, 2x1 edge): l1 4, 0.4, 10; mean 1, 0.1, 5; max 1, 0.1, 5; l2 2, 0.2, 7.07
    keep_2 = [[True, True, False, False, True]] * 2
    for pool in ("l1", "l2", "max", "mean"):
        _check(backend, rp.block_mask(w, block=(2, 2), amount=1, pool=pool), w, keep_2)
    # the edge tile holds 2 entries: l1 counts them (2.4 < 4), mean normalizes (1.2 > 1)
    e = _put(backend, [[1.0, 1.0, 1.2], [1.0, 1.0, 1.2]], dtype)
    _check(backend, rp.block_mask(e, block=2, amount=1, pool="l1"), e, [[True, True, False]] * 2)
    _check(backend, rp.block_mask(e, block=2, amount=1, pool="l2"), e, [[True, True, False]] * 2)
    _check(backend, rp.block_mask(e, block=2, amount=1, pool="mean"), e, [[False, False, True]] * 2)
    _check(backend, rp.block_mask(e, block=2, amount=1, pool="max"), e, [[False, False, True]] * 2)


def test_block_ties_prune_the_later_tile_first(backend):
    w = _put(backend, np.ones((4, 6)))
    # 2x3 grid of 2x2 tiles, all tied: prune tiles 5, 4, 3 (row-major, from the back)
    expected = np.repeat(np.repeat(np.asarray([[True, True, True], [False, False, False]]), 2, 0), 2, 1)
    _check(backend, rp.block_mask(w, block=2, amount=3), w, expected)
    expected = np.repeat(np.repeat(np.asarray([[True, True, True], [True, False, False]]), 2, 0), 2, 1)
    _check(backend, rp.block_mask(w, block=(2, 2), amount=0.3), w, expected)  # 0.3 * 6 = 1.8 -> 2


@pytest.mark.parametrize("pool", ["l1", "l2", "max", "mean"])
def test_block_matches_reference(backend, dtype, rng, pool):
    for shape, block in [((8, 8), (2, 2)), ((7, 10), (3, 4)), ((5, 6), (1, 6)), ((9,), (4,)), ((3, 5, 4), (2, 2, 3)), ((4, 4), (4, 4))]:
        for host in (rng.normal(size=shape), _tied(rng, shape)):
            host = host.astype(dtype)
            w = _put(backend, host, dtype)
            tiles = math.prod(-(-n // b) for n, b in zip(shape, block))
            for k in sorted({0, 1, tiles // 2, tiles - 1, tiles}):
                mask = rp.block_mask(w, block=block, amount=k, pool=pool)
                _check(backend, mask, w, ref_block(host, block, k, pool))
            for amount in (0.25, 0.5, 0.9):
                k = rp.prune_count(amount, tiles)
                np.testing.assert_array_equal(
                    _host(backend, rp.block_mask(w, block=block, amount=amount, pool=pool)), ref_block(host, block, k, pool)
                )


def test_block_whole_tiles_and_exact_count(backend, rng):
    host = rng.normal(size=(10, 13))
    w = _put(backend, host)
    for block in [(2, 3), (3, 3), (1, 1), (10, 13), (4, 5)]:
        grid = tuple(-(-n // b) for n, b in zip(host.shape, block))
        for amount in (0, 0.2, 0.5, 1.0):
            mask = _host(backend, rp.block_mask(w, block=block, amount=amount))
            k = rp.prune_count(amount, math.prod(grid))
            pruned_tiles = 0
            for t in itertools.product(*(range(g) for g in grid)):
                tile = mask[tuple(slice(i * b, (i + 1) * b) for i, b in zip(t, block))]
                assert tile.all() or not tile.any(), (block, t)
                pruned_tiles += not tile.any()
            assert pruned_tiles == k


def test_block_one_by_one_is_magnitude_mask(backend, dtype, rng):
    host = _tied(rng, (6, 7)).astype(dtype)
    w = _put(backend, host, dtype)
    for amount in (0, 5, 0.5, 1.0):
        for pool in ("l1", "l2", "max", "mean"):
            np.testing.assert_array_equal(
                _host(backend, rp.block_mask(w, block=1, amount=amount, pool=pool)),
                _host(backend, rp.magnitude_mask(w, amount=amount)),
            )


def test_block_scores_pooled_with_their_sign(backend, dtype):
    w = _put(backend, np.ones((2, 6)), dtype)
    s = _put(backend, [[-3.0, -3.0, 1.0, 1.0, 0.5, 0.5], [-3.0, -3.0, 1.0, 1.0, 0.5, 0.5]], dtype)
    # per 2x2 tile: l1 12, 4, 2; mean -3, 1, 0.5; max -3, 1, 0.5; l2 6, 2, 1
    _check(backend, rp.block_mask(w, block=2, amount=1, pool="l1", scores=s), w, [[True] * 4 + [False] * 2] * 2)
    _check(backend, rp.block_mask(w, block=2, amount=1, pool="l2", scores=s), w, [[True] * 4 + [False] * 2] * 2)
    _check(backend, rp.block_mask(w, block=2, amount=1, pool="mean", scores=s), w, [[False] * 2 + [True] * 4] * 2)
    _check(backend, rp.block_mask(w, block=2, amount=1, pool="max", scores=s), w, [[False] * 2 + [True] * 4] * 2)


def test_block_float32_and_float64_agree(backend, rng):
    """Pooled sums are float64 in a fixed order: a float32 and a float64 copy give one mask."""
    host = rng.normal(size=(12, 20)).astype(np.float32)
    for pool in ("l1", "l2", "mean"):
        a = rp.block_mask(_put(backend, host, "float32"), block=(3, 4), amount=0.5, pool=pool)
        b = rp.block_mask(_put(backend, host.astype(np.float64)), block=(3, 4), amount=0.5, pool=pool)
        np.testing.assert_array_equal(_host(backend, a), _host(backend, b))


def test_block_extreme_values(backend, dtype):
    big = float(np.finfo(dtype).max)
    host = np.asarray([[big, big, 1.0, 1.0], [big, big, 2.0, 2.0]], dtype=dtype)
    w = _put(backend, host, dtype)
    for pool in ("l1", "l2", "max", "mean"):  # float64 sums: no overflow for float32 weights
        _check(backend, rp.block_mask(w, block=2, amount=1, pool=pool), w, [[True, True, False, False]] * 2)
    inf = _put(backend, [[np.inf, 0.0, 1.0, 1.0]], dtype)
    _check(backend, rp.block_mask(inf, block=(1, 2), amount=1), inf, [[True, True, False, False]])
    both = _put(backend, [[np.inf, -np.inf, 1.0, 1.0]], dtype)
    with pytest.raises(ValueError, match="inf and -inf"):
        rp.block_mask(_put(backend, np.ones((1, 4)), dtype), block=(1, 2), amount=1, pool="mean", scores=both)
    _check(backend, rp.block_mask(_put(backend, np.ones((1, 4)), dtype), block=(1, 2), amount=1, pool="l1", scores=both),
           inf, [[True, True, False, False]])


def test_block_empty_and_edge_shapes(backend, dtype):
    e = _put(backend, np.zeros((0, 5)), dtype)
    _check(backend, rp.block_mask(e, block=2, amount=0.5), e, np.ones((0, 5), dtype=bool))
    v = _put(backend, [3.0, 1.0, 2.0, 0.5, 4.0], dtype)
    _check(backend, rp.block_mask(v, block=2, amount=1), v, [True, True, False, False, True])  # l1 4, 2.5, 4
    _check(backend, rp.block_mask(v, block=10, amount=1), v, [False] * 5)


def test_block_bad_input(backend):
    w = _put(backend, np.ones((4, 4)))
    with pytest.raises(ValueError, match="one size per axis"):
        rp.block_mask(w, block=(2,), amount=1)
    with pytest.raises(ValueError, match=r"block\[1\] must be >= 1"):
        rp.block_mask(w, block=(2, 0), amount=1)
    with pytest.raises(TypeError, match="block"):
        rp.block_mask(w, block=2.0, amount=1)
    with pytest.raises(TypeError, match=r"block\[0\]"):
        rp.block_mask(w, block=(2.0, 2), amount=1)
    with pytest.raises(ValueError, match="pool"):
        rp.block_mask(w, block=2, amount=1, pool="l3")
    with pytest.raises(ValueError, match="count"):
        rp.block_mask(w, block=2, amount=5)  # 4 tiles only
    with pytest.raises(ValueError, match="amount"):
        rp.block_mask(w, block=2, amount=1.5)
    with pytest.raises(ValueError, match="rounding"):
        rp.block_mask(w, block=2, amount=0.5, rounding="up")
    with pytest.raises(ValueError, match="0-d"):
        rp.block_mask(backend.xp.reshape(_put(backend, [1.0]), ()), block=(), amount=0)
    with pytest.raises(ValueError, match="w contains NaN"):
        rp.block_mask(_put(backend, [[1.0, np.nan], [1.0, 1.0]]), block=1, amount=1)
    with pytest.raises(ValueError, match="scores contains NaN"):
        rp.block_mask(w, block=2, amount=1, scores=_put(backend, np.full((4, 4), np.nan)))
    with pytest.raises(ValueError, match="same shape"):
        rp.block_mask(w, block=2, amount=1, scores=_put(backend, np.ones((2, 2))))


# ---------------------------------------------------------------- agreement with torch.ao.pruning


def _ao_mask(host, **config):
    torch = pytest.importorskip("torch")
    ao = pytest.importorskip("torch.ao.pruning")
    lin = torch.nn.Linear(host.shape[1], host.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(host))
    model = torch.nn.Sequential(lin)
    sparsifier = ao.WeightNormSparsifier(**config)
    sparsifier.prepare(model, config=[{"tensor_fqn": "0.weight"}])
    sparsifier.step()
    return model[0].parametrizations.weight[0].mask.detach().numpy().astype(bool)


def _distinct(rng, shape):
    n = math.prod(shape)
    return ((rng.permutation(n) + 1.0) / n * rng.choice([-1.0, 1.0], size=n)).reshape(shape)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (3, 4), (1, 2), (4, 8)])
def test_nm_agrees_with_torch_ao_weight_norm_sparsifier(rng, n, m):
    """``WeightNormSparsifier(sparsity_level=1, sparse_block_shape=(1, m), zeros_per_block=m-n)`` is N:M
    along the rows of a (out, in) weight; with distinct magnitudes it matches ``nm_mask(axis=-1)``."""
    for shape in [(4, 16), (7, 8 * m)]:
        host = _distinct(rng, shape)
        got = _ao_mask(host, sparsity_level=1.0, sparse_block_shape=(1, m), zeros_per_block=m - n)
        np.testing.assert_array_equal(got, rp.nm_mask(host, n=n, m=m))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("block", [(1, 4), (2, 2), (2, 4), (3, 3)])
def test_block_agrees_with_torch_ao_weight_norm_sparsifier(rng, block):
    """Tiles ranked by ``avg_pool2d(|w|^p)`` with ``ceil_mode``, the mean over each tile's real entries:
    ``pool="mean"`` for ``norm=1`` on every shape (edge tiles included), ``pool="l2"`` for ``norm=2``
    where every tile is whole. The count agrees where torch's ``round(s * tiles)`` (binary,
    at most tiles - 1) equals ``prune_count``."""
    for shape in [(6, 12), (7, 10), (12, 12)]:
        host = rng.normal(size=shape)  # continuous: no two tiles tie (torch's order among ties is unspecified)
        tiles = math.prod(-(-a // b) for a, b in zip(shape, block))
        whole = all(a % b == 0 for a, b in zip(shape, block))
        for sparsity in (0.25, 0.5, 0.75):
            if round(sparsity * tiles) != rp.prune_count(sparsity, tiles):
                continue
            zeros = block[0] * block[1]
            got = _ao_mask(host, sparsity_level=sparsity, sparse_block_shape=block, zeros_per_block=zeros, norm=1)
            np.testing.assert_array_equal(got, rp.block_mask(host, block=block, amount=sparsity, pool="mean"))
            if whole:
                got = _ao_mask(host, sparsity_level=sparsity, sparse_block_shape=block, zeros_per_block=zeros, norm=2)
                np.testing.assert_array_equal(got, rp.block_mask(host, block=block, amount=sparsity, pool="l2"))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_torch_ao_differences_worked_examples():
    """The documented differences (README, "Where refprune deliberately differs")."""
    # 1. l2 of a partial tile: torch ranks by the mean of w^2 over the tile, refprune by the norm
    host = np.asarray([[1.0, 1.0, 1.2], [1.0, 1.0, 1.2]])
    torch_mask = _ao_mask(host, sparsity_level=0.5, sparse_block_shape=(2, 2), zeros_per_block=4, norm=2)
    np.testing.assert_array_equal(torch_mask, [[False, False, True]] * 2)  # mean squares 1 < 1.44
    np.testing.assert_array_equal(rp.block_mask(host, block=2, amount=1, pool="l2"), [[True, True, False]] * 2)  # 2 > 1.70
    # 2. torch never prunes every tile below sparsity 1: its count is capped at tiles - 1
    host = np.arange(1.0, 17.0).reshape(4, 4)
    torch_mask = _ao_mask(host, sparsity_level=0.9, sparse_block_shape=(2, 2), zeros_per_block=4, norm=1)
    assert int((~torch_mask).sum()) == 12  # round(0.9 * 4) = 4, capped at 3 tiles
    assert int((~rp.block_mask(host, block=2, amount=0.9, pool="mean")).sum()) == 16  # prune_count(0.9, 4) = 4
