"""A measurement made in the lab says so wherever it can be copied from: its page's
banner and its "cite this" block (a citation travels without the banner)."""

from __future__ import annotations

from pathlib import Path

from analysis_builders import blocked_instagram, jsonl
from fastapi.testclient import TestClient

from didban.store.ingest import ingest
from didban.store.store import Store
from didban.web.app import create_app

HTML = {"accept": "text/html"}


def test_a_lab_measurements_citation_says_it_is_no_real_network(tmp_path: Path) -> None:
    lab = blocked_instagram()
    lab["annotations"] = {"x_didban_lab_profile": "iran-2022"}
    real = blocked_instagram()
    real["input"] = "https://www.facebook.com/"
    real["test_keys"]["queries"][0]["hostname"] = "www.facebook.com"
    src = tmp_path / "m.jsonl"
    src.write_bytes(jsonl(lab, real))
    with Store(tmp_path / "data") as store:
        ingest(store, [src])
        with TestClient(create_app(store)) as client:
            found = client.get("/search.json?since=2026-11-01").json()["results"]
            uids = {r["input"]: r["measurement_uid"] for r in found}
            for lang in ("", "/fa"):
                page = client.get(f"{lang}/m/{uids['https://www.instagram.com/']}", headers=HTML)
                cite = page.text[page.text.index('<div class="cite">') :]
                cite = cite[: cite.index("</div>")]
                assert "emulated censorship lab (profile iran-2022), not a real network" in cite
            page = client.get(f"/m/{uids['https://www.facebook.com/']}", headers=HTML).text
            cite = page[page.index('<div class="cite">') :]
            assert "lab" not in cite[: cite.index("</div>")]
