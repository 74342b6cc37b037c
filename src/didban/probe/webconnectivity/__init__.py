"""OONI's web_connectivity (v0.5 "LTE") as small flows, one module per step of the spec:
``dnsresolvers``, ``endpoints``, ``control``, ``fetch`` and ``redirects``, ``quic``;
``state`` holds what a measurement has found so far and ``experiment`` runs the steps
in order. This module only re-exports."""

from didban.probe.webconnectivity.experiment import TEST_NAME, WebConnectivity

__all__ = ["TEST_NAME", "WebConnectivity"]
