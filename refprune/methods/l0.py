r"""L0 regularization with hard-concrete gates (Louizos, Welling & Kingma, ICLR 2018).

Every dense layer multiplies its *input units* and every convolution its *output
channels* by gates z in [0, 1]. During training each gate is a hard-concrete sample
with a learned location log_alpha (temperature beta = 2/3, stretch (-0.1, 1.1)):

    u ~ U(0, 1),   s = sigmoid((log u - log(1 - u) + log_alpha) / beta)
    z = min(1, max(0, s * 1.2 - 0.1))

so a gate is exactly 0 or exactly 1 with positive probability, and the expected L0
norm is differentiable in log_alpha. The loss is the paper's (its Eq. 14 with the
L2 term folded in, its code's ``regularization``):

    L = CE(minibatch) + (1/N) * sum_l R_l,
    R_l = sum_g P(z_g != 0) * sum_{j in g} (lam_l + weight_decay_l / 2 * w_j^2)

with N the size of the training set, P(z != 0) = sigmoid(log_alpha - beta *
log(0.1/1.1)), one lam per gated layer (``--lam``) and the L2 term inside the
expectation (``--weight-decay``). One gate vector is drawn per minibatch (per example
with ``--local-rep``). Parameters are updated by Adam with a separate, larger rate for
the gates (``--gate-lr``), and after every step log_alpha is clamped to
[log 1e-2, log 1e2] (the layers' own constraint, as the paper's
``constrain_parameters``). At test time the gates are deterministic:

    z_test = min(1, max(0, sigmoid(log_alpha) * 1.2 - 0.1))

and a gate with z_test = 0 removes its unit or channel. The pruned architecture is
the count of open test-time gates per gated layer.

Reported: ``gates`` (gates per gated layer before, open test-time gates after; for
LeNet-5 the order is conv1 channels, conv2 channels, fc1 input units, output-layer
input units), ``expected_l0`` and ``expected_flops`` (the paper's
``count_expected_flops_and_l0``), ``test_accuracy`` with the test-time gates,
``pruned_unit_fraction`` (closed gates / all gates), and the measures every method
reports of its test-time network ``z_test * w`` (a closed gate zeroes its whole row or
channel): ``weight_sparsity`` and ``architecture`` (the units alive per layer, which
for these networks are the open gates unless a unit lost all its other connections).
Also ``test_accuracy_sampled_gates`` (the test accuracy with gates sampled as in
training, one gate vector per minibatch, mean over 10 draws, and its range) and
``half_open_gates`` (test-time gates strictly between 0 and 1, total and per layer:
gates that have not converged; every gate starts half-open).

How lam, N and the gate learning rate meet the number of steps. The penalty enters
each step's gradient as lam/N (per weight of a gate's group, times dP(z != 0)/d
log_alpha), the data term does not depend on N: lam and N act only through lam/N, and
the same lam/N prunes alike on a data set of any size (``--penalty-n`` sets N; the
paper's lambdas are for N = 60,000, so on N = 3,500 the paper's balance is lam * 3500
/ 60000). The gate learning rate sets how fast that balance is reached: Adam moves
log_alpha by at most about gate_lr a step, whatever the size of its gradient, and a
test-time gate is 0 only for log_alpha < -log 11 = -2.4 and 1 only for log_alpha >
+2.4 (it starts at log((1-d)/d), 0 for droprate_init d = 0.5). So a gate needs at
least 2.4/gate_lr steps of steady pressure to close, many more when the data gradient
is noisy, and until then it sits half-open: the test-time network then scales units
by factors that training (where samples are mostly exactly 0 or 1) never used, and its
accuracy departs from the sampled one. The paper trains 200 epochs x 600 steps =
120,000 steps at gate_lr 1e-3 (log_alpha can travel 120); on mnist5k an epoch is 35
steps of 100, so 100 epochs at 1e-3 (3,500 steps, a travel of 3.5) leave almost every
gate where it started. Rule of thumb: keep gate_lr x steps near the paper's 100 or
more (0.05 x 3,500 = 175), then choose lam/N for the sparsity wanted.

Defaults (digits, 8x8 images, N = 1077): LeNet-5-Caffe (20-50-200-500 gates on 8x8
inputs), lam = 1, 0.05, 0.01, 0.2, weight decay 5e-4, droprate_init 0.2, Adam lr 2e-3
for the weights and 0.05 for the gates, batch 50, 50 epochs. The penalty is scaled by
1/N, so lam values tuned on digits are about 55 times stronger than the same numbers
on MNIST; the paper's lambdas are for N = 60,000. On ``--data mnist5k`` (28x28, N =
3,500) LeNet-5-Caffe's default lam is the paper's 'lambda sep.' at its per-example
strength, 10, 0.5, 0.1, 0.1 x 3500/60000 = 0.6, 0.03, 0.006, 0.006 (``DATA_LAM``).
The small-data setting that prunes like the paper there (3,500 steps, gate_lr 0.05)::

    refprune run l0 --data mnist5k --lr 1e-3 --batch-size 100 --epochs 100 --droprate-init 0.5

measured: 20-50-800-500 -> 14-16-88-447 open gates at 0.973 (seed 0) and 14-16-89-446
at 0.965 (seed 1), 0.970 / 0.963 with sampled gates, weight sparsity 0.87 (the paper's
LeNet-5 result: 9-18-65-25). With the paper's gate_lr 1e-3 instead, 100 epochs end at
20-50-797-500 with 1,367 of the 1,370 gates half-open.

The paper's LeNet-5-Caffe run (MNIST, its ``train_lenet5.py``: Adam 1e-3 for every
parameter, batch 100, 200 epochs, weight decay 5e-4 inside the penalty, droprate_init
0.5, N = 60,000; the validation split here holds out 5,000 images, so pass N)::

    refprune run l0 --data mnist --data-dir DIR --model lenet5 \
        --lam 10,0.5,0.1,0.1 --weight-decay 5e-4 --droprate-init 0.5 \
        --lr 1e-3 --gate-lr 1e-3 --batch-size 100 --epochs 200 --penalty-n 60000

(``--lam 0.1`` for the paper's lambda = 0.1/N column; ``--local-rep`` for one gate
sample per example.) The MLP (784-300-100, droprate_init 0.2 for the input layer)::

    refprune run l0 --data mnist --data-dir DIR --model mlp-300-100 --lam 0.1 \
        --droprate-init 0.2,0.5,0.5 --lr 1e-3 --gate-lr 1e-3 --batch-size 100 \
        --epochs 200 --penalty-n 60000

Reported in the paper (Table 1, pruned architecture and test error after 200
epochs): LeNet-5-Caffe 20-50-800-500 -> 20-25-45-462 at 0.9% (lambda = 0.1/N) and
-> 9-18-65-25 at 1.0% (lambda sep.: 10, 0.5, 0.1, 0.1); MLP 784-300-100 ->
219-214-100 at 1.4% (lambda = 0.1/N). The paper's code differs in small ways from
this implementation (see ``refprune.nn.layers.L0Conv2d``): the conv bias is gated
with its channel and its L0 term has the sign of the paper's equation; FLOPs use the
true output size. The MLP of the paper's code also keeps an exponential moving
average of the parameters for evaluation (``beta_ema``), which is not reproduced.
"""

