"""Action models shipped with the core (registered when the registry first loads its built-ins).

* ``recorded``: :class:`~worldmodels.action_models.recorded.RecordedActionModel`, the actions the
  data set recorded (the ground-truth-action upper bound of Genie, GenieRedux-G; IRIS's actions).
"""

from worldmodels.action_models.recorded import RecordedActionModel

__all__ = ["RecordedActionModel"]
