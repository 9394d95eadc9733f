r"""Lottery tickets: iterative magnitude pruning with rewinding (Frankle & Carbin, ICLR 2019).

A network :math:`f(x; \theta)` is initialized to :math:`\theta_0` and trained. Each
*round* then prunes a fraction of the weights that are still there, resets the
survivors to their initial values and trains again, with the pruned weights held at 0:

1. train :math:`f(x; m \odot \theta)` from :math:`\theta = \theta_0` (round 0: :math:`m = 1`)
   with early stopping on the validation loss, keeping the weights of the best epoch;
2. prune: in each prunable layer, drop the fraction ``p`` of its *remaining* weights
   with the smallest :math:`|\theta|` (:func:`refprune.magnitude_mask`, ranking only the
   survivors, so masks are nested); after ``r`` rounds a layer keeps
   :math:`(1-p)^r` of its weights, i.e. its sparsity is
   :func:`refprune.imp_sparsity` :math:`(r) = 1-(1-p)^r`;
3. rewind: :math:`\theta \leftarrow \theta_0` (or :math:`\theta_k`, the weights after
   ``--rewind-step k`` steps of the dense training: "late resetting", Frankle et al.
   2019), a fresh Adam state, and go to 1 with the new mask.

The rate ``p`` depends on the layer kind, as the paper: ``--conv-rate`` (0.1),
``--dense-rate`` (0.2) and ``--output-rate`` (0.1, the output layer is pruned at half
the rate); ``--global`` ranks all prunable weights together (:func:`refprune.global_magnitude_mask`)
at one ``--global-rate`` (0.2). Biases are never pruned. ``--criterion`` picks what is
ranked (:mod:`refprune.criteria`: ``weight``, the paper's, or ``unit`` for whole units). Training with a mask is
masked forward *and* masked gradient: the model computes with ``where(m, theta, 0)``,
so pruned weights get a zero gradient and stay pruned.

**Early stopping** (the notebook's rule): an epoch *improves* when its validation loss
:math:`\ell_t < \ell^* - \delta` with ``--min-delta`` :math:`\delta` = 0.001; then
:math:`\ell^* \leftarrow \ell_t` and that epoch is ``best_epoch``; training stops after
``--patience`` (3) epochs in a row without improvement, or after ``--epochs``. The
paper's two measures of a ticket are the test accuracy at the early-stopping epoch
and that epoch itself ("learns faster" = a smaller ``best_epoch``).

**Random reinitialization control**: every round ``r >= 1`` also trains a network with
the *same mask* but fresh random weights. Winning tickets should reach the dense
accuracy in fewer epochs than the control, and keep it at sparsities where the control
falls behind: the initialization, not only the structure, makes the ticket.

Result keys: ``rounds`` and ``random_reinit``, lists of ``{round, sparsity,
expected_sparsity, test_accuracy, best_epoch, epochs_run, best_val_loss,
weights_remaining}``; ``test_accuracy``, ``weight_sparsity`` and ``architecture`` are
those of the last round's ticket (the measures every method reports), and
``dense_accuracy`` round 0's. ``rounds.csv`` has one row per round (ticket and control
side by side), ``metrics.csv`` the per-epoch curves of every phase, ``plot.png``
accuracy and ``best_epoch`` against sparsity. The checkpoint holds the ticket, the
rewind weights and the tables; ``--resume`` continues where the run stopped (inside a
round too), up to ``--rounds``, on the same trajectory as an uninterrupted run.

Defaults (digits): ``mlp-300-100`` (LeNet-300-100 of the paper), Adam 1.2e-3, batch 60
(the paper's LeNet settings), up to 50 epochs a round, 10 rounds (89% sparsity), about
15-30 s on 2 CPU cores. On digits, seed 0, the tickets keep the dense accuracy (about
0.97) to the last round while the control needs about twice as many epochs.

The paper's runs (Figure 2 of Frankle & Carbin): LeNet-300-100 on MNIST, Adam 1.2e-3,
batch 60, fc rate 0.2, output 0.1::

    refprune run lottery --data mnist --data-dir DIR --model mlp-300-100 \
        --lr 1.2e-3 --batch-size 60 --epochs 50 --rounds 20

Conv-4 on CIFAR-10, Adam 3e-4, batch 60, conv rate 0.1, fc 0.2, output 0.1 (the
notebook's settings; use a GPU: ``--backend torch --device cuda`` or ``--backend cupy``)::

    refprune run lottery --data cifar10 --data-dir DIR --model conv4 \
        --lr 3e-4 --batch-size 60 --epochs 100 --rounds 25 \
        --conv-rate 0.1 --dense-rate 0.2 --output-rate 0.1

The paper finds winning tickets below 10-20% of the original size for these networks,
which above that size learn faster than the original network and reach higher test
accuracy. The notebook's Conv-4 winning ticket has 94.6% of its weights pruned
(130,097 of 2.43 M parameters left) and reaches 76.3% validation accuracy at its
early-stopping epoch (about 8 epochs), against 75.6% in 8 epochs for the dense Conv-4.
"""

