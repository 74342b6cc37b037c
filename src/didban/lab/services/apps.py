"""The app endpoints' stand-ins (``data/apps.yaml``), served by the ``inet`` process:

* **Telegram's data centres**: at the lab address of each catalog address
  (:func:`plan.app_addresses`), plain HTTP on each of its ports (80 and 443: the real
  ones speak HTTP on 443 too, not TLS), answering every request as the real ones answered
  OONI's POST — nginx/0.3.33's ``404 Not Found`` page (OONI spec ts-020's example).
* **Other TCP ports of host-named endpoints** (WhatsApp's 5222): a listener that accepts,
  reads what the client sends and closes when it stops (the experiment only connects).
* **Names of an app's pinned CA** (Signal's backends): leaves from the lab's stand-in for
  that CA (``ca.create_app_ca``) instead of the lab root — except the names the web test
  list also measures (``chat.signal.org``), which keep the lab root, as a browser would
  need them to.

Ports 80 and 443 of host-named endpoints, and HTTP/3, are the web sites' own listeners
(``services.main``): the endpoints' names resolve to their service's addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from didban.data import apps
from didban.data import path as data_path
from didban.lab import ca, plan, zone
from didban.lab.services import http
from didban.lab.services.routes import Request, Response

WEB_PORTS: Final = (80, 443)
IDLE: Final = 30.0
DC_PAGE: Final = (
    b'<html>\r\n<head><title>404 Not Found</title></head>\r\n<body bgcolor="white">\r\n'
    b"<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/0.3.33</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def datacenter(req: Request) -> Response:
    """What a Telegram data centre answers to plain HTTP."""
    return Response(404, [("content-type", "text/html"), ("server", "nginx/0.3.33")], DC_PAGE)


def _web_list_hosts() -> set[str]:
    with data_path("default-list.csv").open(encoding="utf-8", newline="") as fh:
        return {(urlsplit(r["url"]).hostname or "").lower() for r in csv.DictReader(fh)}


def pinned_names() -> dict[str, list[str]]:
    """app id -> the names served with leaves of that app's CA (its endpoints' names that
    the web test list does not measure)."""
    web = _web_list_hosts()
    out: dict[str, list[str]] = {}
    for app in apps.apps():
        if not app.ca:
            continue
        names = [n for n in dict.fromkeys(e.hostname for e in app.endpoints if e.url) if n]
        out[app.id] = [n for n in names if n.lower() not in web]
    return out


def add_pinned_leaves(store: ca.LeafStore, state_dir: Path) -> None:
    """Issue the pinned-CA leaves (the CA files exist from ``lab up``)."""
    for app_id, names in pinned_names().items():
        store.add_pinned(f"app-ca:{app_id}", ca.load_app_ca(state_dir, app_id), names)


def extra_ports() -> list[tuple[str, int]]:
    """(lab address, port) of host-named endpoints' ports other than 80 and 443."""
    out: dict[tuple[str, int], None] = {}
    for app in apps.apps():
        for e in app.endpoints:
            name = e.hostname
            if not name or e.kind == "stun":
                continue
            for port in e.ports:
                if port in WEB_PORTS:
                    continue
                for addr in zone.resolve(name) or ():
                    out[(addr, port)] = None
    return list(out)


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await asyncio.wait_for(reader.read(65536), IDLE):
            pass
    except (TimeoutError, ConnectionError, OSError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 2.0)


async def serve() -> list[Any]:
    """Start every app listener of the inet namespace; their handles."""
    handles: list[Any] = []
    dc_ports: dict[str, tuple[int, ...]] = {}
    for _, e in apps.literal_addresses():
        if e.address:
            dc_ports[plan.app_addresses()[e.address]] = e.ports
    for addr, ports in dc_ports.items():
        for port in ports:
            handles.append(await http.serve(datacenter, addr, port))
    for addr, port in extra_ports():
        handles.append(await asyncio.start_server(_hold, host=addr, port=port, reuse_address=True))
    return handles
