"""Verdicts: ordered rules with stable ids, fingerprints, per-layer and overall verdicts,
OONI-compatible blocking/accessible. Never touches the network.

Entry points: ``classify(measurement) -> Verdict`` (total, never raises),
``classify_record`` (raises ``Malformed`` for non-measurements), ``classify_paths`` (batch
over files and directories), ``RULES_VERSION``.
"""

from didban.analysis.batch import classify_paths
from didban.analysis.classify import Malformed, classify, classify_record
from didban.analysis.rules import RULES_VERSION

__all__ = ["RULES_VERSION", "Malformed", "classify", "classify_paths", "classify_record"]
