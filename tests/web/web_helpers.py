"""The explorer store of the web tests: OONI's fixture measurements (read in place from
``../shared``) and a saved event."""

from __future__ import annotations

from pathlib import Path

from didban.events.record import Event
from didban.events.saved import Coverage, EventTable
from didban.store import rollups
from didban.store.ingest import ingest
from didban.store.store import Store

# A measurement of the fixtures: Facebook blocked in Iran by the resolver (confirmed).
FACEBOOK = "20220815190130.000000_IR_webconnectivity_a40ebefd5a18684c"
EVENT = "ev-00000000000000f1"


def _events(data_dir: Path) -> None:
    block = Event(
        id=EVENT, kind="block", cc="IR", asns=[197207], target="instagram", layer="tls",
        method="tls.sni.reset", onset_after="2022-09-20T22:00:00Z",
        onset_before="2022-09-21T01:00:00Z", resolved_after=None, resolved_before=None,
        confidence=0.97, n_measurements=420, n_probes=31, witnesses=[FACEBOOK],
        source="didban", known_event="ir-21",
    )  # fmt: skip
    with EventTable(data_dir) as table:
        table.save([block], Coverage("didban"))


def fill(data_dir: Path, fixtures: Path) -> None:
    with Store(data_dir) as store:
        ingest(store, [fixtures / "backend_fastpath", fixtures / "probecli_manual"])
        rollups.refresh(store)
    _events(data_dir)
