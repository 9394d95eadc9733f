r"""Relaxed variable splitting (RVSM) with a hard-thresholding operator.

RVSM (Dinh & Xin) splits the weights w of the pruned layers from a sparse copy u and
couples them by a quadratic term: minimise

    f(w) + lam * ||u||_0 + beta / 2 * ||w - u||^2.

For fixed w the minimising u is the hard threshold of w::

    u = H_t(w) = w where |w| > t, else 0,     t = sqrt(2 * lam / beta)

(keeping w_i costs lam, dropping it costs beta/2 * w_i^2). Two updates of w:

* ``--variant gradient-at-u`` (the source notebook's "modified RVSM"): the loss
  gradient is evaluated with u in place of w and applied to w,

      u^t = H_t(w^t),    w^{t+1} = w^t - lr * grad f(u^t)

  so every weight keeps learning (small ones can grow past t) while the network
  that is trained, and deployed, is the sparse u. The notebook feeds grad f(u) to
  Adam; so does this method by default.
* ``--variant splitting`` (gradient descent on the relaxed objective):

      u^t = H_t(w^t),    w^{t+1} = w^t - lr * (grad f(w^t) + beta * (w^t - u^t))

  the coupling pulls the weights below t towards 0. ``--optimizer sgd`` is this
  formula exactly; with Adam (the default) the same gradient goes through Adam.

The other parameters (biases, layers that are not pruned) take the gradient of the
same forward pass. Reported: the test accuracy with w (``accuracy_w``), with u
(``accuracy_u``; ``test_accuracy`` is this one, the sparse network), with the
complement w - u (``accuracy_complement``: the weights above t zeroed, only the small
ones kept; near chance when the small weights carry no function), the fraction of
zeros in u over the split layers (``sparsity_u``), and the measures every method
reports (``weight_sparsity``, ``architecture``) of the deployed network, u in place.

Which weights are split (``--layers``): ``all`` (default: every dense and conv
weight but the output layer's), ``largest-dense`` (the largest dense weight but the
output's: the notebook splits its ``wd1``, the 3136 x 1024 fully connected layer),
or a comma list of layer names such as ``fc1`` or ``conv2,fc1``.

Defaults (digits): LeNet-5-Caffe with He-normal weights, all hidden layers split,
the notebook's lam 5e-4 and beta 0.1 (t = 0.1), Adam lr 1e-3, batch 128, 40 epochs.
He-normal rather than the preset's Glorot-uniform: on 8x8 digits the fc1 weights are
drawn within +-0.093, all below t = 0.1, so u = 0, the ReLUs after fc1 are dead and
the gradient at u is zero: training never starts. With ``--layers fc1`` alone (the
notebook's choice) digits reaches a similar accuracy with u, but the complement keeps
two thirds of fc1 plus every other layer and stays well above chance.

The notebook (MNIST, TensorFlow): a conv net 32-64 5x5 / fc 1024 with dropout, every
weight drawn from N(0, 1), ``wd1`` split, lam 5e-4, beta 0.1 (t = sqrt(2 * lam / beta)
= 0.1), Adam 1e-3, batch 128, 500 steps; on the first 256 test images it reports
accuracy with w 0.965, with u 0.965 and with the complement 0.070, u 7.97% sparse
(its N(0, 1) weights are mostly far above t). The nearest preset here is LeNet-5-Caffe::

    refprune run rvsm --data mnist --data-dir DIR --model lenet5 --layers fc1 \
        --lam 5e-4 --beta 0.1 --lr 1e-3 --batch-size 128 --epochs 2

(500 steps of 128 are 1.2 epochs of the 55,000 training images.) The notebook also
takes the gradients of the layers it does not split from a second forward pass
with w (and its own dropout mask), and its first step uses a random u (its ``u``
variable's own N(0, 1) draw; from the second step on u = H_t(w) as here); here one pass
with u serves all parameters. The update of the split weights is the same.

What holds (measured on ``--data mnist5k``, ``--layers fc1``, 18 epochs = 504 steps,
seed 0). The sparsity of u is set by the initialization, not by training: nothing in
the gradient-at-u update pulls a weight into +-t or out of it (only the loss gradient
at u moves w, by at most about lr a step with Adam), so the fraction of w inside +-t
barely moves from step 0 (below), and that fraction is
``P(|w0| <= t) = erf(t / (std * sqrt 2))`` for normal weights (``sparsity_u_initial`` is
reported beside ``sparsity_u``). The notebook's 7.97% is that fraction for its N(0, 1)
weights and t = 0.1 (erf(0.1 / sqrt 2) = 7.97%); He-normal fc1 weights of LeNet-5-Caffe
(std sqrt(2/800) = 0.05, t = 2 std) give 95.4%. The complement w - u keeps exactly the
weights inside +-t, so it is near chance when they are few and small (N(0, 1): 8% of
fc1) and keeps most of the accuracy when they are most of the layer (He-normal: 95% of
fc1, plus every other layer):

    init              sparsity of u (step 0 -> end)   acc. u   acc. w   acc. complement
    he-normal         0.954 -> 0.938                  0.974    0.953    0.915
    standard-normal   0.080 -> 0.079                  0.874    0.878    0.103

(``refprune run rvsm --data mnist5k --layers fc1 --epochs 18 [--init standard-normal]``;
``--init standard-normal`` is the notebook's N(0, 1) for every weight; its biases are 0
here, N(0, 1) there.) So the notebook's finding, the complement at chance, is a property
of its N(0, 1) initialization with t far inside the weight scale; the method agrees with
the notebook, the default setting here (He-normal) does not, and neither prunes beyond
what the initialization put inside +-t. ``--variant splitting`` is the one whose
coupling beta * (w - u) pulls the weights inside +-t towards 0.
"""

