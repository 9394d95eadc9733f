"""refprune: the reference implementation of neural-network pruning.

Every function here is written once against the Python Array API standard and runs
unchanged on NumPy, PyTorch, CuPy and array-api-strict; see ``refprune.backends``.
The names exported here are the oracle protocol (docs/protocol.md).
"""

from . import gates, masks, regularizers, schedules, thresholds
from . import budgets, dst, oneshot, patterns, scores
from .gates import *  # noqa: F403
from .masks import *  # noqa: F403
from .regularizers import *  # noqa: F403
from .schedules import *  # noqa: F403
from .thresholds import *  # noqa: F403
from .patterns import *  # noqa: F403
from .budgets import *  # noqa: F403
from .scores import *  # noqa: F403
from .dst import *  # noqa: F403
from .oneshot import *  # noqa: F403

from .compaction import compact  # noqa: E402  (not part of the oracle protocol: a tool on models)

__version__ = "0.1.0"

__all__ = [*gates.__all__, *regularizers.__all__, *thresholds.__all__, *masks.__all__, *schedules.__all__]
__all__ += [*patterns.__all__, *budgets.__all__, *scores.__all__, *dst.__all__, *oneshot.__all__]
