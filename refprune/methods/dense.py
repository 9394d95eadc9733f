r"""Dense training: a network trained with Adam, nothing pruned.

The baseline of every pruning experiment, and the trained network that one-shot
pruning starts from (``--init-from RUN``). Any preset on any data set; its reason to
exist is the small language model: ``gpt-tiny`` (:class:`refprune.nn.Transformer`, every
layer with hand-written gradients) on ``stdlib``, the running interpreter's own Python
sources as bytes::

    refprune run dense --data stdlib --model gpt-tiny

Each step minimizes the mean next-byte cross entropy over every position of the
minibatch's windows, :math:`L = -\frac{1}{BT}\sum_{b,t}\log p(x_{b,t+1}\mid x_{b,\le t})`
(:func:`refprune.nn.functional.softmax_cross_entropy` on the ``(B*T, 256)`` logits).
On a byte corpus the held-out loss is reported as **bits per byte**,
:math:`L/\ln 2`, and **perplexity** per byte, :math:`e^{L}`, beside the byte-frequency
(unigram) baseline, :func:`refprune.data.unigram_bits_per_byte`: a model that beats it
reads the context. ``result.json`` also holds the corpus's ``info`` (Python version,
files and bytes per split, SHA-256 of the text, which differs between Python versions).

Result keys: ``test_loss``, ``test_accuracy`` (next-byte accuracy for a language model);
for a byte corpus ``test_bits_per_byte``, ``test_perplexity``, ``val_bits_per_byte``,
``unigram_bits_per_byte`` (test and val) and ``corpus``. Files: ``metrics.csv`` (one
row per epoch), ``plot.png`` (held-out bits per byte, or loss, per epoch),
``checkpoint.npz``, ``final.npz``.

Defaults: Adam lr 2e-3, batch 32, 2 epochs: for ``--model gpt-tiny`` (width 128, 2
blocks, 4 heads, context 64) 626 steps over the 9,999 training windows of ``stdlib``;
an epoch-0 row measures the untrained network. ``--width``, ``--blocks`` and ``--heads``
change gpt-tiny's size. The default model is ``mlp-300-100``, so that the method runs
on every data set (``refprune demo``); for a dense MLP on digits worth pruning, train it
longer: ``refprune run dense --data digits --epochs 20 --lr 1e-3``.
"""

from __future__ import annotations

import math
from functools import partial

from refprune import data as datasets
from refprune import engine
from refprune.nn import PRESETS, build_model, train
from refprune.plots import new_figure, save_figure

from ._registry import Option, register_method

#: Sequences per evaluation batch of a language model (the logits of 256 x 64 positions).
LM_EVAL_BATCH = 256

OPTIONS = (
    Option("width", 0, "gpt-tiny: width of the residual stream (0: the preset's 128)", low=0),
    Option("blocks", 0, "gpt-tiny: transformer blocks (0: the preset's 2)", low=0),
    Option("heads", 0, "gpt-tiny: attention heads (0: the preset's 4)", low=0),
)


def _model_options(o):
    return {k: getattr(o, k) for k in ("width", "blocks", "heads") if getattr(o, k)}


def is_text(dataset):
    """True for a byte corpus (integer windows with next-byte targets, such as ``stdlib``)."""
    return dataset.x_train.dtype.kind in "iu" and dataset.y_train.ndim == 2


def held_out(eng, model, split):
    """``{f"{split}_loss", f"{split}_accuracy"}`` and, on a byte corpus, bits per byte and perplexity."""
    text = is_text(eng.dataset)
    loss, accuracy = eng.evaluate(model, split, batch_size=LM_EVAL_BATCH if text else 1000)
    out = {f"{split}_loss": loss, f"{split}_accuracy": accuracy}
    if text:
        out[f"{split}_bits_per_byte"] = loss / math.log(2.0)
        out[f"{split}_perplexity"] = math.exp(loss)
    return out


@register_method("dense", summary="train a network dense, no pruning: the baseline, and the trained model one-shot "
                 "pruning starts from (gpt-tiny on stdlib: held-out bits per byte)",
                 defaults={"model": "mlp-300-100", "epochs": 2, "batch_size": 32, "lr": 2e-3}, options=OPTIONS)
def run(eng, o):
    """Build, train with Adam, evaluate on the held-out splits."""
    spec, ds = eng.spec, eng.dataset
    options = _model_options(o)
    if is_text(ds) != PRESETS[spec.model].tokens:
        msg = (f"--model {spec.model} does not read {spec.data}: a byte corpus (--data stdlib) needs --model gpt-tiny, "
               "images or features an MLP or conv preset")
        raise ValueError(msg)
    if options and spec.model != "gpt-tiny":
        msg = f"--width, --blocks and --heads size gpt-tiny; --model {spec.model} takes none of them"
        raise ValueError(msg)
    model = eng.track(build_model(spec.model, input_shape=ds.input_shape, num_classes=ds.num_classes,
                                  backend=eng.backend, rng=eng.rng, dtype=spec.dtype, **options))
    eng.train(model, step=train.train_step, optimizer=engine.adam(lr=spec.lr), epochs=spec.epochs,
              measure=lambda m: held_out(eng, m, "val"), initial_row=True)
    result = {**held_out(eng, model, "val"), **held_out(eng, model, "test")}
    if is_text(ds):
        result["unigram_bits_per_byte"] = {
            "test": datasets.unigram_bits_per_byte(ds.y_train, ds.y_test, vocabulary=ds.num_classes),
            "val": datasets.unigram_bits_per_byte(ds.y_train, ds.y_val, vocabulary=ds.num_classes)}
        result["corpus"] = ds.info
    return eng.finish(result, model=model, plot=partial(plot, rows=eng.rows, result=result,
                                                        title=f"{spec.model} on {spec.data}"))


def plot(path, *, rows, result, title=""):
    """Held-out bits per byte (or loss) and the training loss per epoch, with the unigram baseline."""
    fig, (ax,) = new_figure()
    text = "unigram_bits_per_byte" in result
    scale = 1.0 / math.log(2.0) if text else 1.0
    trained = [r for r in rows if "loss" in r]  # the epoch-0 row measures the untrained network only
    ax.plot([r["step"] for r in trained], [r["loss"] * scale for r in trained], "o-", label="training (epoch mean)")
    ax.plot([r["step"] for r in rows], [r["val_bits_per_byte" if text else "val_loss"] for r in rows], "s-",
            label="validation")
    if text:
        base = result["unigram_bits_per_byte"]["val"]
        ax.axhline(base, color="gray", linestyle=":", label=f"unigram baseline ({base:.2f})")
    ax.set_xlabel("optimizer steps")
    ax.set_ylabel("bits per byte" if text else "cross entropy (nats)")
    ax.set_title(f"Dense training\n{title}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)