from __future__ import annotations

from functools import partial

from refprune import engine
from refprune._array import flat_size
from refprune.measures import zero_fraction
from refprune.nn import build_model, train
from refprune.nn.models import INITS
from refprune.plots import new_figure, save_figure
from refprune.regularizers import rvsm_penalty, rvsm_penalty_grad
from refprune.thresholds import hard_threshold, rvsm_threshold

from ._registry import Option, register_method

VARIANTS = ("gradient-at-u", "splitting")

OPTIONS = (
    Option("variant", "gradient-at-u", "gradient-at-u: w -= lr * grad f(u) (the notebook); splitting: "
           "w -= lr * (grad f(w) + beta * (w - u))", choices=VARIANTS),
    Option("layers", "all", "weights split into w and u: 'all' (every hidden dense/conv weight), 'largest-dense' "
           "(the notebook's wd1), or layer names such as 'fc1' or 'conv2,fc1'", metavar="WHICH"),
    Option("lam", 5e-4, "L0 weight lam of lam*||u||_0; the threshold is t = sqrt(2*lam/beta)", low=0),
    Option("beta", 0.1, "coupling beta of beta/2*||w - u||^2 (the notebook's 0.1 with lam 5e-4 gives t = 0.1)",
           positive=True),
    Option("init", "he-normal", "weight initialization; t must sit inside the initial weight range or u starts all "
           "zero", choices=INITS),
    Option("optimizer", "adam", "adam (the notebook) or plain sgd (the splitting formula exactly)",
           choices=("adam", "sgd")),
)


# ---------------------------------------------------------------------------- the method's pieces


def pruned_names(model, layers):
    """The weight names split into w and u.

    Parameters
    ----------
    model : Sequential
        The network.
    layers : str or list of str
        ``"all"``: ``model.prunable()`` (every dense and conv weight but the output
        layer's). ``"largest-dense"``: the dense weight of that list with the most
        entries (the notebook's ``wd1``). Otherwise a comma list (or a list) of layer
        names (``"fc1"``) or weight names (``"fc1.w"``); the output layer may be named.

    Returns
    -------
    list of str
        Weight names such as ``["conv1.w", "fc1.w"]``, in the order given.

    Raises
    ------
    ValueError
        An unknown or non-prunable name (the message lists the prunable ones).
    """
    hidden = model.prunable()
    params = model.params()
    if layers == "all":
        names = list(hidden)
    elif layers == "largest-dense":
        dense = [n for n in hidden if model.weight_kind(n) == "dense"]
        if not dense:
            msg = f"layers='largest-dense' but this model has no hidden dense layer; prunable: {hidden}"
            raise ValueError(msg)
        names = [max(dense, key=lambda n: flat_size(params[n]))]
    else:
        items = layers.split(",") if isinstance(layers, str) else list(layers)
        names = [item.strip() if item.strip().endswith(".w") else f"{item.strip()}.w" for item in items if item.strip()]
        known = model.prunable(include_output=True)
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            msg = (f"layers={layers!r}: {unknown or 'no layer'} not prunable; choose 'all', 'largest-dense' or "
                   f"names among {', '.join(n[:-2] for n in known)}")
            raise ValueError(msg)
        names = list(dict.fromkeys(names))
    if not names:
        msg = f"this model has no prunable hidden weight to split (layers={layers!r}); name one explicitly"
        raise ValueError(msg)
    return names