from __future__ import annotations

from functools import partial

from refprune import criteria, engine
from refprune._array import flat_size
from refprune.measures import nonzero_weights, weight_sparsity
from refprune.nn import build_like, build_model, train
from refprune.plots import new_figure, save_figure
from refprune.schedules import imp_sparsity

from ._registry import Option, register_method

OPTIONS = (
    Option("rounds", 10, "pruning rounds after the dense training (round 0)", low=0, metavar="R"),
    Option("conv_rate", 0.1, "fraction of the remaining conv weights pruned per round", low=0, high=1, metavar="P"),
    Option("dense_rate", 0.2, "fraction of the remaining hidden dense weights pruned per round", low=0, high=1,
           metavar="P"),
    Option("output_rate", 0.1, "fraction of the remaining output-layer weights pruned per round", low=0, high=1,
           metavar="P"),
    Option("global_pruning", False, "rank all prunable weights together at --global-rate instead of per layer",
           flag="--global"),
    Option("global_rate", 0.2, "fraction of all remaining weights pruned per round with --global", low=0, high=1,
           metavar="P"),
    Option("criterion", "weight", "what is ranked (refprune.criteria): weight (the paper), unit, N:M such as 2:4 "
           "(the pattern fixes the sparsity), block:AxB such as block:4x4", type=lambda name: criteria.get(name) and
           name, metavar="NAME"),
    Option("distribution", "layerwise", "how a round's sparsity is split over the layers: layerwise (the paper's "
           "per-kind rates), or the round's total imp_sparsity(round, --global-rate) split uniform, erk or er "
           "(refprune.layer_densities)", choices=("layerwise", "uniform", "erk", "er")),
    Option("rewind_step", 0, "rewind survivors to the weights after this many steps of dense training (0 = init)",
           low=0, metavar="K"),
    Option("patience", 3, "early stopping: epochs without improvement of the validation loss", low=1, metavar="E"),
    Option("min_delta", 0.001, "early stopping: smallest decrease of the validation loss that counts", low=0,
           metavar="D"),
    Option("control", True, "skip the random-reinitialization control (it runs by default)", flag="--no-control"),
)


# ---------------------------------------------------------------------- the method's pieces


def layer_rates(model, *, conv_rate, dense_rate, output_rate):
    """Per-round pruning rate of each prunable weight (output layer included), by its kind."""
    rates = {"conv": conv_rate, "dense": dense_rate, "output": output_rate}
    for kind, rate in rates.items():
        if not 0.0 <= float(rate) <= 1.0:
            msg = f"{kind}_rate must be in [0, 1], got {kind}_rate={rate!r}"
            raise ValueError(msg)
    return {name: float(rates[model.weight_kind(name)]) for name in model.prunable(include_output=True)}


def round_amounts(weights, round, *, rates=None, rate=0.2, distribution="layerwise"):
    """The fraction of each weight pruned after ``round`` (>= 1): ``{name: amount}``.

    ``"layerwise"``: :func:`refprune.imp_sparsity` of the layer's own rate. Otherwise the
    round's total :math:`1-(1-p)^r` (``p = rate``) split over the layers by
    :func:`refprune.layer_densities` (``"uniform"``, ``"erk"``, ``"er"``).

    >>> import numpy as np
    >>> w = {"a": np.ones((4, 4)), "b": np.ones((16, 16))}
    >>> round_amounts(w, 1, rate=0.5, distribution="erk")  # half of 272 kept: 'a' dense, 'b' keeps 120 of 256
    {'a': 0.0, 'b': 0.53125}
    """
    if distribution == "layerwise":
        return {n: imp_sparsity(round, rate=rates[n]) for n in weights}
    return criteria.layer_amounts({n: w.shape for n, w in weights.items()},
                                  sparsity=imp_sparsity(round, rate=rate), distribution=distribution)


