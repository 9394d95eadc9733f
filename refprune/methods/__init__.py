"""The pruning methods: each an algorithm on the engine, registered with its options.

======================  ===============================================================
``l0``                  L0 regularization with hard-concrete gates (Louizos et al. 2018)
``rvsm``                relaxed variable splitting with a hard-thresholding operator
``magnitude``           magnitude weight pruning vs unit pruning, swept over sparsity
``lottery``             lottery tickets: iterative magnitude pruning with rewinding
``binary``              weight-invariant self-pruning binarized networks
``gmp``                 gradual magnitude pruning during training (Zhu & Gupta 2017)
``snip``                pruning at initialization by connection saliency (Lee et al. 2019)
``set``                 sparse evolutionary training: random drop/grow (Mocanu et al. 2018)
``rigl``                rigged lottery: drop by magnitude, grow by gradient (Evci et al. 2020)
======================  ===============================================================

A method is one module here: ``run(eng, o)`` decorated with
:func:`~refprune.methods._registry.register_method`, which declares its defaults and
options once (:class:`Option`); the ``refprune run`` command line, :func:`run` and the
docs are built from that declaration. ``run`` receives a :class:`refprune.engine.Engine`
(data, random streams, the training loop, checkpoints, result files) and the
validated options, and returns ``eng.finish(...)``.

>>> from refprune import methods
>>> "l0" in methods.names()
True
>>> methods.get("l0").option("gate_lr").default
0.05
"""

from __future__ import annotations

from ._registry import COMMON_OPTIONS, METHODS, Method, Option, execute, get, make_spec, names, register_method, run

__all__ = ["COMMON_OPTIONS", "METHODS", "Method", "Option", "execute", "get", "make_spec", "names", "register_method",
           "run"]