def split_weights(w, /, *, threshold):
    r"""The sparse copy and its complement: ``(u, w - u)``.

    .. math:: u = H_t(w) = w\,\mathbb{1}[|w| > t], \qquad w - u = w\,\mathbb{1}[|w| \le t]

    Examples
    --------
    >>> import numpy as np
    >>> from refprune.methods.rvsm import split_weights
    >>> u, rest = split_weights(np.asarray([0.5, -0.05, 0.1, -0.2]), threshold=0.1)
    >>> u, rest
    (array([ 0.5,  0. ,  0. , -0.2]), array([ 0.  , -0.05,  0.1 ,  0.  ]))
    """
    u = hard_threshold(w, threshold=threshold)
    return u, w - u


def train_step(model, opt, opt_state, xb, yb, *, names, threshold, variant="gradient-at-u", beta=0.1, rng=None):
    r"""One RVSM update of ``model`` in place; its parameters hold w before and after.

    With :math:`u = H_t(w)` for each weight in ``names``:

    * ``"gradient-at-u"``: the forward and backward run with u in place of w and the
      gradient with respect to u is given to ``opt`` as the gradient of w,
      :math:`w \leftarrow \mathrm{opt}(w, \nabla f(u))`;
    * ``"splitting"``: the forward runs with w and the coupling's gradient is added,
      :math:`w \leftarrow \mathrm{opt}(w, \nabla f(w) + \beta (w - u))`.

    With ``opt = partial(optim.sgd, lr=lr)`` these are the formulas
    :math:`w - \eta \nabla f(u)` and :math:`w - \eta(\nabla f(w) + \beta(w - u))`.
    Other parameters take their gradient from the same pass; the model's own
    constraints are applied after the step.

    Parameters
    ----------
    model : Sequential
        The network, holding w.
    opt : callable
        ``opt(params, grads, state) -> (params, state)`` (``refprune.nn.optim``).
    opt_state : dict
        The optimizer's state.
    xb, yb : array
        A minibatch on the model's backend.
    names : list of str
        The split weights (:func:`pruned_names`).
    threshold : float
        ``t`` of :func:`refprune.rvsm_threshold`.
    variant : {"gradient-at-u", "splitting"}
    beta : float
        The coupling (``splitting`` only).
    rng : refprune generator, optional
        For models with random layers.

    Returns
    -------
    (refprune.nn.train.Step, dict)
        The pass's loss (plus :math:`\frac{\beta}{2}\|w - u\|^2` for ``splitting``),
        gradients and logits, and the new optimizer state.
    """
    if variant not in VARIANTS:
        msg = f"variant must be one of {', '.join(VARIANTS)}, got variant={variant!r}"
        raise ValueError(msg)
    params = model.params()
    w = {n: params[n] for n in names}
    u = {n: hard_threshold(w[n], threshold=threshold) for n in names}
    if variant == "gradient-at-u":
        with model.using(u):
            step = train.loss_and_grads(model, xb, yb, rng=rng)
    else:
        step = train.loss_and_grads(model, xb, yb, rng=rng)
        grads, loss = dict(step.grads), step.loss
        for n in names:
            grads[n] = grads[n] + rvsm_penalty_grad(w[n], u[n], beta=beta)[0]
            loss = loss + rvsm_penalty(w[n], u[n], beta=beta)
        step = train.Step(loss, grads, step.logits)
    return step, train.apply_update(model, opt, opt_state, step.grads)


def evaluate_splits(eng, model, *, names, threshold, split="val"):
    """Loss and accuracy with w, with u and with the complement ``w - u`` in place, on ``split``.

    Returns ``{"w": (loss, accuracy), "u": ..., "complement": ...}``; the model holds w
    again on return (also after an error).
    """
    params = model.params()
    parts = {n: split_weights(params[n], threshold=threshold) for n in names}
    out = {"w": eng.evaluate(model, split)}
    for i, key in enumerate(("u", "complement")):
        with model.using({n: parts[n][i] for n in names}):
            out[key] = eng.evaluate(model, split)
    return out