from __future__ import annotations

from functools import partial

from refprune import engine, gates
from refprune._array import namespace
from refprune.measures import architecture
from refprune.nn import build_model, train
from refprune.nn.models import format_architecture
from refprune.plots import new_figure, save_figure

from ._registry import Option, integer, numbers, register_method

#: lam per gated layer when ``--lam`` is not given, tuned on digits (N = 1077).
PRESET_LAM = {
    "lenet5": (1.0, 0.05, 0.01, 0.2),
    "mlp-300-100": (0.05, 0.05, 0.2),
}
#: lam for every gated layer of the other presets.
OTHER_LAM = 0.1
#: lam per gated layer for a (model, data set) pair, before PRESET_LAM: the paper's LeNet-5
#: 'lambda sep.' 10, 0.5, 0.1, 0.1 at N = 60000, rescaled to mnist5k's N = 3500 (the same
#: penalty per training example: lam * 3500 / 60000).
DATA_LAM = {
    ("lenet5", "mnist5k"): (0.6, 0.03, 0.006, 0.006),
}


def default_lam(model, data):
    """The lam of a run that does not give ``--lam``: :data:`DATA_LAM`, then :data:`PRESET_LAM`, then :data:`OTHER_LAM`."""
    return DATA_LAM.get((model, data), PRESET_LAM.get(model, OTHER_LAM))

_PER_LAYER = ("lam", "weight_decay", "droprate_init")


