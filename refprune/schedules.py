"""Pruning schedules: when to prune and to which sparsity (plain Python numbers).

The two step schedules follow TensorFlow Model Optimization's ``ConstantSparsity``
and ``PolynomialDecay`` (the latter is Zhu & Gupta's automated gradual pruning,
AGP). Each returns ``(update, sparsity)``: ``update`` says whether the masks are
recomputed at this step, ``sparsity`` is the target fraction to prune then.

**When ``update`` is True** (TFMOT's rule, boundaries included)::

    update = begin <= step and (end == -1 or step <= end) and (step - begin) % frequency == 0

* ``step == begin``: always an update (``0 % frequency == 0``).
* ``step == end``: an update only when ``end - begin`` is a multiple of
  ``frequency``; the last update is at the largest ``begin + j*frequency <= end``.
* ``end == -1`` (constant schedule only): no end, updates every ``frequency``
  steps forever.
* Steps before ``begin`` or after ``end`` never update.

``sparsity`` is returned for every step, also when ``update`` is False (TFMOT does
the same): the constant schedule always returns ``target``; the polynomial one
clips its progress to [0, 1], so it is ``initial`` before ``begin`` and ``final``
after ``end``.

Differences from TFMOT: sparsities may be 1.0 (TFMOT requires ``< 1``), the
polynomial schedule needs ``end > begin`` (TFMOT accepts ``end == begin`` and then
divides by zero), and the arithmetic is Python float64 rather than float32.

**Relative vs absolute step counting** (``counting=``). TFMOT counts the frequency
from ``begin`` (``"relative"``, the default above); JaxPruner's ``PeriodicSchedule``
and ``PolynomialSchedule`` count it from step 0 (``"absolute"``)::

    update = begin <= step and (end == -1 or step <= end) and step % frequency == 0

so with ``begin=150, frequency=100`` TFMOT updates at 150, 250, ... and JaxPruner at
200, 300, ...; with ``"absolute"`` the first update is the first multiple of
``frequency`` at or after ``begin`` (and there is none when no multiple lies in
``[begin, end]``). :func:`is_update_step` is the rule alone.

**When the target is reached.** The sparsity returned at a step is applied only at
update steps, so a schedule *reaches* its target at the first update step whose
sparsity equals it:

* :func:`constant_sparsity`: at the first update (``begin`` when relative).
* :func:`polynomial_sparsity` (TFMOT): the sparsity is ``final`` from step ``end``
  on, but the masks get it only if ``end`` is an update step, i.e. when
  ``end - begin`` is a multiple of ``frequency`` (relative). Otherwise the last
  update is at ``begin + j*frequency < end`` with a sparsity below ``final``, which
  is then never applied: ``begin=0, end=1000, frequency=300`` updates at 0, 300,
  600, 900 and ends at ``s(900) = 0.999 * final`` (``initial=0``).
* :func:`jaxpruner_polynomial_sparsity` (JaxPruner): progress counts ``step + 1``,
  so the sparsity is the target from step ``end - 1`` on, one step before TFMOT's;
  it is applied at the first multiple of ``frequency`` in ``[end - 1, end]``, if any.
* :func:`one_shot_sparsity`: at its one step ``at``.
"""

from __future__ import annotations


from ._array import check_finite_scalar, check_int

__all__ = [
    "constant_sparsity",
    "polynomial_sparsity",
    "imp_sparsity",
    "is_update_step",
    "one_shot_sparsity",
    "jaxpruner_polynomial_sparsity",
]

COUNTINGS = ("relative", "absolute")


def _fraction(name, value):
    value = check_finite_scalar(name, value)
    if not 0.0 <= value <= 1.0:
        msg = f"{name} must be a sparsity in [0, 1], got {name}={value!r}"
        raise ValueError(msg)
    return value


def _should_update(step, begin, end, frequency, counting="relative"):
    in_range = begin <= step and (end == -1 or step <= end)
    origin = begin if counting == "relative" else 0
    return in_range and (step - origin) % frequency == 0


def _check_counting(counting):
    if not isinstance(counting, str) or counting not in COUNTINGS:
        msg = f"counting must be one of {', '.join(map(repr, COUNTINGS))}, got counting={counting!r}"
        raise ValueError(msg)
    return counting


