"""Verdicts: ordered rules with stable ids, fingerprints, per-layer and overall verdicts,
OONI-compatible blocking/accessible. Never touches the network.

Entry points: ``classify(measurement) -> Verdict`` (total, never raises),
``classify_record`` (raises ``Malformed`` for non-measurements), ``classify_paths`` (batch
over files and directories), ``RULES_VERSION``.

The rule cascade runs compiled (mypyc) when ``make deps`` built it from the current
sources, as Python otherwise: ``compiled.mode()`` says which.
"""

from didban.analysis import compiled as _compiled

# before any other submodule is imported: the compiled build, when current, shadows them
__path__ = _compiled.search_path(__path__)
__path__ = _compiled.check_loads(__path__, __name__)

from didban.analysis.batch import classify_paths
from didban.analysis.classify import Malformed, classify, classify_record
from didban.analysis.rules import RULES_VERSION

__all__ = ["RULES_VERSION", "Malformed", "classify", "classify_paths", "classify_record"]
