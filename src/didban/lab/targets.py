"""What a profile's ground truth is about: the kinds of target, and the targets every
profile covers.

A target is what one verdict is about, written as the probe's input or, for inputs that
are not URLs, a short URI:

* ``http://…``, ``https://…``: web_connectivity (``didban run``);
* ``quic://HOST[:PORT]``: the HTTP/3 test of ``https://HOST/`` (``didban run --test
  quic``, an OONI urlgetter measurement), e.g. ``quic://www.instagram.com``;
* ``app:NAME``: an app test without input (``didban run --test NAME``), e.g.
  ``app:telegram``;
* ``stun://HOST:PORT``: stunreachability of that input, e.g.
  ``stun://stun.l.google.com:19302``;
* ``dot://IP[:PORT]``: ``didban dnscheck`` of that DoT resolver;
* ``dns://…``: accepted, measured by no experiment yet.

:func:`covered` lists the targets every profile must cover (listed, or by its
``default``): the default test list, then the app, STUN and HTTP/3 targets the catalogs
imply (``data/apps.yaml``; ``quic://`` for the list's https hosts whose service offers
HTTP/3, ``data/services.yaml``). :func:`of_verdict` names the target of a verdict.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from didban.data import apps, catalog
from didban.data import path as data_path

WEB: Final = ("http://", "https://")
_TARGET_RE: Final = re.compile(r"^((https?|dot|dns|quic|stun)://[^/\s]+|app:[a-z][a-z0-9_]*$)")


def default_urls() -> list[str]:
    """The URLs of ``data/default-list.csv``, in file order: every profile covers them."""
    with data_path("default-list.csv").open(encoding="utf-8", newline="") as f:
        return [row["url"] for row in csv.DictReader(f)]


def app_targets() -> list[str]:
    """``app:NAME`` for every app test without input; ``stun://HOST:PORT`` for every STUN
    server (stunreachability's inputs), in catalog order."""
    out: list[str] = []
    for app in apps.apps():
        stuns = app.of_kind("stun")
        if stuns:
            out += [f"stun://{e.hostname}:{e.ports[0]}" for e in stuns if e.ports]
        else:
            out.append(f"app:{app.id}")
    return out


def quic_targets(urls: list[str] | None = None) -> list[str]:
    """``quic://HOST`` for the https URLs (default: the default list) whose service offers
    HTTP/3 — the inputs of ``didban run --test quic``."""
    out: list[str] = []
    for url in default_urls() if urls is None else urls:
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme == "https" and host and catalog.offers_http3(host):
            target = quic_target(url)
            if target not in out:
                out.append(target)
    return out


def covered() -> list[str]:
    """Every target a profile's ground truth covers (listed or by ``default``)."""
    return default_urls() + app_targets() + quic_targets()


def quic_target(url: str) -> str:
    """The ``quic://`` target of an https URL the HTTP/3 test fetched."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port and parts.port != 443 else ""
    return f"quic://{parts.hostname}{port}"


def quic_url(target: str) -> str:
    """The https URL the HTTP/3 test fetches for a ``quic://HOST[:PORT]`` target."""
    parts = urlsplit(target)
    port = f":{parts.port}" if parts.port else ""
    return f"https://{parts.hostname}{port}/"


def dot_endpoint(url: str) -> tuple[str, int] | None:
    """(ip, port) of a ``dot://IP[:PORT]`` ground-truth target (port 853 by default)."""
    split = urlsplit(url)
    try:
        ip = str(ipaddress.ip_address(split.hostname or ""))
        port = split.port or 853
    except ValueError:
        return None
    if split.scheme != "dot" or split.path not in ("", "/"):
        return None
    return ip, port


def problem(target: str) -> str | None:
    """Why ``target`` is not a target a profile can name, or None."""
    if not _TARGET_RE.match(target):
        return "is not a target (an http(s), quic, stun, dot or dns URL, or app:NAME)"
    if target.startswith("dot://") and dot_endpoint(target) is None:
        return "is not dot://IP[:PORT] (a DoT resolver)"
    if target.startswith("app:") and target not in app_targets():
        known = ", ".join(t for t in app_targets() if t.startswith("app:"))
        return f"names no app test without input (known: {known})"
    if target.startswith(("quic://", "stun://")):
        try:
            parts = urlsplit(target)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            return "has a bad port"
        if not parts.hostname or parts.path not in ("", "/"):
            return "must be scheme://HOST[:PORT]"
        if target.startswith("stun://") and parts.port is None:
            return "must name its port (stun://HOST:PORT)"
    return None


def of_verdict(verdict: Mapping[str, Any]) -> str | None:
    """The target a verdict is about: web_connectivity's and stunreachability's input;
    ``quic://HOST`` for the HTTP/3 test (OONI urlgetter); ``app:NAME`` for an app test
    without input."""
    test = verdict.get("test_name")
    url = verdict.get("input")
    if test == "urlgetter" and isinstance(url, str):
        return quic_target(url)
    if not url and isinstance(test, str) and f"app:{test}" in app_targets():
        return f"app:{test}"
    return url if isinstance(url, str) else None