def is_update_step(step, *, begin=0, end=-1, frequency=100, counting="relative"):
    r"""Whether masks are updated at ``step``: inside ``[begin, end]`` and on the frequency grid.

    .. math:: \text{begin} \le \text{step} \le \text{end}\ (\text{or end} = -1) \ \wedge
              (\text{step} - o) \bmod \text{frequency} = 0, \quad
              o = \text{begin}\ (\text{"relative"}, \text{TFMOT}) \text{ or } 0\ (\text{"absolute"}, \text{JaxPruner})

    Parameters
    ----------
    step : int
    begin : int
        First step that may update, ``>= 0``.
    end : int
        Last step that may update (inclusive), ``>= begin``, or ``-1`` for no end.
    frequency : int
        ``>= 1``.
    counting : {"relative", "absolute"}
        Count the frequency from ``begin`` (TFMOT) or from step 0 (JaxPruner).

    Returns
    -------
    bool

    Examples
    --------
    >>> from refprune import is_update_step
    >>> [s for s in range(0, 500) if is_update_step(s, begin=150, end=450, frequency=100)]
    [150, 250, 350, 450]
    >>> [s for s in range(0, 500) if is_update_step(s, begin=150, end=450, frequency=100, counting="absolute")]
    [200, 300, 400]
    """
    step = check_int("step", step)
    begin, end, frequency = _check_steps(begin, end, frequency, allow_no_end=True)
    return _should_update(step, begin, end, frequency, _check_counting(counting))


def constant_sparsity(step, *, target, begin=0, end=-1, frequency=100, counting="relative"):
    r"""Constant target sparsity, pruned every ``frequency`` steps in ``[begin, end]``.

    .. math:: s(\text{step}) = \text{target}

    Parameters
    ----------
    step : int
        The current training step (any int; before ``begin`` nothing happens).
    target : float
        Sparsity in [0, 1].
    begin : int
        First pruning step, ``>= 0``.
    end : int
        Last step that may prune (inclusive), ``>= begin``, or ``-1`` for no end.
    frequency : int
        Prune every ``frequency`` steps counted from ``begin``, ``>= 1``.
    counting : {"relative", "absolute"}
        Count the frequency from ``begin`` (TFMOT, the default) or from step 0
        (JaxPruner's ``PeriodicSchedule``); see :func:`is_update_step`.

    Returns
    -------
    (bool, float)
        ``(update, target)``; see the module docstring for the exact update rule.

    Examples
    --------
    >>> from refprune import constant_sparsity
    >>> [constant_sparsity(s, target=0.5, begin=10, end=30, frequency=10)[0] for s in (9, 10, 15, 20, 30, 40)]
    [False, True, False, True, True, False]
    >>> constant_sparsity(10**6, target=0.5)
    (True, 0.5)
    """
    step = check_int("step", step)
    target = _fraction("target", target)
    begin, end, frequency = _check_steps(begin, end, frequency, allow_no_end=True)
    return _should_update(step, begin, end, frequency, _check_counting(counting)), target


def polynomial_sparsity(step, *, initial, final, begin, end, power=3, frequency=100, counting="relative"):
    r"""Polynomial decay from ``initial`` to ``final`` sparsity (TFMOT ``PolynomialDecay``, AGP).

    .. math::
        p = \operatorname{clip}\!\Big(\frac{\text{step} - \text{begin}}{\text{end} - \text{begin}}, 0, 1\Big),
        \qquad s = \text{final} + (\text{initial} - \text{final})(1 - p)^{\text{power}}

    Parameters
    ----------
    step : int
        The current training step.
    initial, final : float
        Sparsities in [0, 1] at ``begin`` and from ``end`` on.
    begin, end : int
        ``0 <= begin < end``; ``end`` is inclusive for updates and must be given
        (``end <= begin``, including ``-1``, is a ``ValueError``).
    power : float
        Exponent, finite and ``> 0`` (3 in AGP).
    frequency : int
        Prune every ``frequency`` steps counted from ``begin``, ``>= 1``.
    counting : {"relative", "absolute"}
        Count the frequency from ``begin`` (TFMOT, the default) or from step 0.

    Returns
    -------
    (bool, float)
        ``(update, s)``; ``s`` is defined at every step (``initial`` up to ``begin``,
        ``final`` from ``end``). The masks reach ``final`` only if ``end`` is an
        update step (module docstring).

    Examples
    --------
    >>> from refprune import polynomial_sparsity
    >>> polynomial_sparsity(50, initial=0.0, final=0.5, begin=0, end=100, frequency=10)
    (True, 0.4375)
    >>> polynomial_sparsity(105, initial=0.0, final=0.5, begin=0, end=100, frequency=10)
    (False, 0.5)
    """
    step = check_int("step", step)
    initial = _fraction("initial", initial)
    final = _fraction("final", final)
    power = check_finite_scalar("power", power, positive=True)
    begin, end, frequency = _check_steps(begin, end, frequency, allow_no_end=False)
    counting = _check_counting(counting)
    progress = min(1.0, max(0.0, (step - begin) / (end - begin)))
    sparsity = final + (initial - final) * (1.0 - progress) ** power
    return _should_update(step, begin, end, frequency, counting), sparsity


