"""The service catalog names every service of the mission and maps URLs to them."""

from __future__ import annotations

from didban.data import catalog


def test_catalog_has_the_mission_services() -> None:
    ids = {s.id for s in catalog.services()}
    for sid in (
        "instagram",
        "telegram",
        "signal",
        "whatsapp",
        "facebook",
        "twitter",
        "youtube",
        "flickr",
        "cloob",
        "gmail",
        "yahoomail",
        "tabnak",
    ):
        assert sid in ids


def test_url_maps_to_service() -> None:
    assert catalog.service_for_url("https://www.instagram.com/p/x") == "instagram"
    assert catalog.service_for_url("https://web.telegram.org/") == "telegram"
    assert catalog.service_for_url("https://mail.google.com/") == "gmail"
    assert catalog.service_for_url("https://www.google.com/") is None
    assert catalog.service_for_url(None) is None