def next_masks(weights, masks, round, *, rates=None, global_rate=None, criterion="weight", distribution="layerwise",
               rate=0.2):
    r"""The masks of pruning round ``round`` (>= 1), nested in ``masks`` (those of round - 1).

    Layerwise, each weight keeps all but a fraction
    :math:`s_r = 1-(1-p)^r` (:func:`refprune.imp_sparsity`) of its entries, the pruned
    ones chosen among the survivors of ``masks`` by ``criterion`` (smallest :math:`|w|`
    for ``"weight"``). As :math:`s_r - s_{r-1} = p\,(1-s_{r-1})`, each round prunes the
    fraction ``p`` of the weights that remain (up to the rounding of the counts,
    half-even). With ``global_rate`` all weights are ranked together under one budget
    (the criterion's ``global_mask``).

    Parameters
    ----------
    weights : dict of str -> array
        The trained weights by name (pruned entries may hold anything).
    masks : dict of str -> bool array
        The masks of the previous round (``{}`` before the first).
    round : int
        The round being made, >= 1.
    rates : dict of str -> float
        Per-round rate of each weight (layerwise pruning).
    global_rate : float, optional
        One rate over all weights together; overrides ``rates``.
    criterion : str
        A registered criterion (:mod:`refprune.criteria`).
    distribution, rate
        How the round's sparsity is split over the layers (:func:`round_amounts`).

    Returns
    -------
    dict of str -> bool array

    Examples
    --------
    >>> import numpy as np
    >>> w = {"fc": np.asarray([0.5, -0.1, 0.3, 0.2, -0.4])}
    >>> m1 = next_masks(w, {}, 1, rates={"fc": 0.4})  # 0.4 of 5: prune 0.1 and 0.2
    >>> m1["fc"]
    array([ True, False,  True, False,  True])
    >>> next_masks(w, m1, 2, rates={"fc": 0.4})["fc"]  # 1 - 0.6**2 = 0.64 of 5: one more, 0.3
    array([ True, False, False, False,  True])
    """
    if global_rate is not None:
        if criteria.get(criterion).global_mask is None:
            msg = f"criterion {criterion!r} has no global version; use --criterion weight with --global"
            raise ValueError(msg)
        return criteria.layer_masks(weights, criterion=criterion, sparsity=imp_sparsity(round, rate=global_rate),
                                    distribution="global", keeps=masks)
    amounts = round_amounts(weights, round, rates=rates, rate=rate, distribution=distribution)
    return criteria.layer_masks(weights, criterion=criterion, amounts=amounts, keeps=masks)


def expected_sparsity(sizes, round, *, rates=None, global_rate=None):
    """The schedule's sparsity after ``round``: each layer's ``imp_sparsity`` weighted by its size.

    ``sizes`` and ``rates`` map weight names to element counts and per-round rates;
    ``global_rate`` gives ``imp_sparsity(round, rate=global_rate)`` for the whole (also
    when a distribution splits it over the layers).
    """
    total = sum(sizes.values())
    if global_rate is not None:
        return imp_sparsity(round, rate=global_rate)
    return sum(sizes[n] * imp_sparsity(round, rate=rates[n]) for n in sizes) / total


# ---------------------------------------------------------------------- the run


class _Rounds:
    """One lottery run's rounds: the ticket network, its pruning schedule, and how a round is trained and recorded.

    Every round is one :meth:`~refprune.engine.Engine.once` step, so a resumed run redoes
    no finished round; what happens between rounds (pruning and rewinding) is the
    ``setup`` of the round's training phase, done once.
    """

    def __init__(self, eng, o):
        spec, ds = eng.spec, eng.dataset
        self.eng, self.o, self.x = eng, o, eng.extra
        self.model = eng.track(build_model(spec.model, input_shape=ds.input_shape, num_classes=ds.num_classes,
                                           backend=eng.backend, dtype=spec.dtype, rng=eng.rng))
        self.names = self.model.prunable(include_output=True)
        self.sizes = {n: flat_size(w) for n, w in self.model.params().items() if n in self.names}
        self.rates = layer_rates(self.model, conv_rate=o.conv_rate, dense_rate=o.dense_rate,
                                 output_rate=o.output_rate)
        if o.global_pruning and o.distribution != "layerwise":
            msg = "--global ranks all layers together; it does not take --distribution (keep it layerwise)"
            raise ValueError(msg)
        self.global_rate = o.global_rate if o.global_pruning or o.distribution != "layerwise" else None

    def start(self):
        """Round 0's setup: empty tables, and the weights every round rewinds to (theta_0 unless --rewind-step)."""
        self.x.update(tickets=[], controls=[])
        if self.o.rewind_step == 0:
            self.x["rewind"] = self.model.params()

    def capture(self, m, steps):
        if steps == self.o.rewind_step:
            self.x["rewind"] = m.params()

    def prune_and_rewind(self, r):
        """Round ``r``'s setup: prune a rate of the surviving trained weights, rewind the survivors."""
        o, model = self.o, self.model
        trained = model.masked_params()
        masks = next_masks({n: trained[n] for n in self.names}, model.masks(), r, rates=self.rates,
                           global_rate=self.global_rate if o.global_pruning else None, criterion=o.criterion,
                           distribution=o.distribution, rate=o.global_rate)
        model.set_params(self.x["rewind"])
        model.set_masks(masks)

    def fit(self, m, phase, **kw):
        eng, o = self.eng, self.o
        stopper = engine.EarlyStopping(patience=o.patience, min_delta=o.min_delta)
        return eng.train(m, phase=phase, rng=eng.rng_for(phase), step=train.train_step,
                         optimizer=engine.adam(lr=eng.spec.lr), epochs=eng.spec.epochs, stopper=stopper, **kw)

    def record(self, m, r, fit_result):
        return {"round": r, "sparsity": weight_sparsity(m)[0],
                "expected_sparsity": expected_sparsity(self.sizes, r, rates=self.rates, global_rate=self.global_rate),
                "test_accuracy": self.eng.evaluate(m, "test")[1], "best_epoch": fit_result.best_epoch,
                "epochs_run": fit_result.epochs_run, "best_val_loss": fit_result.best_value,
                "weights_remaining": list(nonzero_weights(m).values())}

    def ticket(self, r):
        """Round ``r``: train the ticket (round 0: the dense network), record it."""
        if r == 0:
            result = self.fit(self.model, "round 0", setup=self.start,
                              on_step=self.capture if self.o.rewind_step else None)
            if "rewind" not in self.x:
                msg = (f"rewind_step={self.o.rewind_step} is beyond the {result.steps} steps of the dense training "
                       "(round 0 stopped early); choose a smaller --rewind-step")
                raise ValueError(msg)
        else:
            result = self.fit(self.model, f"round {r}", setup=partial(self.prune_and_rewind, r))
        self.x["tickets"].append(self.record(self.model, r, result))

    def control(self, r):
        """Round ``r``'s control: the ticket's masks on fresh random weights, trained and recorded."""
        net = build_like(self.model.config, backend=self.eng.backend, rng=self.eng.rng_for(f"control init {r}"))
        net.set_masks(self.model.masks())
        self.x["controls"].append(self.record(net, r, self.fit(net, f"round {r} control")))