def _droprates(value):
    value = numbers(value)
    for d in value if isinstance(value, tuple) else (value,):
        if not 0.0 < d < 1.0:
            msg = f"each drop rate must be in (0, 1), got {value!r}"
            raise ValueError(msg)
    return value


def _lams(value):
    return None if value is None else numbers(value)


_LAM_DEFAULTS = "; ".join([*(f"{m} on {d}: {','.join(str(v) for v in lams)}" for (m, d), lams in DATA_LAM.items()),
                           *(f"{k}: {','.join(str(v) for v in lams)}" for k, lams in PRESET_LAM.items())])

OPTIONS = (
    Option("lam", None, "L0 strength per weight: one value for every gated layer or a comma list with one per gated "
           f"layer, in layer order (the penalty is scaled by 1/N). Unset: {_LAM_DEFAULTS}; other presets "
           f"{OTHER_LAM}. The paper's LeNet-5 'lambda sep.' is 10,0.5,0.1,0.1 (for N = 60000)", type=_lams,
           low=0, metavar="L[,L...]"),
    Option("weight_decay", 5e-4, "L2 strength inside the expected-L0 penalty, wd/2 * w^2 per weight weighted by "
           "P(gate open), scaled by 1/N like lam; one value or one per gated layer", type=numbers, low=0,
           metavar="WD[,WD...]"),
    Option("droprate_init", 0.2, "initial gate drop rate d: log_alpha ~ N(log(1-d) - log(d), 0.01) (paper: 0.5; 0.2 "
           "for the MLP input layer); one value in (0, 1) or one per gated layer", type=_droprates,
           metavar="D[,D...]"),
    Option("gate_lr", 0.05, "learning rate of the gate locations log_alpha (--lr is the weights' rate); the paper's "
           "code uses one rate for both, 1e-3", positive=True),
    Option("temperature", gates.BETA, "hard-concrete temperature beta: lower gives more nearly binary gate samples",
           positive=True),
    Option("local_rep", False, "sample one gate vector per example instead of one per minibatch (the paper's "
           "local_rep)"),
    Option("penalty_n", None, "N in the loss CE + (1/N) sum_l R_l; unset: the training-set size (the paper's LeNet-5 "
           "uses 60000)", type=integer, low=1, metavar="N"),
    Option("optimizer", "adam", "adam (the paper's LeNet-5 and MLP) or sgd with Nesterov momentum (its wide ResNet)",
           choices=("adam", "sgd")),
    Option("momentum", 0.9, "momentum of --optimizer sgd", low=0, high=1),
)


def make_optimizer(o, *, lr):
    """Adam or Nesterov SGD with the gates' own rate: ``lr={"*.log_alpha": gate_lr, "*": lr}``."""
    rates = {"*.log_alpha": o.gate_lr, "*": lr}
    if o.optimizer == "adam":
        return engine.adam(lr=rates)
    return engine.sgd(lr=rates, momentum=o.momentum, nesterov=o.momentum > 0)


def half_open_gates(model):
    """Test-time gates strictly between 0 and 1, per gated layer (Python ints).

    Such a gate neither removes its unit nor passes it unchanged: the test-time network
    scales the unit by z_test, which training (with gates sampled at 0 or 1 most of the
    time) never did. Many of them mean the gates have not converged.
    """
    counts = []
    for _, layer in model.gated():
        z = layer.test_gates()
        xp = namespace(None, z=z)
        counts.append(int(xp.count_nonzero((z > 0) & (z < 1))))
    return counts


def sampled_gate_accuracy(eng, model, *, split="test", draws=10, batch_size=None):
    """Accuracy with hard-concrete gate samples (training mode), averaged over ``draws`` passes.

    Each pass draws one gate vector per minibatch of ``batch_size`` (the run's), as in
    training, from the run's ``"sampled-gates"`` stream (so the training stream is not
    touched). The model's buffers are put back afterwards. Returns ``(mean, min, max)``.
    """
    rng, batch_size = eng.rng_for("sampled-gates"), batch_size or eng.spec.batch_size
    accuracies = [eng.evaluate(model, split, batch_size=batch_size, train=True, rng=rng)[1] for _ in range(draws)]
    return sum(accuracies) / draws, min(accuracies), max(accuracies)


def _gate_columns(model):
    flops, l0 = model.expected_flops_and_l0()
    return {**{f"open_{name}": layer.open_gates() for name, layer in model.gated()},
            "half_open_gates": sum(half_open_gates(model)), "expected_l0": l0, "expected_flops": flops}


