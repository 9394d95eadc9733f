"""Figures of runs: a matplotlib figure on the Agg backend and its atomic PNG, or why there can be none.

matplotlib is optional (``pip install 'refprune[plot]'``); it is imported only when a
figure is drawn. A method's ``plot(path)`` draws with :func:`new_figure` and
:func:`save_figure`; the engine calls it from ``finish`` when :func:`plot_unavailable`
is None.
"""

from __future__ import annotations

import io as _bytes_io

__all__ = ["new_figure", "save_figure", "plot_unavailable"]


def plot_unavailable():
    """Why no figure can be drawn (matplotlib missing, with the install command), or None."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed; pip install 'refprune[plot]'"
    return None


def new_figure(*, ncols=1, width=5.5, height=4.0):
    """A matplotlib figure on the Agg backend (no display needed) and its axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def save_figure(fig, path):
    """Save ``fig`` atomically as PNG and close it."""
    import matplotlib.pyplot as plt

    from . import io

    buffer = _bytes_io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    io.atomic_write_bytes(path, buffer.getvalue())
