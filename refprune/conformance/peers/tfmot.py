"""TensorFlow Model Optimization (TFMOT) as a conformance target (NumPy arrays in and out).

Run the suite against it, in an environment with TensorFlow and TFMOT
(``scripts/peers_env.sh``), with::

    refprune check --target refprune.conformance.peers.tfmot --target-backend numpy

refprune has no TensorFlow backend, so the adapter takes NumPy arrays, hands them to
TFMOT as ``tf.constant`` of the same dtype, and returns TFMOT's answer as NumPy (a
conversion of array library, not of behaviour). Only names are converted:

* ``nm_mask(w, n, m, axis=-1)`` -> ``pruning_utils.generate_m_by_n_mask(w, m_by_n=(m - n, m))``
  (TFMOT's ``(m, n)`` means m *zeros* in every n: the protocol's n kept of m is TFMOT's
  ``(m - n, m)``); it takes rank-2 weights grouped along the last axis, so ``axis=0``
  transposes in and out and a 1-D ``w`` is one row;
* ``magnitude_mask(w, amount)`` -> ``Pruning._update_mask`` (the magnitude step of
  ``prune_low_magnitude``) with a ``ConstantSparsity(amount, 0)`` schedule;
* ``constant_sparsity`` / ``polynomial_sparsity`` -> ``ConstantSparsity`` /
  ``PolynomialDecay`` called at ``step`` (``(should_prune, sparsity)`` as Python values).

An int ``amount`` (a count) is passed as its fraction of the size. ``scores=`` (TFMOT
ranks ``|w|`` only), ``rounding="floor"``/``"ceil"`` and ``counting="absolute"`` (TFMOT counts
the frequency from ``begin_step``) raise ``NotImplementedError``. Where TFMOT's answers differ from the protocol's, the suite
fails and ``xfails/tfmot.txt`` says why.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_impl, pruning_schedule, pruning_utils

__all__ = ["nm_mask", "magnitude_mask", "constant_sparsity", "polynomial_sparsity"]


def _only_magnitude(scores, rounding="half-even"):
    if scores is not None:
        msg = "TFMOT ranks |w| only; scores= is not offered"
        raise NotImplementedError(msg)
    if rounding != "half-even":
        msg = f"TFMOT rounds size * (1 - sparsity) with tf.math.round; rounding={rounding!r} is not offered"
        raise NotImplementedError(msg)


def nm_mask(w, *, n, m, axis=-1, scores=None):
    _only_magnitude(scores)
    a = np.asarray(w)
    rows = a.T if a.ndim == 2 and axis in (0, -2) else a.reshape(1, -1) if a.ndim == 1 else a
    mask = pruning_utils.generate_m_by_n_mask(tf.constant(rows), m_by_n=(m - n, m)).numpy() != 0
    return mask.T if rows is not a and a.ndim == 2 else mask.reshape(a.shape)


def magnitude_mask(w, *, amount, scores=None, rounding="half-even"):
    _only_magnitude(scores, rounding)
    weights = tf.constant(np.asarray(w))
    if isinstance(amount, int) and not isinstance(amount, bool) and np.size(w):
        amount = amount / np.size(w)  # an int amount is a count: TFMOT takes the fraction
    schedule = pruning_schedule.ConstantSparsity(amount, 0, frequency=1)
    pruning = pruning_impl.Pruning(lambda: tf.constant(0, tf.int64), [], schedule, (1, 1), "AVG")
    _, mask = pruning._update_mask(weights)
    return np.asarray(mask.numpy() != 0)


def _python(update, sparsity):
    return bool(update.numpy()), float(sparsity.numpy() if hasattr(sparsity, "numpy") else sparsity)


def _relative(counting):
    if counting != "relative":
        msg = f"TFMOT counts the frequency from begin_step only; counting={counting!r} is not offered"
        raise NotImplementedError(msg)


def constant_sparsity(step, *, target, begin=0, end=-1, frequency=100, counting="relative"):
    _relative(counting)
    schedule = pruning_schedule.ConstantSparsity(target, begin, end_step=end, frequency=frequency)
    return _python(*schedule(tf.constant(step, tf.int64)))


def polynomial_sparsity(step, *, initial, final, begin, end, power=3, frequency=100, counting="relative"):
    _relative(counting)
    schedule = pruning_schedule.PolynomialDecay(initial, final, begin, end, power=power, frequency=frequency)
    return _python(*schedule(tf.constant(step, tf.int64)))
