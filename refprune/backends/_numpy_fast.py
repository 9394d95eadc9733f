"""NumPy fast paths: exact-k mask selection, N:M and block masks, hard-concrete chains, im2col convolution, pooling, Adam.

The rules every fast path keeps (same results as the reference path, ``None`` for an
input it does not handle, inputs never written to) are in ``refprune._dispatch``;
``FAST_PATHS`` at the bottom lists this module's (op name -> function).

Masks: exact-k selection without a sort
---------------------------------------
``np_select_keep`` finds the score ``t`` at ascending rank ``k`` over one or several
arrays, keeps ``score >= t``, then un-keeps the surplus ties from the back (the tie
rule: among equal scores the higher flat index, the later array, is pruned first).
``t`` comes from a bracket: a strided sample (at most 2^17 scores, at most one in
64) gives ``lo`` and ``hi`` about four standard deviations of the sample quantile
either side of rank ``k``. One pass over the scores then counts those below ``lo``,
collects the few in ``[lo, hi]`` with their positions (the *band*) and writes the
keep mask of those above ``hi``; ``t`` is selected in the band and the band's
positions are filled in. If the sample was unlucky and ``t`` lies outside the
bracket, a second pass with a one-sided bracket finds it, so the answer never
depends on the sample. NumPy works through cache-sized chunks (``|w|`` is never
materialized in full), so the extra memory is the band plus the output masks, for
one array or a list. Torch CPU tensors use this code on the same memory
(``_torch_fast``); CUDA tensors and CuPy arrays the vectorized version in ``_select``.

Hard concrete: the reference's operations in the same order on two private buffers
(NumPy: bit-identical), without the ``where`` passes for ``u = 0`` and ``u = 1``.

Adam (NumPy): ``optim._adam_update``'s operations in the same order (bit-identical),
written into the three arrays it returns (and one scratch array for weight decay)
instead of a dozen temporaries; with numba installed, one compiled pass
(``_numba_kernels``, the same bits), as for ``relu_grad``.

Weight decay inside the L0 penalty (NumPy): each group's sum of squares and the gradient
``(wd * w) * p`` in one pass over ``w`` by chunks of whole rows (a row's sum is the same
reduction as in the reference), with no full-size temporaries.

These elementwise chains (Adam, the gates, the weight-decay terms) run in one thread:
split over two threads they were slower at every size up to 524,288 elements on the 2-core
development machine (a hand-off to a thread costs 40-60 us there), the L0 step included.

Convolution and pooling: torch's own convolution and its backward; for NumPy one
im2col copy of a strided window view (small batches: one gather by a cached index) and
one matmul, col2im by strided in-place adds into a private buffer, pooling by
elementwise maxima of strided views; the backward of windows that tile the input
(stride = kernel) in one product over a (C, Ho, kh, Wo, kw, N) view. These copies, adds
and products (and ``relu_grad``) run over disjoint channel (flat) slices on as many
threads as NumPy's BLAS may use (``np_parallel``); every element sees the same
operations in the same order, so the results do not depend on the thread count.

Shared with the other fast paths (their public names, nothing else is imported from here):
``np_select_keep``, ``np_nm_keep``, ``np_block_keep`` (``_torch_fast`` runs them on the
NumPy view of a CPU tensor), ``obs_sweep`` and ``Declined`` (SparseGPT's column loop for
NumPy and torch CPU), ``SAMPLE`` (``_select`` brackets rank ``k`` with the same sample size),
``np_threads`` and ``np_parallel`` (disjoint slices on BLAS's thread count).
"""

from __future__ import annotations

import functools
import math
import os

from . import _numba_kernels

#: At most this many scores are sampled to bracket the k-th (here and in ``_select``) ...
SAMPLE = 1 << 17
_MIN_STRIDE = 64  # ... and at most one in 64
_SMALL = 1 << 18  # below this many scores, select with one partition of a copy
_CHUNK_BYTES = 1 << 20  # NumPy chunk: fits the L2 cache


# ============================================================================ masks: NumPy


def _np_float_arrays(arrays):
    """The common dtype of 1-D float32/float64 NumPy arrays, or None."""
    import numpy as np

    dtype = None
    for a in arrays:
        if type(a) is not np.ndarray or a.ndim != 1 or a.dtype.char not in "fd":
            return None
        if dtype is None:
            dtype = a.dtype
        elif a.dtype != dtype:
            return None
    return dtype


def _bracket(sample, p, np):
    """``(lo, hi)`` around the ``p``-quantile of ``sample`` (None: unbounded). Sorts ``sample`` partly in place."""
    m = sample.shape[0]
    d = 4.0 * math.sqrt(m * p * (1.0 - p)) + 8.0
    il, ih = int(math.floor(p * m - d)), int(math.ceil(p * m + d))
    kth = [i for i in (il, ih) if 0 <= i < m]
    if kth:
        sample.partition(kth)
    lo = sample[il] if il >= 0 else None
    hi = sample[ih] if ih < m else None
    return lo, hi