def one_shot_sparsity(step, *, target, at):
    r"""One-shot pruning: the masks are computed once, at step ``at``, to ``target``.

    .. math:: \text{update} = (\text{step} = \text{at}), \qquad s = \text{target}

    JaxPruner's ``OneShotSchedule``; the same as
    ``constant_sparsity(step, target=target, begin=at, end=at)``. The sparsity is
    returned at every step (as there), but it is applied only at ``at``: before, no
    mask has been computed; after, the mask of step ``at`` stays.

    Parameters
    ----------
    step : int
    target : float
        Sparsity in [0, 1].
    at : int
        The pruning step, ``>= 0``.

    Returns
    -------
    (bool, float)

    Examples
    --------
    >>> from refprune import one_shot_sparsity
    >>> [one_shot_sparsity(s, target=0.9, at=100)[0] for s in (0, 99, 100, 101)]
    [False, False, True, False]
    """
    step = check_int("step", step)
    target = _fraction("target", target)
    at = check_int("at", at, minimum=0)
    return step == at, target


def jaxpruner_polynomial_sparsity(step, *, target, begin, end, power=3, frequency=100):
    r"""JaxPruner's ``PolynomialSchedule``: from 0 to ``target``, progress counted from ``step + 1``.

    .. math::
        p = \operatorname{clip}\!\Big(\frac{\text{step} + 1 - \text{begin}}{\text{end} - \text{begin}}, 0, 1\Big)
        \ (p = 1 \text{ when end} = \text{begin}), \qquad
        s = \text{target}\,\big(1 - (1 - p)^{\text{power}}\big)

    with updates on JaxPruner's absolute grid: ``begin <= step <= end`` and
    ``step % frequency == 0``. Compared with TFMOT's
    :func:`polynomial_sparsity` (``initial=0``): the sparsity here at ``step`` is
    TFMOT's at ``step + 1``, so it reaches the target at ``end - 1`` (one step
    earlier) and is already above 0 at ``begin``; the frequency counts from step 0,
    not from ``begin``; and ``end == begin`` is allowed (the target at every step).

    Parameters
    ----------
    step : int
    target : float
        Final sparsity in [0, 1].
    begin, end : int
        ``0 <= begin <= end``.
    power : float
        Exponent, finite and ``> 0`` (3).
    frequency : int
        ``>= 1``; updates at the multiples of ``frequency`` in ``[begin, end]``.

    Returns
    -------
    (bool, float)

    Examples
    --------
    >>> from refprune import jaxpruner_polynomial_sparsity, polynomial_sparsity
    >>> jaxpruner_polynomial_sparsity(99, target=0.8, begin=0, end=100, frequency=10)  # reached at end - 1
    (False, 0.8)
    >>> polynomial_sparsity(99, initial=0.0, final=0.8, begin=0, end=100, frequency=10)  # TFMOT: one step later
    (False, 0.7999992)
    >>> round(jaxpruner_polynomial_sparsity(0, target=0.8, begin=0, end=100, frequency=10)[1], 7)  # TFMOT's s(1)
    0.0237608
    """
    step = check_int("step", step)
    target = _fraction("target", target)
    power = check_finite_scalar("power", power, positive=True)
    begin = check_int("begin", begin, minimum=0)
    end = check_int("end", end)
    frequency = check_int("frequency", frequency, minimum=1)
    if end < begin:
        msg = f"end must be >= begin={begin}, got end={end}"
        raise ValueError(msg)
    progress = 1.0 if end == begin else min(1.0, max(0.0, (step + 1 - begin) / (end - begin)))
    sparsity = target * (1.0 - (1.0 - progress) ** power)
    return _should_update(step, begin, end, frequency, "absolute"), sparsity


def _check_steps(begin, end, frequency, *, allow_no_end):
    begin = check_int("begin", begin, minimum=0)
    end = check_int("end", end)
    frequency = check_int("frequency", frequency, minimum=1)
    if allow_no_end:
        if end != -1 and end < begin:
            msg = f"end must be -1 (no end) or >= begin={begin}, got end={end}"
            raise ValueError(msg)
    elif end <= begin:
        msg = f"end must be > begin={begin} (a decay needs an end), got end={end}"
        raise ValueError(msg)
    return begin, end, frequency


def imp_sparsity(round, *, rate=0.2):
    r"""Sparsity after ``round`` rounds of iterative magnitude pruning at ``rate`` per round.

    Each round prunes ``rate`` of the weights that remain, so

    .. math:: s(\text{round}) = 1 - (1 - \text{rate})^{\text{round}}

    Pass this fraction of the *whole* array to :func:`refprune.magnitude_mask`
    (which always counts from the whole array, unlike ``torch.nn.utils.prune``'s
    repeated calls, which count from the remaining weights).

    Parameters
    ----------
    round : int
        Number of completed rounds, ``>= 0``.
    rate : float
        Fraction of the remaining weights pruned per round, in [0, 1].

    Returns
    -------
    float

    Examples
    --------
    >>> from refprune import imp_sparsity
    >>> [round(imp_sparsity(r), 4) for r in range(4)]
    [0.0, 0.2, 0.36, 0.488]
    """
    round = check_int("round", round, minimum=0)
    rate = _fraction("rate", rate)
    return 1.0 - (1.0 - rate) ** round