def sparsity_of_u(model, *, names, threshold):
    """``(overall, by_layer)``: fraction of zeros of u over the split weights (Python floats)."""
    u = deployed(model, names=names, threshold=threshold)
    return zero_fraction(u.values()), {n: zero_fraction([v]) for n, v in u.items()}


def deployed(model, *, names, threshold):
    """The split weights replaced by u: what the deployed network computes with (for ``model.using``)."""
    params = model.params()
    return {n: hard_threshold(params[n], threshold=threshold) for n in names}


# ---------------------------------------------------------------------------- run


@register_method("rvsm", summary="relaxed variable splitting: train w, deploy u = hard_threshold(w, sqrt(2*lam/beta))",
                 defaults={"model": "lenet5", "epochs": 40, "batch_size": 128, "lr": 1e-3}, options=OPTIONS)
def run(eng, o):
    """Train w with relaxed variable splitting; deploy and measure u = H_t(w)."""
    spec, ds = eng.spec, eng.dataset
    threshold = rvsm_threshold(lam=o.lam, beta=o.beta)
    model = eng.track(build_model(spec.model, input_shape=ds.input_shape, num_classes=ds.num_classes,
                                  backend=eng.backend, rng=eng.rng, dtype=spec.dtype, init=o.init))
    names = pruned_names(model, o.layers)
    optimizer = engine.adam(lr=spec.lr) if o.optimizer == "adam" else engine.sgd(lr=spec.lr)

    def measure(m):
        accs = evaluate_splits(eng, m, names=names, threshold=threshold)
        overall, by_layer = sparsity_of_u(m, names=names, threshold=threshold)
        return {"val_loss": accs["u"][0], **{f"val_accuracy_{k}": v[1] for k, v in accs.items()},
                "sparsity_u": overall, **{f"sparsity_u_{n[:-2]}": v for n, v in by_layer.items()}}

    step = partial(train_step, names=names, threshold=threshold, variant=o.variant, beta=o.beta)
    eng.train(model, step=step, optimizer=optimizer, epochs=spec.epochs, measure=measure, initial_row=True)

    accs = evaluate_splits(eng, model, names=names, threshold=threshold, split="test")
    overall, by_layer = sparsity_of_u(model, names=names, threshold=threshold)
    result = {
        "test_accuracy": accs["u"][1],
        "test_accuracy_note": "accuracy of the deployed sparse network, u in place of w",
        "accuracy_w": accs["w"][1],
        "accuracy_u": accs["u"][1],
        "accuracy_complement": accs["complement"][1],
        "sparsity_u": overall,
        "sparsity_u_initial": eng.rows[0]["sparsity_u"],
        "sparsity_u_by_layer": by_layer,
        "split_layers": names,
        "threshold": threshold,
        "variant": o.variant,
    }
    w_host = [eng.backend.to_numpy(model.params()[n]) for n in names]
    with model.using(deployed(model, names=names, threshold=threshold)):
        return eng.finish(result, model=model,
                          plot=partial(plot, rows=eng.rows, weights=w_host, names=names, threshold=threshold))


# ---------------------------------------------------------------------------- plot

def plot(path, *, rows, weights, names, threshold):
    """Validation accuracies with w, u and the complement and the sparsity of u over the
    epochs; a histogram of the final w of the split layers with the threshold."""
    fig, (ax_acc, ax_hist) = new_figure(ncols=2)
    epochs = [r["epoch"] for r in rows]
    for key, label in (("u", "with u (deployed)"), ("w", "with w"), ("complement", "with the complement w - u")):
        ax_acc.plot(epochs, [r[f"val_accuracy_{key}"] for r in rows], label=label)
    ax_acc.plot(epochs, [r["sparsity_u"] for r in rows], color="black", linestyle="--", label="sparsity of u")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("validation accuracy / sparsity")
    ax_acc.set_ylim(0, 1.02)
    ax_acc.legend(fontsize="small", loc="center right")
    ax_acc.set_title(f"RVSM, threshold t = {threshold:.3g}")
    ax_hist.hist([w.reshape(-1) for w in weights], bins=120, stacked=True, log=True,
                 label=[n[:-2] for n in names])
    for x in (-threshold, threshold):
        ax_hist.axvline(x, color="tab:red", linestyle="--")
    ax_hist.set_xlabel("final w of the split layers (dashed: +-t)")
    ax_hist.set_ylabel("count (log)")
    ax_hist.legend(fontsize="small")
    save_figure(fig, path)
