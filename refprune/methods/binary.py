r"""Weight-invariant self-pruning binarized networks (Agrawal & Karlupia 2019).

"Learning Digital Circuits: A Journey Through Weight Invariant Self-Pruning Neural
Networks" (arXiv:1909.00052) trains a network whose weights are only ever *on* or
*off*. Each real weight :math:`w \in [0, 1]` is binarized at 0.5 for the forward and
the backward pass,

.. math::

    b(w) = \begin{cases} \text{on} & w \ge 0.5 \\ 0 & w < 0.5 \end{cases}
    \qquad (\texttt{refprune.binarize(w, threshold=0.5, on=on, off=0)}),

and the gradient of the loss at the binarized weights is applied to the real weights
unchanged (the straight-through estimator of BinaryConnect,
:func:`refprune.binarize_grad`), after which the real weights are clipped back:

.. math::

    w \leftarrow \operatorname{clip}\Big(\operatorname{Adam}\big(w,\;
        \tfrac{\partial L}{\partial W}\big|_{W = b(w)}\big),\; 0,\; 1\Big).

The notebook does this by saving the real weights, writing the binarized ones into
the network, running forward and backward, restoring the real weights, stepping and
clipping; :func:`binary_step` does the same through the training core
(:func:`refprune.nn.train.train_step` with a straight-through optimizer).

The network (preset ``binary-mlp``) is four hidden blocks ``dense - tanh - norm`` and
an output block ``dense - tanh - norm`` followed by the softmax. Inputs are binarized
too (pixel ``>= 0.5`` -> 1, else 0), so the first layer computes, per unit, how many
of its connected pixels are lit, and ``tanh`` turns that count into an OR gate; the
normalization (batch-norm, or a learned/fixed inversion :math:`y = x(1-a) + (1-x)a`)
supplies the negations. Weights start Bernoulli(``on_prob``) (the notebook's 0.001;
0.015 here by default, see below): almost every weight off, so the network grows only
the connections it needs (self-pruning).

Weight invariance. Because every weight is either 0 or the same value ``on``, the
network can be evaluated with any ``on``: :math:`\tanh(\text{on}\cdot k)` for a count
:math:`k \ge 1` is near 1 for every ``on`` above about 1. The evaluation sweeps
``on`` (``--on-values``, default 0 to 4 in steps of 0.1 as the notebook) and reports
``on_sweep: [[on, accuracy], ...]`` on the test set. ``on = 0`` switches every
weight off and gives chance accuracy.

Exploration. With probability ``epsilon`` a training step uses
:math:`\text{on} = 1 + U(0, m)` (``--epsilon``, ``--random-mag`` = m) instead of 1,
so the network learns to work at several magnitudes. The notebook's helper has the
option; its runs use ``epsilon = 1, m = 0``, i.e. always ``on = 1`` (our default:
``epsilon = 0``).

What is reported (``result.json``):

* ``test_accuracy``: test accuracy at ``on = 1``, the value it was trained at;
* ``on_sweep`` (test) and ``on_sweep_val`` (validation), ``best_on`` (the ``on`` with
  the best *validation* accuracy) and ``best_on_test_accuracy`` (the test accuracy
  there), ``best_on_test_max`` (the sweep's maximum on the test set, a selection on
  the test set, shown only for comparison with the notebook);
* ``fraction_on``: fraction of the weights that are on (real weight >= 0.5) per
  binarized layer ``fc1 .. fc4, out``; ``fraction_on_total`` over all of them;
* the measures every method reports, of the binarized network at ``on = 1``:
  ``weight_sparsity`` (the fraction of the binarized weights that are off; every dense
  weight is binarized, the output layer's too, as the notebook) and ``architecture``
  (the input pixels and hidden units alive: connected to the input and to the output
  by weights that are on).

Batch-norm at evaluation. The notebook never calls ``net.eval()`` for binarized
networks, so its evaluation normalizes each test batch (1,000 images) with that
batch's own statistics. The default here is the running statistics
(``--bn-eval running``), the usual test-time rule; ``--bn-eval batch`` reproduces
the notebook (with ``--eval-batch-size 1000``).

Defaults (digits, seed 0): hidden width 512, ``--norm hard-invert``, ``on_prob``
0.015, Adam with lr 0.002, batch 32, 30 epochs: test accuracy 0.906 at ``on = 1``
with 2.5% of the weights on (about 10 s of training on 2 CPU cores). With
``hard-invert`` every unit computes :math:`1 - \tanh(\text{on} \cdot k)`, a NOR of
its connected inputs (the paper finds its neurons acting as NOR gates), and no
batch statistics are needed at test time. On digits (64 inputs instead of 784, and
only 1,078 training images) the notebook's Bernoulli(0.001) start leaves almost
every unit without a single connection (64 x 0.001 and 512 x 0.001 expected on
weights per unit), so nothing trains; ``on_prob`` 0.015 gives each hidden unit about
8 connections at the start, about the notebook's 4000 x 0.001 = 4. With batch-norm,
``--norm batch-norm --lr 0.005 --on-prob 0.01`` reaches about 0.79 on digits.

The notebook's MNIST / Fashion-MNIST runs (hidden 4000, Bernoulli(0.001) start,
Adam 1e-3, batch 200, 60 epochs, batch-norm with eps 1e-4 and momentum 0.15, no
bias, binarized inputs, training at ``on = 1``, sweep of on = 0, 0.1, ..., 4) are::

    refprune run binary --data mnist --data-dir DIR --backend torch-cuda \
        --hidden 4000 --on-prob 0.001 --lr 1e-3 --batch-size 200 --epochs 60 \
        --norm batch-norm --bn-eps 1e-4 --bn-momentum 0.15 \
        --bn-eval batch --eval-batch-size 1000

(``--data fashion-mnist`` for Fashion-MNIST; ``--norm soft-invert`` or
``--norm hard-invert`` for the inversion layers; ``--bn-eval running`` for test-mode
batch-norm.) The paper's abstract reports performance similar to standard networks
with more than 99% of the weights pruned and neurons that behave like NOR gates;
these MNIST runs have not been re-run here. Difference from the notebook: all four
hidden layers are used (the notebook defines ``fc4`` but its forward skips it).
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial

from .. import binarize, binarize_grad, engine
from .._array import flat_size, namespace
from ..nn import build_model, train
from ..nn.constraints import clamp
from ..nn.models import NORMS
from ..plots import new_figure, save_figure
from ._registry import Option, integer, register_method

#: The threshold that turns a real weight (and an input pixel) on.
THRESHOLD = 0.5


def parse_on_values(spec):
    """The sweep's "on" values from ``'start:stop:step'`` (stop included), ``'a,b,c'`` or a sequence.

    >>> parse_on_values("0:1:0.25")
    [0.0, 0.25, 0.5, 0.75, 1.0]
    >>> parse_on_values("1, 2.5")
    [1.0, 2.5]
    """
    if isinstance(spec, str):
        text = spec.strip()
        if ":" in text:
            parts = text.split(":")
            try:
                start, stop, step = (float(p) for p in parts)
            except ValueError:
                msg = f"on_values must be 'start:stop:step' with three numbers, got on_values={spec!r}"
                raise ValueError(msg) from None
            if step <= 0 or stop < start:
                msg = f"on_values needs step > 0 and stop >= start, got on_values={spec!r}"
                raise ValueError(msg)
            n = int(math.floor((stop - start) / step + 1e-9)) + 1
            return [round(start + i * step, 10) for i in range(n)]
        try:
            values = [float(p) for p in text.split(",") if p.strip()]
        except ValueError:
            msg = f"on_values must be 'start:stop:step' or comma-separated numbers, got on_values={spec!r}"
            raise ValueError(msg) from None
    else:
        values = [float(v) for v in spec]
    if not values or not all(math.isfinite(v) for v in values):
        msg = f"on_values must hold at least one finite number, got on_values={spec!r}"
        raise ValueError(msg)
    return values


def _parse_hidden(hidden):
    if isinstance(hidden, str):
        try:
            widths = [int(p) for p in hidden.split(",") if p.strip()]
        except ValueError:
            msg = f"hidden must be a width or four comma-separated widths, got hidden={hidden!r}"
            raise ValueError(msg) from None
    elif isinstance(hidden, (list, tuple)):
        widths = [int(h) for h in hidden]
    else:
        widths = [int(hidden)]
    if len(widths) not in (1, 4) or min(widths) < 1:
        msg = f"hidden must be one width >= 1 or four, got hidden={hidden!r}"
        raise ValueError(msg)
    return widths[0] if len(widths) == 1 else tuple(widths)


OPTIONS = (
    Option("hidden", "512", "hidden width of the four hidden layers, or four widths 'w1,w2,w3,w4' (notebook: 4000)",
           type=lambda v: _parse_hidden(v), metavar="W"),
    Option("norm", "hard-invert", "normalization after each tanh: batch-norm, soft-invert (y = x(1-a) + (1-x)a, a "
           "learned), hard-invert (y = 1 - x) or none", choices=NORMS),
    Option("on_prob", 0.015, "initial weights are Bernoulli(on_prob): the fraction of weights on at the start",
           low=0, high=1),
    Option("bias", False, "dense layers with a bias, binarized and clipped like the weights"),
    Option("bn_momentum", 0.15, "batch-norm running-statistics momentum (torch convention)", low=0, high=1),
    Option("bn_eps", 1e-4, "batch-norm epsilon", positive=True),
    Option("epsilon", 0.0, "probability that a training step explores: on = 1 + U(0, random_mag) instead of 1",
           low=0, high=1),
    Option("random_mag", 0.0, "largest extra 'on' magnitude m of an exploring step", low=0),
    Option("binarize_input", True, "do not binarize the inputs (by default pixel >= 0.5 -> 1, else 0, as the "
           "notebook)", flag="--no-binarize-input"),
    Option("on_values", "0:4:0.1", "'on' values of the evaluation sweep: 'start:stop:step' (stop included) or "
           "'a,b,c'", type=lambda v: parse_on_values(v), metavar="SPEC"),
    Option("bn_eval", "running", "batch-norm statistics at evaluation: running (test mode) or each batch's own "
           "(the notebook, which never calls net.eval())", choices=("running", "batch")),
    Option("eval_batch_size", 1000, "evaluation batch size (matters with --bn-eval batch; the notebook's is 1000)",
           type=integer, low=1),
)


# ---------------------------------------------------------------------------------- the method's math


def binarized_names(model, *, bias=False):
    """The parameters that are binarized: every dense/conv weight (the output layer's too),
    and the biases of those layers when ``bias``."""
    names = list(model.prunable(include_output=True))
    if bias:
        params = model.params()
        names += [n[:-2] + ".b" for n in names if n[:-2] + ".b" in params]
    return tuple(names)


def binarized(params, names, *, on=1.0, threshold=THRESHOLD):
    r"""The named parameters binarized: :math:`b(w) = \text{on}` where :math:`|w| \ge t`, else 0.

    Returns a new dict holding only ``names``.
    """
    return {n: binarize(params[n], threshold=threshold, on=on, off=0.0) for n in names}


def straight_through(opt, real, names):
    r"""An optimizer that steps the *real* weights with the gradients taken at the binarized ones.

    :func:`refprune.nn.train.train_step` calls ``opt(model.params(), grads, state)``
    while the model holds the binarized weights; the returned function swaps the real
    weights ``real`` back in for ``names`` and passes the straight-through gradient
    :math:`\partial L/\partial w = \partial L/\partial b(w)` (:func:`refprune.binarize_grad`)
    to ``opt``. Other parameters (batch-norm, inversion) are stepped as usual.
    """
    names = frozenset(names)

    def step(params, grads, state):
        params = {**params, **{n: real[n] for n in names}}
        grads = {k: binarize_grad(real[k], g) if k in names else g for k, g in grads.items()}
        return opt(params, grads, state)

    return step


def binary_step(model, opt, opt_state, xb, yb, *, names, on=1.0, threshold=THRESHOLD):
    r"""One BinaryConnect step, in place on ``model``.

    Binarize the ``names`` parameters with magnitude ``on``, forward and backward at the
    binarized values (:func:`refprune.nn.train.loss_and_grads`), apply the gradient to
    the real values with ``opt`` and clip them to [0, 1]:

    .. math::

        w \leftarrow \operatorname{clip}\big(\operatorname{opt}(w, \nabla_W L(b(w))), 0, 1\big)

    Returns ``(Step, opt_state)`` as :func:`refprune.nn.train.train_step`; the model
    holds the real (clipped) weights afterwards.
    """
    real = model.params()
    model.set_params(binarized(real, names, on=on, threshold=threshold))
    try:
        return train.train_step(
            model,
            straight_through(opt, real, names),
            opt_state,
            xb,
            yb,
            constraints={n: clamp(0.0, 1.0) for n in names},
        )
    except BaseException:
        model.set_params(real)
        raise


def exploration_on(rng, *, epsilon, random_mag, on=1.0):
    r"""The step's "on" magnitude: :math:`\text{on} + U(0, m)` with probability :math:`\epsilon`, else ``on``.

    The notebook's ``on + random.uniform(0, random_mag) if random.random() < epsilon else on``.

    Draws two uniforms from ``rng`` (the coin and the magnitude) when ``epsilon > 0``
    and ``random_mag > 0``, none otherwise. Returns a Python float.
    """
    if epsilon <= 0 or random_mag <= 0:
        return float(on)
    u = rng.uniform((2,), "float64")
    return float(on) + float(u[1]) * float(random_mag) if float(u[0]) < epsilon else float(on)


def fraction_on(params, names, *, threshold=THRESHOLD):
    """Fraction of the entries with :math:`|w| \\ge t` per named array (Python floats)."""
    out = []
    for n in names:
        w = params[n]
        xp = _xp(w)
        out.append(int(xp.count_nonzero(xp.abs(w) >= threshold)) / max(1, flat_size(w)))
    return out


def total_fraction_on(params, names, *, threshold=THRESHOLD):
    """Fraction of the entries with :math:`|w| \\ge t` over all named arrays together."""
    sizes = [flat_size(params[n]) for n in names]
    fracs = fraction_on(params, names, threshold=threshold)
    return sum(f * s for f, s in zip(fracs, sizes)) / max(1, sum(sizes))


def inputs_used(w, /, *, threshold=THRESHOLD):
    """Input units (rows of a dense ``(in, out)`` weight) with at least one outgoing weight on."""
    xp = _xp(w)
    return int(xp.count_nonzero(xp.any(xp.abs(w) >= threshold, axis=1)))


def _xp(w):
    return namespace(None, w=w)


# ---------------------------------------------------------------------------------- evaluation


def _binary_inputs(backend, x, dtype):
    """Host images binarized on the backend (pixel >= 0.5 -> 1, else 0), back on the host."""
    return backend.to_numpy(binarize(backend.asarray(x, dtype=dtype), threshold=THRESHOLD, on=1.0, off=0.0))


def accuracy(eng, model, split, *, batch_size, bn_eval):
    """Accuracy on ``split`` in test mode (``bn_eval="running"``) or with each batch's statistics (``"batch"``)."""
    return eng.evaluate(model, split, batch_size=batch_size, train=bn_eval == "batch")[1]


def _sweep(eng, model, names, split, on_values, **kw):
    rows = []
    for on in on_values:
        with model.using(binarized(model.params(), names, on=on)):
            rows.append([float(on), accuracy(eng, model, split, **kw)])
    return rows


def network_inputs(dataset, o, *, backend, dtype):
    """The data as the network reads it: every split's pixels binarized (>= 0.5 -> 1, else 0) unless
    ``--no-binarize-input`` (the method's ``inputs`` hook)."""
    if not o.binarize_input:
        return dataset
    return replace(dataset, **{f"x_{k}": _binary_inputs(backend, getattr(dataset, f"x_{k}"), dtype)
                               for k in ("train", "val", "test")})


# ---------------------------------------------------------------------------------- the run


@register_method("binary", summary="weight-invariant self-pruning binarized nets: weights on/off, straight-through "
                 "updates", defaults={"model": "binary-mlp", "epochs": 30, "batch_size": 32, "lr": 0.002},
                 options=OPTIONS, inputs=network_inputs)
def run(eng, o):
    """Train a binarized ``binary-mlp`` (straight-through), sweep the "on" value, report the binarized network."""
    spec = eng.spec
    if spec.model != "binary-mlp":
        msg = f"method binary trains the 'binary-mlp' preset, got model={spec.model!r}; use --model binary-mlp"
        raise ValueError(msg)
    ds = eng.dataset
    model = eng.track(build_model("binary-mlp", input_shape=ds.input_shape, num_classes=ds.num_classes,
                                  backend=eng.backend, rng=eng.rng, dtype=spec.dtype, hidden=o.hidden,
                                  norm=o.norm, on_prob=o.on_prob, bias=o.bias, bn_momentum=o.bn_momentum,
                                  bn_eps=o.bn_eps))
    names = binarized_names(model, bias=o.bias)
    weights = [n for n in names if n.endswith(".w")]
    layers = [n.split(".")[0] for n in weights]
    eval_kw = {"batch_size": o.eval_batch_size, "bn_eval": o.bn_eval}

    def step(m, update, opt_state, xb, yb, *, rng):
        on = exploration_on(rng, epsilon=o.epsilon, random_mag=o.random_mag)
        return binary_step(m, update, opt_state, xb, yb, names=names, on=on)

    def measure(m):
        params = m.params()
        with m.using(binarized(params, names)):
            val = accuracy(eng, m, "val", **eval_kw)
        return {"val_accuracy": val, "fraction_on": total_fraction_on(params, weights),
                **{f"fraction_on_{ln}": f for ln, f in zip(layers, fraction_on(params, weights))}}

    eng.train(model, step=step, optimizer=engine.adam(lr=spec.lr), epochs=spec.epochs, measure=measure)

    sweep_test = _sweep(eng, model, names, "test", o.on_values, **eval_kw)
    sweep_val = _sweep(eng, model, names, "val", o.on_values, **eval_kw)
    best_on, _ = max(sweep_val, key=lambda r: (r[1], -abs(r[0] - 1.0)))
    params = model.params()
    fracs, total_on = fraction_on(params, weights), total_fraction_on(params, weights)
    result = {
        "test_accuracy_note": "test accuracy at on = 1 (the training magnitude)",
        "inputs_used": inputs_used(params[weights[0]]),
        "on_sweep": sweep_test,
        "on_sweep_val": sweep_val,
        "best_on": best_on,
        "best_on_test_accuracy": next(a for v, a in sweep_test if v == best_on),
        "best_on_test_max": max(a for _, a in sweep_test),
        "fraction_on": fracs,
        "fraction_on_layers": layers,
        "fraction_on_total": total_on,
        "bn_eval": o.bn_eval,
    }
    with model.using(binarized(params, names, on=1.0)):
        result["test_accuracy"] = accuracy(eng, model, "test", **eval_kw)
        return eng.finish(result, model=model, plot=partial(plot, sweep_test=sweep_test, sweep_val=sweep_val,
                                                            rows=eng.rows, layers=layers, fracs=fracs,
                                                            total_on=total_on, test=result["test_accuracy"]))


def plot(path, *, sweep_test, sweep_val, rows, layers, fracs, total_on, test):
    """The "on" sweep (test and validation) and the fraction of weights on per layer over the epochs."""
    fig, (ax1, ax2) = new_figure(ncols=2)
    ax1.plot([r[0] for r in sweep_test], [r[1] for r in sweep_test], "o-", ms=3, label="test")
    ax1.plot([r[0] for r in sweep_val], [r[1] for r in sweep_val], "s--", ms=3, alpha=0.7, label="validation")
    ax1.axvline(1.0, color="grey", lw=0.8, ls=":")
    ax1.set_xlabel('"on" weight value at evaluation')
    ax1.set_ylabel("accuracy")
    ax1.set_ylim(0, 1.02)
    ax1.set_title(f"on sweep (trained at on = 1; test {test:.3f})")
    ax1.legend(loc="lower right")
    epochs = [r["epoch"] for r in rows]
    for ln, f in zip(layers, fracs):
        ax2.plot(epochs, [100 * r[f"fraction_on_{ln}"] for r in rows], label=f"{ln} ({100 * f:.2f}%)")
    ax2.plot(epochs, [100 * r["fraction_on"] for r in rows], "k--", label=f"all ({100 * total_on:.2f}%)")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("weights on (%)")
    ax2.set_title("fraction of weights on, per layer")
    ax2.legend(fontsize=8)
    save_figure(fig, path)