@register_method("lottery", summary="lottery tickets: iterative magnitude pruning, rewinding to the initial weights, "
                 "random-reinit control", defaults={"model": "mlp-300-100", "epochs": 50, "batch_size": 60,
                                                     "lr": 1.2e-3}, options=OPTIONS)
def run(eng, o):
    """Train, prune a rate of what remains, rewind, retrain; a random-reinit control each round."""
    rounds = _Rounds(eng, o)
    for r in range(o.rounds + 1):
        eng.once(f"ticket {r}", partial(rounds.ticket, r))
        if r > 0 and o.control:
            eng.once(f"control {r}", partial(rounds.control, r))

    tickets, controls = eng.extra["tickets"], eng.extra["controls"]
    by_round = {c["round"]: c for c in controls}
    rows = [{**{k: t[k] for k in ("round", "sparsity", "expected_sparsity", "test_accuracy", "best_epoch",
                                  "epochs_run", "best_val_loss")},
             **{f"control_{k}": by_round.get(t["round"], {}).get(k) for k in ("test_accuracy", "best_epoch",
                                                                             "best_val_loss")}} for t in tickets]
    global_rate = rounds.global_rate
    result = {
        "test_accuracy": tickets[-1]["test_accuracy"],
        "dense_accuracy": tickets[0]["test_accuracy"],
        "pruning": {"global_rate": global_rate} if global_rate is not None else {"rates": rounds.rates},
        "criterion": o.criterion,
        "distribution": o.distribution,
        "rounds": tickets,
        "random_reinit": controls,
    }
    title = f"{eng.spec.model} on {eng.spec.data}"
    return eng.finish(result, model=rounds.model, tables={"rounds": rows},
                      plot=partial(plot, tickets=tickets, controls=controls, title=title))


def plot(path, *, tickets, controls, title=""):
    """Test accuracy and early-stopping epoch against sparsity, tickets and random-reinit control."""
    fig, (ax_acc, ax_ep) = new_figure(ncols=2)
    for rows, label, style in ((tickets, "winning ticket (rewound)", "o-"), (controls, "random reinit", "s--")):
        if not rows:
            continue
        sp = [100.0 * row["sparsity"] for row in rows]
        ax_acc.plot(sp, [row["test_accuracy"] for row in rows], style, label=label, markersize=4)
        ax_ep.plot(sp, [row["best_epoch"] for row in rows], style, label=label, markersize=4)
    dense = tickets[0]["test_accuracy"]
    ax_acc.axhline(dense, color="gray", linestyle=":", linewidth=1, label=f"dense ({dense:.3f})")
    ax_acc.set_ylabel("test accuracy at early stopping")
    ax_ep.set_ylabel("epoch of best validation loss")
    for ax in (ax_acc, ax_ep):
        ax.set_xlabel("weights pruned (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Iterative magnitude pruning: {title}", fontsize=10)
    save_figure(fig, path)
