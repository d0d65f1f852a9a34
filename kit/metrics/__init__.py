"""Evaluation metrics, one module per family (methods.md §4).

Each module declares ``HIGHER_IS_BETTER`` for the metrics it defines.
"""

from kit.metrics import classification, localization, plausibility
from kit.metrics.stats import bootstrap_ci

__all__ = ["bootstrap_ci", "classification", "localization", "plausibility"]