@register_method("l0", summary="L0 regularization with hard-concrete gates (Louizos et al. 2018): prunes units and "
                 "channels", defaults={"model": "lenet5", "epochs": 50, "batch_size": 50, "lr": 2e-3}, options=OPTIONS)
def run(eng, o):
    """Train an L0-gated network: loss + (1/N) sum of the expected-L0 penalties, gates clamped after each step."""
    spec, ds = eng.spec, eng.dataset
    settings = {"lam": o.lam if o.lam is not None else default_lam(spec.model, spec.data),
                "weight_decay": o.weight_decay, "droprate_init": o.droprate_init}
    # build_model refuses a per-layer list of lam, weight_decay or droprate_init of the wrong length
    model = eng.track(build_model(spec.model, input_shape=ds.input_shape, num_classes=ds.num_classes,
                                  backend=eng.backend, rng=eng.rng, dtype=spec.dtype, l0=True,
                                  temperature=o.temperature, local_rep=o.local_rep, **settings))
    penalty_n = o.penalty_n or len(ds.y_train)

    def measure(m):
        val_loss, val_acc = eng.evaluate(m, "val")
        return {"val_loss": val_loss, "val_accuracy": val_acc, **_gate_columns(m)}

    eng.train(model, step=partial(train.train_step, penalty_scale=1.0 / penalty_n), epochs=spec.epochs,
              optimizer=make_optimizer(o, lr=spec.lr), measure=measure, initial_row=True)

    test_loss, test_acc = eng.evaluate(model, "test")
    sampled, sampled_min, sampled_max = sampled_gate_accuracy(eng, model)
    flops, l0 = model.expected_flops_and_l0()
    before, after, half_open = model.gate_sizes(), model.open_gates(), half_open_gates(model)
    gated = [name for name, _ in model.gated()]
    result = {
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "test_accuracy_sampled_gates": sampled,
        "test_accuracy_sampled_gates_range": [sampled_min, sampled_max],
        "half_open_gates": sum(half_open),
        "half_open_gates_by_layer": half_open,
        "val_accuracy": eng.rows[-1]["val_accuracy"],
        "gates": {"layers": gated, "before": before, "after": after},
        "gates_string": f"{format_architecture(before)} -> {format_architecture(after)}",
        "pruned_unit_fraction": 1.0 - sum(after) / sum(before),
        "expected_l0": l0,
        "expected_flops": flops,
        "penalty_n": penalty_n,
        "lam": list(settings["lam"]) if isinstance(settings["lam"], tuple) else settings["lam"],
    }
    return eng.finish(result, model=model, plot=partial(plot, rows=eng.rows, gated=gated, sizes=before,
                                                        alive=architecture(model)["after"]))


# ---------------------------------------------------------------------------- plot


def plot(path, *, rows, gated, sizes, alive):
    """Open gates per layer (fraction of the layer) and accuracies over the epochs.

    The title gives both counts: the open test-time gates and the alive units (``alive``,
    the architecture the run reports; a unit behind an open gate may still be cut off).
    """
    fig, (ax_gates, ax_acc) = new_figure(ncols=2)
    epochs = [r["epoch"] for r in rows]
    for name, size in zip(gated, sizes):
        counts = [r[f"open_{name}"] for r in rows]
        ax_gates.plot(epochs, [c / size for c in counts], label=f"{name}: {size} -> {counts[-1]}")
    ax_gates.set_xlabel("epoch")
    ax_gates.set_ylabel("open test-time gates (fraction of layer)")
    ax_gates.set_ylim(0, 1.05)
    ax_gates.set_title(f"open gates {format_architecture([rows[-1][f'open_{n}'] for n in gated])}, "
                       f"alive units {format_architecture(alive)}")
    ax_gates.legend(fontsize="small")
    train_rows = [r for r in rows if "train_accuracy" in r]
    ax_acc.plot([r["epoch"] for r in train_rows], [r["train_accuracy"] for r in train_rows],
                label="train (sampled gates)")
    ax_acc.plot(epochs, [r["val_accuracy"] for r in rows], label="validation (test-time gates)")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(0, 1.02)
    ax_acc.legend(fontsize="small", loc="center right")
    ax_l0 = ax_acc.twinx()
    ax_l0.plot(epochs, [r["expected_l0"] for r in rows], color="grey", linestyle="--", label="expected L0")
    ax_l0.set_ylabel("expected L0 (dashed)")
    save_figure(fig, path)
