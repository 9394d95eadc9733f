"""refprune: the reference implementation of neural-network pruning.

Every function here is written once against the Python Array API standard and runs
unchanged on NumPy, PyTorch, CuPy and array-api-strict; see ``refprune.backends``.
The names exported here are the oracle protocol (docs/protocol.md).
"""

from . import gates, masks, regularizers, schedules, thresholds
from .gates import *  # noqa: F403
from .masks import *  # noqa: F403
from .regularizers import *  # noqa: F403
from .schedules import *  # noqa: F403
from .thresholds import *  # noqa: F403

__version__ = "0.1.0"

__all__ = [*gates.__all__, *regularizers.__all__, *thresholds.__all__, *masks.__all__, *schedules.__all__]
