"""Verdicts: ordered rules with stable ids, fingerprints, per-layer and overall verdicts,
OONI-compatible blocking/accessible. Never touches the network."""