def _np_chunks(flats, magnitude, np):
    """Yield ``(array_index, start, scores_chunk)`` over the arrays, ``|w|`` computed per chunk."""
    size = max(1, _CHUNK_BYTES // flats[0].dtype.itemsize)
    buf = np.empty(size, dtype=flats[0].dtype) if magnitude else None
    for a, f in enumerate(flats):
        for start in range(0, f.shape[0], size):
            c = f[start : start + size]
            if magnitude:
                c = np.abs(c, out=buf[: c.shape[0]])
            yield a, start, c


def _np_band(flats, lo, hi, magnitude, np):
    """One pass over the scores ``s`` with the bracket ``[lo, hi]`` (None: unbounded).

    Returns ``(below, vals, ids, pos, keeps)`` or None when a NaN is found:
    ``below = #(s < lo)``; the band ``lo <= s <= hi`` as its values, array ids and
    positions (array order, then index); and keep masks holding ``s > hi`` (certainly
    kept: the answer is at most ``hi``), to be completed on the band's positions.
    """
    size = max(1, _CHUNK_BYTES // flats[0].dtype.itemsize)
    below_buf = np.empty(size, dtype=bool)
    band_buf = np.empty(size, dtype=bool)
    keeps = [np.empty(f.shape[0], dtype=bool) for f in flats]
    below = 0
    vals, ids, pos = [], [], []
    for a, start, c in _np_chunks(flats, magnitude, np):
        m = c.shape[0]
        if np.isnan(c.max()):
            return None
        keep = keeps[a][start : start + m]
        if hi is None:
            keep[...] = False
            if lo is None:
                inside = band_buf[:m]
                inside[...] = True
            else:
                inside = np.greater_equal(c, lo, out=band_buf[:m])
                below += m - int(np.count_nonzero(inside))  # no NaN here: checked above
        else:
            inside = np.less_equal(c, hi, out=band_buf[:m])
            np.logical_not(inside, out=keep)
            if lo is not None:
                low = np.less(c, lo, out=below_buf[:m])
                below += int(np.count_nonzero(low))
                np.greater(inside, low, out=inside)  # inside & ~low
        ix = np.flatnonzero(inside)
        if ix.shape[0]:
            vals.append(c[ix])
            ids.append(np.full(ix.shape[0], a, dtype=np.intp))
            pos.append(ix + start)
    if not vals:
        empty = np.empty(0, dtype=np.intp)
        return below, np.empty(0, dtype=flats[0].dtype), empty, empty, keeps
    return below, np.concatenate(vals), np.concatenate(ids), np.concatenate(pos), keeps


def _np_small_select(flats, k, magnitude, np):
    """Keep masks for few scores: one concatenated copy and one partition."""
    s = np.concatenate(flats) if len(flats) > 1 else flats[0]
    s = np.abs(s) if magnitude else s
    if np.isnan(s.max()):
        return None
    n = s.shape[0]
    if k == 0 or k == n:
        return [np.full(f.shape[0], k == 0, dtype=bool) for f in flats]
    t = np.partition(s, k)[k]
    keep = s >= t
    excess = int(np.count_nonzero(keep)) - (n - k)
    if excess:
        ties = np.flatnonzero(s == t)
        keep[ties[ties.shape[0] - excess :]] = False
    out, start = [], 0
    for f in flats:
        out.append(keep[start : start + f.shape[0]])
        start += f.shape[0]
    return out


def np_select_keep(flats, k, magnitude):
    """Keep masks (one per 1-D array) pruning exactly ``k`` scores by the tie rule, or None.

    ``keep = score >= t`` with ``t`` the score at ascending rank ``k`` over all arrays
    together, surplus ties un-kept from the back (see the module docstring).

    Parameters
    ----------
    flats : list of numpy.ndarray
        1-D float32/float64 arrays of one dtype, selected as one concatenated array.
    k : int
        How many scores to prune, ``0 <= k <= sum of the lengths``.
    magnitude : bool
        Rank ``|score|`` instead of ``score``.

    Returns
    -------
    list of numpy.ndarray or None
        One bool mask per array; None for other inputs and when a NaN is found (the
        reference path then raises).
    """
    import numpy as np

    if _np_float_arrays(flats) is None:
        return None
    n = sum(f.shape[0] for f in flats)
    if n == 0:
        return [np.ones(0, dtype=bool) for _ in flats]
    if n <= _SMALL:
        return _np_small_select(flats, k, magnitude, np)
    if k == 0 or k == n:  # still a full pass: NaN must be reported
        for _, _, c in _np_chunks(flats, magnitude, np):
            if np.isnan(c.max()):
                return None
        return [np.full(f.shape[0], k == 0, dtype=bool) for f in flats]
    stride = max(_MIN_STRIDE, n // SAMPLE, 1)
    sample = np.concatenate([f[::stride] for f in flats])
    sample = np.abs(sample) if magnitude else sample
    if np.isnan(sample.max()):
        return None
    lo, hi = _bracket(sample, k / n, np)
    found = _np_band(flats, lo, hi, magnitude, np)
    if found is None:
        return None
    below, vals = found[0], found[1]
    if k < below:  # t < lo: the sample was unlucky; bracket again from below
        found = _np_band(flats, None, lo, magnitude, np)
    elif k >= below + vals.shape[0]:  # t > hi: bracket again from above
        found = _np_band(flats, hi, None, magnitude, np)
    below, vals, ids, pos, keeps = found
    j = k - below
    t = np.partition(vals, j)[j]
    in_band = vals >= t
    for a, keep in enumerate(keeps):
        sel = ids == a if len(keeps) > 1 else slice(None)
        keep[pos[sel]] = in_band[sel]
    kept = (n - below - vals.shape[0]) + int(np.count_nonzero(in_band))
    excess = kept - (n - k)
    if excess:
        tie = np.flatnonzero(vals == t)[-excess:]  # band order = array order, then index
        for a, p in zip(ids[tie].tolist(), pos[tie].tolist()):
            keeps[a][p] = False
    return keeps


def _np_mask_keep(flat, k, *, magnitude):
    keeps = np_select_keep([flat], k, magnitude)
    return None if keeps is None else keeps[0]


def _np_global_mask_keep(flats, k, *, magnitude):
    return np_select_keep(list(flats), k, magnitude)


#: Elements per chunk of the fused elementwise chains: the chunk's buffers stay in the
#: CPU's L2 cache between the chain's passes, instead of streaming each pass through memory.
_NP_CHUNK = 32768


def _np_chunks_of(size):
    """``slice`` objects covering ``range(size)`` in runs of ``_NP_CHUNK``."""
    return [slice(i, min(i + _NP_CHUNK, size)) for i in range(0, size, _NP_CHUNK)]


# ============================================================================ hard concrete: NumPy


def _np_gate_inputs(arrays):
    """The common float32/float64 dtype of NumPy arrays, or None."""
    import numpy as np

    dtype = None
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype.char not in "fd":
            return None
        if dtype is None:
            dtype = a.dtype
        elif a.dtype != dtype:
            return None
    return dtype


def _np_unit_interval(u, np):
    """True when every entry of ``u`` is in [0, 1] (False for NaN): two reductions."""
    return u.size == 0 or bool(np.minimum.reduce(u, axis=None) >= 0) and bool(np.maximum.reduce(u, axis=None) <= 1)


def _np_all_finite(x, np):
    """True when ``x`` has no inf or NaN (both propagate into min or max): two reductions."""
    if x.size == 0:
        return True
    return bool(np.isfinite(np.minimum.reduce(x, axis=None))) and bool(np.isfinite(np.maximum.reduce(x, axis=None)))


def _np_stretched(log_alpha, u, beta, s, a, positive, np):
    """``s`` of :func:`refprune.gates._stretched`, written into ``s`` (``a``, ``positive``: buffers of its shape).

    Same operations in the same order as the reference; ``u = 0`` and ``u = 1`` run
    through ``logit = -inf / +inf``, whose stable sigmoid is exactly 0 / 1.
    """
    with np.errstate(divide="ignore"):
        np.log(u, out=a)
        np.negative(u, out=s)
        np.log1p(s, out=s)
    np.subtract(a, s, out=a)  # logit(u)
    np.add(a, log_alpha, out=a)
    np.divide(a, beta, out=a)  # x
    np.greater_equal(a, 0, out=positive)
    np.abs(a, out=s)
    np.negative(s, out=s)
    np.exp(s, out=s)  # e = exp(-|x|)
    np.add(s, 1.0, out=a)  # 1 + e
    np.maximum(s, positive, out=s)  # numerator: 1 where x >= 0, else e (0 <= e <= 1; no masked write)
    np.divide(s, a, out=s)


def _np_gate_chunks(shape, *arrays):
    """Slices of the flattened ``shape`` to compute in, and ``arrays`` flattened for them.

    Chunks of ``_NP_CHUNK`` when every array has the full ``shape`` and is contiguous (their
    flat views are then free), else one chunk over the arrays as they are (broadcasting).
    """
    if all(a.shape == shape and a.flags.c_contiguous for a in arrays):
        size = math.prod(shape)
        return _np_chunks_of(size), [a.reshape(-1) for a in arrays], (size,)
    return [...], list(arrays), shape


def _np_hc_forward(log_alpha, u, *, beta, gamma, zeta):
    """``(z, s)`` of ``refprune.gates._sample_forward``, chunk by chunk, or None."""
    import numpy as np

    dtype = _np_gate_inputs((log_alpha, u))
    if dtype is None or not _np_unit_interval(u, np):
        return None
    shape = np.broadcast_shapes(log_alpha.shape, u.shape)
    chunks, (la, uu), flat_shape = _np_gate_chunks(shape, log_alpha, u)
    z, s = np.empty(flat_shape, dtype=dtype), np.empty(flat_shape, dtype=dtype)
    n = min(_NP_CHUNK, math.prod(flat_shape)) if len(chunks) > 1 else None
    a = np.empty(flat_shape if n is None else n, dtype=dtype)
    positive = np.empty(a.shape, dtype=bool)
    for sl in chunks:
        a_c, p_c = (a, positive) if n is None else (a[: sl.stop - sl.start], positive[: sl.stop - sl.start])
        s_c, z_c = s[sl], z[sl]
        _np_stretched(la[sl], uu[sl], beta, s_c, a_c, p_c, np)
        np.multiply(s_c, zeta - gamma, out=z_c)
        np.add(z_c, gamma, out=z_c)
        np.maximum(z_c, 0.0, out=z_c)  # clip(s_bar, 0, 1)
        np.minimum(z_c, 1.0, out=z_c)
    return z.reshape(shape), s.reshape(shape)


def _np_hc_backward(log_alpha, s, dz, *, beta, gamma, zeta):
    """``d log_alpha`` of ``refprune.gates._sample_backward``, chunk by chunk, or None."""
    import numpy as np

    dtype = _np_gate_inputs((log_alpha, s, dz))
    if dtype is None or dz.shape != s.shape or not _np_all_finite(dz, np):
        return None  # a non-finite dz outside (0, 1) must give 0, not 0 * inf
    chunks, (ss, dzz), flat_shape = _np_gate_chunks(s.shape, s, dz)
    g = np.empty(flat_shape, dtype=dtype)
    n = min(_NP_CHUNK, math.prod(flat_shape)) if len(chunks) > 1 else None
    a = np.empty(flat_shape if n is None else n, dtype=dtype)
    inside, below = np.empty(a.shape, dtype=bool), np.empty(a.shape, dtype=bool)
    for sl in chunks:
        bufs = (a, inside, below) if n is None else tuple(b[: sl.stop - sl.start] for b in (a, inside, below))
        (a_c, in_c, lo_c), s_c, g_c = bufs, ss[sl], g[sl]
        np.multiply(s_c, zeta - gamma, out=a_c)
        np.add(a_c, gamma, out=a_c)  # s_bar
        np.greater(a_c, 0, out=in_c)
        np.less(a_c, 1, out=lo_c)
        in_c &= lo_c
        np.subtract(1.0, s_c, out=a_c)
        np.multiply(s_c, a_c, out=a_c)  # s * (1 - s)
        np.multiply(a_c, in_c, out=a_c)  # 0 where the clip is active (a product: no masked write)
        np.multiply(dzz[sl], (zeta - gamma) / beta, out=g_c)
        np.multiply(g_c, a_c, out=g_c)
    g = g.reshape(s.shape)
    lead = g.ndim - log_alpha.ndim
    if lead > 0:
        g = np.sum(g, axis=tuple(range(lead)))
    axes = tuple(i for i, m in enumerate(log_alpha.shape) if m == 1 and g.shape[i] != 1)
    if axes:
        g = np.sum(g, axis=axes, keepdims=True)
    return np.reshape(g, log_alpha.shape).astype(log_alpha.dtype, copy=False)


# ============================================================================ conv and pooling: NumPy
#
# Layout as in the reference (refprune/nn/functional.py): work in (C, H, W, N) memory
# ("batch last") so that every window copy moves runs of Wo*N numbers, and return the
# NCHW view of (O, Ho, Wo, N) memory, which the next layer takes without a copy.
# The copies, col2im and pooling run over disjoint channel slices on as many threads as
# NumPy's BLAS may use (``np_parallel``): every output element sees the same operations
# in the same order whatever the split.

_NP_PARALLEL_MIN = 1 << 16  # elements: below this, handing work to a second thread costs more than it saves
_NP_RELU_CHUNK = 1 << 17  # relu_grad's chunk (one bool buffer): 0.97 ms vs 1.15 at _NP_CHUNK, LeNet-5's first layer
_NP_GATHER_RUN = 8  # im2col by a cached index where a window view's contiguous runs are this short or shorter
_np_blas = None
_np_pool = None  # (pid, ThreadPoolExecutor)


def np_threads():
    """How many threads NumPy's BLAS may use now (its threadpoolctl limit): the kernels below use as many."""
    global _np_blas
    if _np_blas is None:
        try:
            from threadpoolctl import ThreadpoolController

            _np_blas = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
        except ImportError:
            _np_blas = []
    return max((c.num_threads for c in _np_blas), default=1)


def np_parallel(task, n, *, size):
    """``task(part)`` for disjoint slices ``part`` covering ``range(n)``, on ``np_threads()`` threads.

    One call (``part`` the whole range) when ``size`` (the elements the work touches) is
    below ``_NP_PARALLEL_MIN`` or one thread is allowed. NumPy releases the GIL inside
    its loops, so the slices run at the same time; the caller's thread takes the first.
    """
    global _np_pool
    k = min(np_threads(), n) if size >= _NP_PARALLEL_MIN else 1
    if k <= 1:
        task(slice(0, n))
        return
    if _np_pool is None or _np_pool[0] != os.getpid() or _np_pool[1]._max_workers < k - 1:
        from concurrent.futures import ThreadPoolExecutor

        # a forked child inherits the pool object but not its threads: it makes its own
        _np_pool = (os.getpid(), ThreadPoolExecutor(max_workers=k - 1, thread_name_prefix="refprune-numpy"))
    bounds = [n * i // k for i in range(k + 1)]
    parts = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    futures = [_np_pool[1].submit(task, part) for part in parts[1:]]
    task(parts[0])
    for f in futures:
        f.result()


def _np_conv_inputs(x, w, b, dy=None):
    import numpy as np

    arrays = [a for a in (x, w, b, dy) if a is not None]
    if any(type(a) is not np.ndarray for a in arrays):
        return None
    dtype = x.dtype
    if dtype.char not in "fd" or any(a.dtype != dtype for a in arrays):
        return None
    return dtype


def _np_padded_batch_last(x, padding, np):
    """``x`` (N, C, H, W) as contiguous (C, H + 2 ph, W + 2 pw, N), zero-padded (no copy when it already is)."""
    n, c, h, w = x.shape
    ph, pw = padding
    xt = x.transpose(1, 2, 3, 0)
    if not (ph or pw):
        return np.ascontiguousarray(xt)
    out = np.zeros((c, h + 2 * ph, w + 2 * pw, n), dtype=x.dtype)
    out[:, ph : ph + h, pw : pw + w, :] = xt
    return out


def _np_windows(xt, kernel, stride, out_hw, np):
    """The view ``(C, kh, kw, Ho, Wo, N)`` of contiguous ``xt`` (C, Hp, Wp, N): entry ``[c, i, j, p, q, n] = xt[c, p*sh + i, q*sw + j, n]``."""
    c, _, wp, n = xt.shape
    sc, sy, sx, sn = xt.strides
    shape = (c, *kernel, *out_hw, n)
    strides = (sc, sy, sx, sy * stride[0], sx * stride[1], sn)
    return np.ndarray(shape, dtype=xt.dtype, buffer=xt, strides=strides)  # as_strided without its Python overhead


def _np_cols(xt, kernel, stride, out_hw, np):
    """im2col ``(C*kh*kw, Ho*Wo*N)`` of contiguous (C, Hp, Wp, N): one copy of a strided window view.

    Where that view's contiguous runs are short (small batches: ``Wo*N`` numbers, ``N`` with a
    column stride), one gather by a cached index is faster than a copy that loops run by run.
    """
    run = xt.shape[3] * (out_hw[1] if stride[1] == 1 else 1)
    if run <= _NP_GATHER_RUN:
        return xt.reshape(-1).take(_np_window_index(xt.shape, tuple(kernel), tuple(stride), tuple(out_hw)))
    win = _np_windows(xt, kernel, stride, out_hw, np)
    cols = np.empty(win.shape, dtype=xt.dtype)
    np_parallel(lambda part: np.copyto(cols[part], win[part]), win.shape[0], size=cols.size)
    c, kh, kw, ho, wo, n = win.shape
    return cols.reshape(c * kh * kw, ho * wo * n)


@functools.lru_cache(maxsize=64)
def _np_window_index(shape, kernel, stride, out_hw):
    """Flat positions in a contiguous array of ``shape`` (C, Hp, Wp, N) of its im2col matrix's entries (read-only)."""
    import numpy as np

    flat = np.arange(math.prod(shape), dtype=np.intp).reshape(shape)
    c, kh, kw, ho, wo, n = (*shape[:1], *kernel, *out_hw, shape[3])
    index = _np_windows(flat, kernel, stride, out_hw, np).reshape(c * kh * kw, ho * wo * n)
    index.flags.writeable = False
    return index


def _np_conv2d(x, w, b, *, stride, padding):
    import numpy as np

    if _np_conv_inputs(x, w, b) is None:
        return None
    return _np_conv2d_cols(x, w, b, stride, padding, np)[0]


def _np_conv2d_cols(x, w, b, stride, padding, np):
    """``(y, cols)``: the convolution and its im2col matrix."""
    n = x.shape[0]
    o, c, kh, kw = w.shape
    ho = (x.shape[2] + 2 * padding[0] - kh) // stride[0] + 1
    wo = (x.shape[3] + 2 * padding[1] - kw) // stride[1] + 1
    cols = _np_cols(_np_padded_batch_last(x, padding, np), (kh, kw), stride, (ho, wo), np)
    y = np.matmul(w.reshape(o, c * kh * kw), cols)  # (O, Ho*Wo*N)
    if b is not None:
        y += b[:, None]
    return y.reshape(o, ho, wo, n).transpose(3, 0, 1, 2), cols


def _np_conv2d_vjp(x, w, b, *, stride, padding):
    """``(y, backprop)`` of ``nn.functional.conv2d_vjp``: the backward reuses the forward's im2col, or None."""
    import numpy as np

    if _np_conv_inputs(x, w, b) is None:
        return None
    y, cols = _np_conv2d_cols(x, w, b, stride, padding, np)

    def backprop(dy, *, input_grad):
        if _np_conv_inputs(x, w, b, dy) is None:
            return None
        return _np_conv2d_grad_cols(x, w, b, dy, cols, stride=stride, padding=padding, input_grad=input_grad)

    return y, backprop


def _np_conv2d_grad(x, w, b, dy, *, stride, padding, input_grad=True):
    import numpy as np

    if _np_conv_inputs(x, w, b, dy) is None:
        return None
    cols = _np_cols(_np_padded_batch_last(x, padding, np), w.shape[2:], stride, dy.shape[2:], np)
    return _np_conv2d_grad_cols(x, w, b, dy, cols, stride=stride, padding=padding, input_grad=input_grad)


def _np_conv2d_grad_cols(x, w, b, dy, cols, *, stride, padding, input_grad):
    """``_np_conv2d_grad`` with the im2col matrix ``cols`` of ``x`` given."""
    import numpy as np

    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = dy.shape[2], dy.shape[3]
    ph, pw = padding
    dy2 = dy.transpose(1, 2, 3, 0).reshape(o, ho * wo * n)  # a view when dy is batch-last
    dw = np.matmul(dy2, cols.T).reshape(w.shape)
    del cols
    db = None if b is None else dy.sum(axis=(0, 2, 3))
    if not input_grad:
        return None, dw, db
    dcols = np.matmul(w.reshape(o, c * kh * kw).T, dy2).reshape(c, kh, kw, ho, wo, n)
    dxt = np.zeros((c, h + 2 * ph, wd + 2 * pw, n), dtype=x.dtype)
    _np_col2im(dcols, dxt, stride, np)
    return dxt[:, ph : ph + h, pw : pw + wd, :].transpose(3, 0, 1, 2), dw, db


def _np_col2im(dcols, dxt, stride, np):
    """Add every window entry of ``dcols`` (C, kh, kw, Ho, Wo, N) back to its pixel of ``dxt`` (C, Hp, Wp, N), in place.

    Each pixel receives its entries in the kernel's row-major order, whatever the channel slices.
    """
    c, kh, kw, ho, wo, _ = dcols.shape
    sh, sw = stride

    def task(part):
        for i in range(kh):
            for j in range(kw):
                dxt[part, i : i + (ho - 1) * sh + 1 : sh, j : j + (wo - 1) * sw + 1 : sw, :] += dcols[part, i, j]

    np_parallel(task, c, size=dcols.size)


def _np_pool_views(xt, kernel, stride, out_hw):
    kh, kw = kernel
    sh, sw = stride
    ho, wo = out_hw
    return [xt[:, i : i + (ho - 1) * sh + 1 : sh, j : j + (wo - 1) * sw + 1 : sw, :] for i in range(kh) for j in range(kw)]


def _np_pool_max(xt, kernel, stride, out_hw, np):
    """Window maxima ``(C, Ho, Wo, N)`` of ``xt`` (C, H, W, N): ``maximum`` over the window's entries in row-major order."""
    c, _, _, n = xt.shape
    m = np.empty((c, *out_hw, n), dtype=xt.dtype)

    def task(part):
        first, *rest = _np_pool_views(xt[part], kernel, stride, out_hw)
        if not rest:
            np.copyto(m[part], first)
            return
        np.maximum(first, rest[0], out=m[part])
        for v in rest[1:]:
            np.maximum(m[part], v, out=m[part])

    np_parallel(task, c, size=xt.size)
    return m


def _np_pool_out(x, kernel, stride):
    return ((x.shape[2] - kernel[0]) // stride[0] + 1, (x.shape[3] - kernel[1]) // stride[1] + 1)


def _np_max_pool2d(x, *, kernel, stride):
    out = _np_max_pool2d_vjp(x, kernel=kernel, stride=stride)
    return None if out is None else out[0]


def _np_max_pool2d_grad(x, dy, *, kernel, stride):
    """The window's first maximum (row-major scan) gets ``dy``; overlapping windows add up."""
    import numpy as np

    if _np_conv_inputs(x, None, None, dy) is None:
        return None
    xt = np.ascontiguousarray(x.transpose(1, 2, 3, 0))
    m = _np_pool_max(xt, kernel, stride, _np_pool_out(x, kernel, stride), np)
    return _np_max_pool2d_grad_maxima(x, dy, xt, m, kernel=kernel, stride=stride)


def _np_max_pool2d_vjp(x, *, kernel, stride):
    """``(y, backprop)`` of ``nn.functional.max_pool2d_vjp``: the backward reuses the forward's maxima, or None."""
    import numpy as np

    if _np_conv_inputs(x, None, None) is None:
        return None
    xt = np.ascontiguousarray(x.transpose(1, 2, 3, 0))
    m = _np_pool_max(xt, kernel, stride, _np_pool_out(x, kernel, stride), np)

    def backprop(dy):
        if _np_conv_inputs(x, None, None, dy) is None:
            return None
        return _np_max_pool2d_grad_maxima(x, dy, xt, m, kernel=kernel, stride=stride)

    return m.transpose(3, 0, 1, 2), backprop


def _np_max_pool2d_grad_maxima(x, dy, xt, m, *, kernel, stride):
    """``_np_max_pool2d_grad`` from ``xt``, ``x`` batch last and contiguous, and its window maxima ``m``."""
    import numpy as np

    if not _np_all_finite(dy, np) or np.isnan(m).any():
        return None  # a non-finite dy must not reach the other entries as 0 * inf; the reference hands dy to the first NaN
    n, c, h, w = x.shape
    ho, wo = m.shape[1:3]
    tiled = tuple(stride) == tuple(kernel)
    full = tiled and ho * kernel[0] == h and wo * kernel[1] == w
    dxt = np.empty((c, h, w, n), dtype=x.dtype) if full else np.zeros((c, h, w, n), dtype=x.dtype)
    dyt = dy.transpose(1, 2, 3, 0)
    grad = _np_pool_grad_tiled if tiled else _np_pool_grad_windows

    def task(part):
        grad(xt[part], dyt[part], m[part], dxt[part], kernel, stride, np)

    np_parallel(task, c, size=dxt.size)
    return dxt.transpose(3, 0, 1, 2)


def _np_pool_grad_tiled(xt, dyt, m, dxt, kernel, stride, np):
    """Windows that tile ``xt`` (stride = kernel): ``dxt``'s windows get ``dy`` times the first-maximum mask, in one product.

    As (C, Ho, kh, Wo, kw, N) views, the windows of ``xt`` and ``dxt`` are compared with
    and written from ``m`` and ``dy`` broadcast over the window's axes: the products
    ``dy * hit`` of ``_np_pool_grad_windows``, without a pass per window offset.
    """
    c, ho, wo, n = m.shape
    kh, kw = kernel
    x6 = xt[:, : ho * kh, : wo * kw].reshape(c, ho, kh, wo, kw, n)
    hit = np.equal(x6, m[:, :, None, :, None, :])
    taken = hit[:, :, 0, :, 0].copy()
    offsets = [(i, j) for i in range(kh) for j in range(kw)][1:]
    for k, (i, j) in enumerate(offsets, start=1):
        h = hit[:, :, i, :, j]
        np.greater(h, taken, out=h)  # h & ~taken: the first maximum only
        if k < len(offsets):
            taken |= h
    dx6 = dxt[:, : ho * kh, : wo * kw].reshape(c, ho, kh, wo, kw, n)
    np.multiply(dyt[:, :, None, :, None, :], hit, out=dx6)  # dy or 0 (dy is finite)


def _np_pool_grad_windows(xt, dyt, m, dxt, kernel, stride, np):
    """Any windows: one pass per window offset, ``dy`` times the first-maximum mask added to ``dxt`` (zeros)."""
    views = _np_pool_views(xt, kernel, stride, m.shape[1:3])
    dx_views = _np_pool_views(dxt, kernel, stride, m.shape[1:3])
    overlap = stride[0] < kernel[0] or stride[1] < kernel[1]
    taken = np.zeros(m.shape, dtype=bool)
    hit = np.empty(m.shape, dtype=bool)
    part = np.empty(m.shape, dtype=dxt.dtype) if overlap else None
    last = len(views) - 1
    for i, (v, dv) in enumerate(zip(views, dx_views)):
        np.equal(v, m, out=hit)
        if i:
            np.greater(hit, taken, out=hit)  # hit & ~taken: the first maximum only
        if i < last:
            taken |= hit
        if overlap:
            np.multiply(dyt, hit, out=part)
            dv += part
        else:
            np.multiply(dyt, hit, out=dv)  # dy or 0 (dy is finite); windows do not overlap


# ============================================================================ Adam: NumPy


def _np_adam_update(p, g, m, v, *, lr, beta1, beta2, eps, weight_decay, bias1, bias2_sqrt):
    """``(new_p, new_m, new_v)`` of ``refprune.nn.optim._adam_update``, or None.

    Same operations in the same order as the reference, chunk by chunk (``_NP_CHUNK``
    elements, so that the chain's passes hit the cache), each written into one of the three
    new arrays returned. None unless the four are NumPy arrays of one float dtype and shape,
    at least 1-d.
    """
    import numpy as np

    arrays = (p, g, m, v)
    if any(type(a) is not np.ndarray for a in arrays) or p.ndim == 0 or p.dtype.char not in "fd":
        return None
    if any(a.dtype != p.dtype or a.shape != p.shape for a in arrays[1:]):
        return None
    flat = [a.reshape(-1) for a in arrays]  # a copy only for a non-contiguous input
    new = [np.empty(p.size, dtype=p.dtype) for _ in range(3)]
    kw = {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps, "weight_decay": weight_decay, "bias1": bias1,
          "bias2_sqrt": bias2_sqrt}
    if _numba_kernels.kernels() is not None:  # one compiled pass (split over 2 threads it lost: 2.61 -> 2.74 ms a step)
        _numba_kernels.adam(*flat, *new, **kw)
        return tuple(a.reshape(p.shape) for a in new)
    scratch = np.empty(min(p.size, _NP_CHUNK), dtype=p.dtype)
    for sl in _np_chunks_of(p.size):
        _np_adam_chunk(*(a[sl] for a in flat), *(a[sl] for a in new), scratch[: sl.stop - sl.start], **kw)
    return tuple(a.reshape(p.shape) for a in new)


def _np_adam_chunk(p, g, m, v, new_p, new_m, new_v, scratch, *, lr, beta1, beta2, eps, weight_decay, bias1,
                   bias2_sqrt):
    """One chunk of :func:`_np_adam_update`, into ``new_p``, ``new_m``, ``new_v`` (``scratch``: a buffer)."""
    import numpy as np

    if weight_decay:
        g = np.add(g, np.multiply(p, weight_decay, out=scratch), out=new_p)  # g + wd * p
    np.multiply(m, beta1, out=new_m)
    new_m += np.multiply(g, 1.0 - beta1, out=scratch)
    np.multiply(v, beta2, out=new_v)
    np.multiply(g, g, out=scratch)
    scratch *= 1.0 - beta2
    new_v += scratch
    denom = np.sqrt(new_v, out=scratch)
    denom /= bias2_sqrt
    denom += eps
    step = np.divide(new_m, denom, out=scratch)
    step *= lr / bias1
    np.subtract(p, step, out=new_p)


# ============================================================================ weight decay in the L0 penalty: NumPy


def _np_row_chunks(w):
    """``(slices, rows)``: runs of whole rows of ``w`` (slices along axis 0) of about ``_NP_CHUNK`` elements each."""
    rows = max(1, _NP_CHUNK // max(1, math.prod(w.shape[1:])))
    n = w.shape[0]
    return [slice(i, min(i + rows, n)) for i in range(0, n, rows)], min(rows, n)


def _np_l0_decay_terms(w, p, *, weight_decay, axis, grad):
    """``(sq_g, d_w)`` of ``refprune.regularizers._decay_terms``, row chunk by row chunk, or None.

    Each group's sum is the reference's reduction of the same row (a row's sum does not
    depend on the rows around it); the squares live in one chunk-sized buffer and ``w`` is
    read once. None unless ``w`` is a C-contiguous float32/float64 NumPy array of at least
    2 dimensions grouped along axis 0, ``p`` of its dtype and ``weight_decay`` a Python float.
    """
    import numpy as np

    if type(w) is not np.ndarray or w.dtype.char not in "fd" or axis != 0 or w.ndim < 2 or not w.flags.c_contiguous:
        return None
    if type(p) is not np.ndarray or p.dtype != w.dtype or p.shape != w.shape[:1] or type(weight_decay) is not float:
        return None  # a NumPy scalar weight_decay would promote differently
    d_w = None
    if grad and _numba_kernels.kernels() is not None:  # the gradient in one compiled pass; the sums below
        d_w = _numba_kernels.decay_grad(w.reshape(w.shape[0], math.prod(w.shape[1:])), weight_decay, p)
        d_w = d_w.reshape(w.shape)
    chunk_grad = grad and d_w is None
    if chunk_grad:
        d_w = np.empty_like(w)
    chunks, rows = _np_row_chunks(w)
    other = tuple(range(1, w.ndim))
    p = p.reshape((-1,) + (1,) * (w.ndim - 1))
    sq_g = np.empty(w.shape[0], dtype=w.dtype)
    sq = np.empty((rows, *w.shape[1:]), dtype=w.dtype)
    for sl in chunks:
        sq_c, w_c = sq[: sl.stop - sl.start], w[sl]
        np.multiply(w_c, w_c, out=sq_c)
        np.sum(sq_c, axis=other, out=sq_g[sl])
        if chunk_grad:
            d_c = np.multiply(w_c, weight_decay, out=d_w[sl])
            np.copyto(sq_c, p[sl])  # each row's p, spread over the row: one long product, not one per row
            np.multiply(d_c, sq_c, out=d_c)
    return sq_g, d_w


# ============================================================================ N:M and block masks: NumPy
#
# Both work through cache-sized chunks, so that |w| (or the float64 pooled entries)
# is never materialized in full: the extra memory is a chunk buffer, the tile scores
# (float64, one per tile) and the output mask.

_NM_PAIRWISE = 8  # groups up to this size: count the entries ranked before each one


def _np_nm_chunk(s, n, out):
    """Keep mask of the groups ``s`` (a, m, b) into ``out`` (a, m, b): the tie rule, exactly.

    Small ``m``: entry ``i`` is kept when fewer than ``n`` entries of its group rank before
    it (a larger score, or an equal one at a lower position). Larger ``m``: the ``n``-th
    largest ``t`` by a partition, then the reference's rule (above ``t``, then the first
    equal ones). Only comparisons: the result is the reference's bit for bit.
    """
    import numpy as np

    m = s.shape[1]
    if m <= _NM_PAIRWISE:
        rows = [s[:, j] for j in range(m)]
        count = np.empty(rows[0].shape, dtype=np.uint8)
        hit = np.empty(rows[0].shape, dtype=bool)
        for i in range(m):
            count[...] = 0
            for j in range(m):
                if j != i:
                    (np.greater_equal if j < i else np.greater)(rows[j], rows[i], out=hit)
                    count += hit
            np.less(count, n, out=out[:, i])
        return
    t = np.partition(s, m - n, axis=1)[:, m - n : m - n + 1]
    above = s > t
    eq = s == t
    needed = n - np.count_nonzero(above, axis=1)[:, None]
    np.logical_or(above, eq & (np.cumsum(eq, axis=1) <= needed), out=out)


_NM_ROWWISE = 64  # groups longer than this, one per row of a (groups, m) array, are selected row by row


def _np_long_groups_keep(rows, n, magnitude, out):
    """``np_nm_keep`` for long contiguous groups, the rows of ``rows`` (e.g. Wanda's per-row masks).

    Chunks of whole rows: the ``n``-th largest ``t`` of each row by a partition, keep ``s >= t``,
    and only in the rows that keep more than ``n`` (ties at ``t``) the reference's rule (the first
    ``t``'s in the row). Only comparisons: the reference's mask bit for bit. None on a NaN.
    """
    import numpy as np

    big, m = rows.shape
    keep = out[:, :, 0]
    per = max(1, _CHUNK_BYTES // rows.dtype.itemsize // m)
    for a0 in range(0, big, per):
        s = np.abs(rows[a0 : a0 + per]) if magnitude else rows[a0 : a0 + per]
        if np.isnan(s.max()):
            return None
        dst = keep[a0 : a0 + per]
        if n == 0 or n == m:
            dst[...] = n == m
            continue
        t = np.partition(s, m - n, axis=1)[:, m - n : m - n + 1]
        np.greater_equal(s, t, out=dst)
        over = np.flatnonzero(np.count_nonzero(dst, axis=1) > n)
        if over.size:
            tied = s[over] == t[over]
            needed = n - np.count_nonzero(s[over] > t[over], axis=1)[:, None]
            dst[over] = (s[over] > t[over]) | (tied & (np.cumsum(tied, axis=1) <= needed))
    return out


def np_nm_keep(groups, n, *, magnitude):
    """``patterns.nm_keep`` for an (A, m, B) float32/float64 NumPy array, or None (NaN: the reference raises).

    Keeps the ``n`` largest scores (``|groups|`` when ``magnitude``) of each group along
    axis 1, by the tie rule. Chunks of (a, m, b) groups, ``a * m * b`` scores each, so
    ``|w|`` is never built in full.
    """
    import numpy as np

    if type(groups) is not np.ndarray or groups.ndim != 3 or groups.dtype.char not in "fd":
        return None
    big, m, inner = groups.shape
    out = np.empty(groups.shape, dtype=bool)
    if out.size == 0:
        return out
    per = max(1, _CHUNK_BYTES // groups.dtype.itemsize // m)  # entries of one group row per chunk
    if inner == 1 and m > _NM_ROWWISE:  # long groups along the last axis (one per row): select within each row
        return _np_long_groups_keep(groups[:, :, 0], n, magnitude, out)
    if inner == 1:  # groups along the last axis: work on a transposed (1, m, a) copy, whose rows are contiguous
        buf = np.empty((1, m, min(per, big)), dtype=groups.dtype)
        keep = np.empty(buf.shape, dtype=bool)
        for a0 in range(0, big, per):
            chunk = groups[a0 : a0 + per, :, 0]
            a = chunk.shape[0]
            s, dst = buf[:, :, :a], keep[:, :, :a]
            if magnitude:
                np.abs(chunk.T, out=s[0])
            else:
                s[0] = chunk.T
            if np.isnan(s.max()):
                return None
            if n == 0 or n == m:
                dst[...] = n == m
            else:
                _np_nm_chunk(s, n, dst)
            out[a0 : a0 + a, :, 0] = dst[0].T
        return out
    step_b = min(inner, per)
    step_a = max(1, per // step_b)
    buf = np.empty((min(step_a, big), m, step_b), dtype=groups.dtype) if magnitude else None
    for a0 in range(0, big, step_a):
        for b0 in range(0, inner, step_b):
            chunk = groups[a0 : a0 + step_a, :, b0 : b0 + step_b]
            s = np.abs(chunk, out=buf[: chunk.shape[0], :, : chunk.shape[2]]) if magnitude else chunk
            if np.isnan(s.max()):
                return None
            dst = out[a0 : a0 + step_a, :, b0 : b0 + step_b]
            if n == 0 or n == m:
                dst[...] = n == m
            else:
                _np_nm_chunk(s, n, dst)
    return out


_BLOCK_SAFE = {"l1": 2.0**960, "mean": 2.0**960, "l2": 2.0**448}  # patterns._SAFE


def _np_block_entries(x, pool, magnitude, out):
    """The float64 entries a tile pools (``patterns._tile_pool``): |x|, x*x or x, into ``out``."""
    import numpy as np

    if magnitude or pool == "l1":
        np.abs(x, out=out)
    else:
        out[...] = x
    if pool == "l2":
        np.multiply(out, out, out=out)
    return out


def _np_reduce_offsets(a, axis, b, pool, out):
    """Reduce ``a`` along ``axis`` in consecutive runs of ``b`` (the last run may be shorter), in order.

    ``out`` receives one value per run: ``((x_0 + x_1) + x_2) + ...`` (or the max),
    the reference's order, so the sums are the reference's bit for bit.
    """
    import numpy as np

    op = np.maximum if pool == "max" else np.add
    size = a.shape[axis]
    full = size // b
    if full:
        head = a[: full * b] if axis == 0 else a[:, : full * b]
        shape = (full, b) + head.shape[1:] if axis == 0 else (head.shape[0], full, b)
        v = head.reshape(shape)
        pick = (lambda o: v[:, o]) if axis == 0 else (lambda o: v[:, :, o])
        dst = out[:full] if axis == 0 else out[:, :full]
        if b == 1:
            dst[...] = pick(0)
        else:
            op(pick(0), pick(1), out=dst)
            for o in range(2, b):
                op(dst, pick(o), out=dst)
    rest = size - full * b
    if rest:
        tail = (lambda o: a[full * b + o]) if axis == 0 else (lambda o: a[:, full * b + o])
        dst = out[full] if axis == 0 else out[:, full]
        dst[...] = tail(0)
        for o in range(1, rest):
            op(dst, tail(o), out=dst)


def np_block_keep(x, block, pool, k, *, magnitude):
    """``patterns.block_mask``'s pooling, selection and expansion for 1-D/2-D NumPy float arrays, or None.

    Each ``block`` tile of ``x`` is pooled (``pool``: ``"l1"``, ``"l2"``, ``"mean"`` or
    ``"max"``; of ``|x|`` when ``magnitude``), the ``k`` lowest tiles are pruned by
    :func:`np_select_keep`, and the tile mask is expanded to the shape of ``x``. None
    for other inputs, NaN tile scores and float64 entries large enough that the
    reference rescales them.
    """
    import numpy as np

    if type(x) is not np.ndarray or x.ndim not in (1, 2) or x.dtype.char not in "fd":
        return None
    shape = x.shape
    if x.dtype.char == "d" and pool != "max" and x.size:
        lo, hi = x.min(), x.max()  # entries so large that the reference scales them (or inf, NaN): let it run
        if not (np.isfinite(lo) and np.isfinite(hi) and max(-lo, hi) < _BLOCK_SAFE[pool]):
            return None
    if x.ndim == 1:
        x, block = x.reshape(1, -1), (1, block[0])
    rows, cols = x.shape
    bh, bw = block
    t0, t1 = -(-rows // bh), -(-cols // bw)
    if t0 * t1 == 0:
        return np.ones(shape, dtype=bool)
    scores = np.empty((t0, t1), dtype=np.float64)
    per = max(1, _CHUNK_BYTES * 2 // max(1, bh * cols * 8))  # tile rows per chunk
    buf = np.empty((min(per, t0) * bh, cols), dtype=np.float64)
    row = np.empty((min(per, t0), cols), dtype=np.float64)
    with np.errstate(invalid="ignore"):  # inf + -inf: NaN, reported by the reference
        for r in range(0, t0, per):
            r1 = min(t0, r + per)
            chunk = x[r * bh : r1 * bh]
            a = _np_block_entries(chunk, pool, magnitude, buf[: chunk.shape[0]])
            _np_reduce_offsets(a, 0, bh, pool, row[: r1 - r])
            _np_reduce_offsets(row[: r1 - r], 1, bw, pool, scores[r:r1])
    if pool == "mean":
        size0 = np.minimum(bh, rows - bh * np.arange(t0)).astype(np.float64)
        size1 = np.minimum(bw, cols - bw * np.arange(t1)).astype(np.float64)
        scores /= size0[:, None] * size1[None, :]
    if np.isnan(scores).any():
        return None
    keeps = np_select_keep([scores.reshape(-1)], k, False)
    if keeps is None:
        return None
    tiles = keeps[0].reshape(t0, t1)
    row_mask = np.repeat(tiles, bw, axis=1)[:, :cols]
    out = np.empty((t0 * bh, cols), dtype=bool)
    out.reshape(t0, bh, cols)[...] = row_mask[:, None, :]
    return out[:rows].reshape(shape)


def _np_relu_grad(x, dy):
    """``dy * not(x <= 0)``: NumPy's ``where`` with a data-dependent condition is 4x slower.

    Equal to the reference's ``where(x <= 0, 0, dy)`` (a NaN in ``x`` passes ``dy``)
    wherever ``dy`` is finite; a non-finite ``dy`` (``0 * inf`` would be NaN) declines.
    numba's one-pass kernel when installed (``_numba_kernels.relu_grad``, the same bits).
    """
    import numpy as np

    if not (isinstance(x, np.ndarray) and isinstance(dy, np.ndarray)) or x.dtype != dy.dtype or x.ndim == 0:
        return None
    flat = _np_flat_pair(x, dy, np)
    if flat is None:  # layouts differ: one product, laid out as NumPy chooses
        return np.multiply(dy, ~(x <= 0), dtype=dy.dtype) if _np_all_finite(dy, np) else None
    (xf, dyf), out, undo = flat
    finite = _numba_kernels.relu_grad(xf, dyf, out)  # one compiled pass
    if finite is None:  # no numba: NumPy in cache-sized chunks, on BLAS's threads
        finite = _np_relu_grad_chunks(xf, dyf, out, np)
    return out.reshape(undo[0]).transpose(undo[1]) if finite else None


def _np_relu_grad_chunks(xf, dyf, out, np):
    """``out = dyf * not(xf <= 0)`` on disjoint slices over threads; False when a product is not finite."""
    finite = []

    def task(part):  # cache-sized chunks; dy * keep is finite exactly where dy is: check the product in the cache
        keep = np.empty(min(_NP_RELU_CHUNK, part.stop - part.start), dtype=bool)
        for start in range(part.start, part.stop, _NP_RELU_CHUNK):
            chunk = slice(start, min(start + _NP_RELU_CHUNK, part.stop))
            k = keep[: chunk.stop - chunk.start]
            np.logical_not(np.less_equal(xf[chunk], 0, out=k), out=k)
            with np.errstate(invalid="ignore"):  # inf * 0: declined below
                np.multiply(dyf[chunk], k, out=out[chunk], dtype=out.dtype)
            if not _np_all_finite(out[chunk], np):
                finite.append(False)
                return

    np_parallel(task, out.size, size=out.size)
    return not finite


def _np_flat_pair(x, dy, np):
    """``((x, dy) flattened, out, (shape, axes))`` when ``x`` and ``dy`` share one dense memory layout, else None.

    ``out`` is a new flat array; ``out.reshape(shape).transpose(axes)`` has ``dy``'s shape
    and the layout NumPy gives a product of the two (the memory order of its inputs).
    """
    if x.shape != dy.shape or x.strides != dy.strides or 1 in x.shape:
        return None
    order = sorted(range(x.ndim), key=lambda a: -x.strides[a])
    xm, dym = x.transpose(order), dy.transpose(order)
    if not (xm.flags.c_contiguous and dym.flags.c_contiguous):
        return None
    out = np.empty(xm.size, dtype=dy.dtype)
    undo = (xm.shape, tuple(sorted(range(x.ndim), key=order.__getitem__)))
    return (xm.reshape(-1), dym.reshape(-1)), out, undo


def _np_add_scaled(a, s, b):
    """``a + s * b`` by numba's one-pass kernel for C-contiguous float arrays of one dtype and shape, else None."""
    import numpy as np

    if type(a) is not np.ndarray or type(b) is not np.ndarray or type(s) is not float or a.dtype.char not in "fd":
        return None
    if b.dtype != a.dtype or b.shape != a.shape or not (a.flags.c_contiguous and b.flags.c_contiguous):
        return None
    return _numba_kernels.add_scaled(a, s, b)


def _np_clip(x, lo, hi):
    """``np.clip`` of a floating array between two Python floats (what array-api-compat's ``clip``
    computes, after casting the bounds to ``x``'s dtype as NumPy 2 casts a Python float), or None."""
    import numpy as np

    if type(x) is not np.ndarray or x.dtype.kind != "f" or type(lo) is not float or type(hi) is not float:
        return None
    return np.clip(x, lo, hi)


# ============================================================================ SparseGPT: NumPy (and torch CPU)


def obs_sweep(w, u, *, block, counts, nm, lib, select_flat, select_nm):
    """``oneshot._sparsegpt_columns`` with in-place updates of a private copy of ``w``.

    The reference's operations in the same order on the same values: the rank-1 update
    of a column touches only the columns after it (the reference's full-width update
    subtracts an exact 0 from the others), the q and error columns are written into
    preallocated arrays instead of being stacked, and the masks come from the same exact
    selections (``select_flat``: the ``k`` smallest of a 1-D array; ``select_nm``: N:M of an
    ``(A, m, 1)`` array), so the results equal the reference's. ``lib`` is ``numpy`` or
    ``torch`` (CPU): the module whose ``where``/``outer``/``matmul`` the arrays use.
    """
    rows, cols = int(w.shape[0]), int(w.shape[1])
    w = w.clone() if lib.__name__ == "torch" else w.copy()
    keep = lib.ones((rows, cols), dtype=lib.bool)
    d = lib.diagonal(u)
    zero = lib.zeros((rows,), dtype=w.dtype)
    for b, i1 in enumerate(range(0, cols, block)):
        i2 = min(i1 + block, cols)
        w1, u1 = w[:, i1:i2], u[i1:i2, i1:i2]
        errs = lib.empty((rows, i2 - i1), dtype=w.dtype)
        if nm is None:
            score = w1 * w1 / lib.reshape(d[i1:i2] * d[i1:i2], (1, -1))
            keep[:, i1:i2] = lib.reshape(select_flat(lib.reshape(score, (-1,)), counts[b]), (rows, i2 - i1))
        for j in range(i1, i2):
            i = j - i1
            if nm is not None and j % nm[1] == 0:
                n, m = nm
                vals = w[:, j : j + m]
                if j + m > i2:
                    vals = vals.clone() if lib.__name__ == "torch" else vals.copy()
                    if i:
                        done = errs[:, :i]
                        done = done.contiguous() if lib.__name__ == "torch" else lib.ascontiguousarray(done)
                        vals[:, i2 - j :] = vals[:, i2 - j :] - done @ u[i1:j, i2 : j + m]
                score = vals * vals / lib.reshape(d[j : j + m] * d[j : j + m], (1, -1))
                keep[:, j : j + m] = lib.reshape(select_nm(lib.reshape(score, (rows, m, 1)), n), (rows, m))
            col = w1[:, i]
            q = lib.where(keep[:, j], col, zero)
            err = (col - q) / d[j]
            w1[:, i:] -= lib.outer(err, u1[i, i:])
            w1[:, i] = q
            errs[:, i] = err
        if i2 < cols:
            w[:, i2:] -= errs @ u[i1:i2, i2:]
    return w, keep


def _np_sparsegpt_columns(w, u, *, block, counts, nm):
    """SparseGPT's column loop for float32/float64 NumPy arrays of one dtype, or None."""
    import numpy as np

    if type(w) is not np.ndarray or type(u) is not np.ndarray or w.dtype.char not in "fd" or u.dtype != w.dtype:
        return None

    def select_flat(flat, k):
        keep = _np_mask_keep(flat, k, magnitude=False)
        if keep is None:
            raise Declined
        return keep

    def select_nm(groups, n):
        keep = np_nm_keep(groups, n, magnitude=False)
        if keep is None:
            raise Declined
        return keep

    try:
        return obs_sweep(w, u, block=block, counts=counts, nm=nm, lib=np, select_flat=select_flat, select_nm=select_nm)
    except Declined:  # a NaN score: the reference path reports it
        return None


class Declined(Exception):
    """A selection inside a fast path met an input it does not handle: run the reference path.

    Raised by the ``select_flat``/``select_nm`` callables :func:`obs_sweep` is given, caught
    by their caller, which then returns None.
    """


FAST_PATHS = {
    "relu_grad": _np_relu_grad,
    "clip": _np_clip,
    "add_scaled": _np_add_scaled,
    "mask_keep": _np_mask_keep,
    "global_mask_keep": _np_global_mask_keep,
    "hard_concrete_forward": _np_hc_forward,
    "hard_concrete_backward": _np_hc_backward,
    "conv2d": _np_conv2d,
    "conv2d_grad": _np_conv2d_grad,
    "conv2d_vjp": _np_conv2d_vjp,
    "max_pool2d": _np_max_pool2d,
    "max_pool2d_grad": _np_max_pool2d_grad,
    "max_pool2d_vjp": _np_max_pool2d_vjp,
    "adam_update": _np_adam_update,
    "l0_decay_terms": _np_l0_decay_terms,
    "nm_keep": np_nm_keep,
    "block_keep": np_block_keep,
    "sparsegpt_columns": _np_sparsegpt_columns,
}
