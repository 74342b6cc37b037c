"""The ``web_connectivity`` experiment: every DNS, TCP, TLS and HTTP step for one URL.

Follows OONI Web Connectivity v0.5 "LTE" (ooni-methodology.md §3.4), built on
``didban.net`` primitives and ``didban.control.client``:

1. DNS in parallel: the system resolver (getaddrinfo, tags ``classic``), one UDP resolver
   (late/duplicate replies kept for 500 ms → ``x_dns_duplicate_responses``) and DoH (its
   own connections under ``x_doh``). ``dns_experiment_failure`` is the system resolver's.
2. The control (test helper) query starts as soon as the addresses are known and runs in
   parallel with everything below (``x_control_request``, ``control``, ``control_failure``).
3. Endpoint flows to every address: TCP to the URL's port; a TLS handshake (SNI = URL host)
   on it for https; for http URLs without an explicit port, also TCP+TLS to :443 to check
   the addresses are genuine (OONI extension E001, tag ``x_didban_ip_check``).
4. The HTTP fetch (redirects ≤ 10; each hop resolved with the system resolver and recorded
   at ``depth=N``) over the first address whose flow worked, preferring system-resolver
   addresses, then UDP, then DoH (OONI's priority); ``requests`` newest first. When no
   flow worked no fetch is made (as in LTE): ``http_experiment_failure`` is the failure of
   the best-ranked flow and ``requests`` stays empty.
5. QUIC/HTTP3 for hosts the catalog marks http3 or that advertise ``h3`` in Alt-Svc
   (``x_didban_quic``).

The experiment records; it never judges: ``blocking``, ``accessible`` and the ``*_match``
keys stay null for ``didban analyze``. The whole URL is bounded by a deadline; whatever was
not finished by then is recorded as ``generic_timeout_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import msgspec

from didban.control import client as control_client
from didban.data import catalog
from didban.model import failures as F
from didban.model.ooni import (
    WEB_CONNECTIVITY_EXTENSIONS,
    DNSDuplicateResponse,
    DNSQuery,
    HTTPTransaction,
    Measurement,
    TCPConnect,
    THRequest,
    THResponse,
    TLSHandshake,
    WebConnectivityTestKeys,
)
from didban.net import dns, doh, errors, quic
from didban.net import http as httpmod
from didban.net import tcp as tcpmod
from didban.net import tls as tlsmod
from didban.net.stream import Stream, format_address
from didban.net.trace import HTTP_TRANSACTION_DONE, HTTP_TRANSACTION_START, Trace
from didban.probe import envelope, slot
from didban.probe.config import ProbeConfig
from didban.probe.envelope import ProbeIdentity
from didban.probe.lists import ListEntry

TEST_NAME = "web_connectivity"

# Address origin flags, OONI LTE style (system first in the HTTP priority order).
SYSTEM, UDP, DOH = "system", "udp", "doh"
_PRIORITY = {SYSTEM: 0, UDP: 1, DOH: 2}


@dataclass(slots=True)
class _Flow:
    ip: str
    port: int
    origins: set[str]
    tls: bool
    ip_check: bool = False
    tcp: TCPConnect | None = None
    handshake: TLSHandshake | None = None
    stream: Stream | None = None  # kept open until the fetch has picked its connection

    @property
    def ok(self) -> bool:
        if self.tcp is None or self.tcp.status.failure is not None:
            return False
        return not self.tls or (self.handshake is not None and self.handshake.failure is None)

    @property
    def rank(self) -> int:
        return min(_PRIORITY.get(o, 3) for o in self.origins) if self.origins else 3


@dataclass(slots=True)
class _State:
    """Everything measured so far; on a deadline this is what gets written."""

    tk: WebConnectivityTestKeys
    addrs: dict[str, set[str]] = field(default_factory=dict)  # ip -> origins, insertion order
    doh: dict[str, Any] = field(
        default_factory=lambda: {
            "queries": [],
            "tcp_connect": [],
            "tls_handshakes": [],
            "requests": [],
        }
    )
    flows: list[_Flow] = field(default_factory=list)
    dns_done: bool = False
    system_done: bool = False  # the system resolver's query is recorded
    flows_done: bool = False
    http_started: bool = False
    http_done: bool = False
    control_done: bool = False
    # set when the UDP resolver's first reply is in (or it failed): its addresses are known,
    # though the lookup keeps listening for late replies
    udp_answered: asyncio.Event = field(default_factory=asyncio.Event)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _alt_svc_h3(tx: HTTPTransaction | None) -> bool:
    if tx is None or tx.response is None:
        return False
    return any(k.lower() == "alt-svc" and "h3" in v for k, v in tx.response.headers_list or [])


def _to_plain(obj: Any) -> Any:
    return msgspec.to_builtins(obj)


class WebConnectivity:
    """One configured experiment instance, shared by every URL of a run."""

    test_name = TEST_NAME

    def __init__(
        self,
        config: ProbeConfig,
        identity: ProbeIdentity,
        *,
        test_start: Any = None,
        report_id: str | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.test_start = test_start or envelope.utcnow()
        self.report_id = report_id or envelope.new_report_id(
            TEST_NAME, identity.probe_cc, identity.probe_asn, self.test_start
        )
        self.test_version = envelope.WEB_CONNECTIVITY_VERSION
        # one shared, multiplexed DoH connection for every URL of the run (net/doh.py)
        self._doh_session: doh.DoHSession | None = None
        self._helper: control_client.HelperSession | None = None

    def close(self) -> None:
        """Release what the run shared between URLs (the DoH connection)."""
        if self._doh_session is not None:
            self._doh_session.close()
            self._doh_session = None
        if self._helper is not None:
            self._helper.close()
            self._helper = None

    # ------------------------------------------------------------------ public

    async def measure(self, entry: ListEntry, deadline: float = 60.0) -> Measurement:
        """The complete measurement of ``entry.url``; never raises for network failures."""
        started_wall = envelope.utcnow()
        t_start = time.monotonic()
        trace = Trace()
        st = _State(WebConnectivityTestKeys())
        work = asyncio.ensure_future(self._run(entry.url, trace, st))
        try:
            async with asyncio.timeout(deadline):
                await asyncio.shield(work)
        except TimeoutError:
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            self._mark_unfinished(st, F.GENERIC_TIMEOUT)
        except asyncio.CancelledError:
            work.cancel()
            raise
        st.tk.network_events = list(trace.events)
        return envelope.envelope(
            test_name=TEST_NAME,
            test_version=self.test_version,
            input_=entry.url,
            report_id=self.report_id,
            identity=self.identity,
            test_start=self.test_start,
            measurement_start=started_wall,
            runtime=time.monotonic() - t_start,
            test_keys=st.tk,
            extensions=WEB_CONNECTIVITY_EXTENSIONS,
            test_helpers=self._test_helpers(),
            options=self._options(),
            lab_profile=self.config.lab_profile,
        )

    # ----------------------------------------------------------------- phases

    async def _run(self, url: str, trace: Trace, st: _State) -> None:
        """The pipeline: each step starts as soon as what it needs is known.

        Endpoint flows to the system resolver's addresses start when getaddrinfo answers;
        the control query when getaddrinfo and DoH have answered; flows to addresses only
        UDP or DoH gave start when those answer (UDP: its first reply); the fetch starts as
        soon as a system-resolver flow works, otherwise once every flow is done (then
        preferring UDP, then DoH addresses). When all of that is done and only the UDP
        lookup is still listening for late replies (500 ms after its first), the runner's
        concurrency slot is given back (``slot.release``) for the rest of that wait.
        """
        parts = urlsplit(url)
        host = parts.hostname or ""
        scheme = parts.scheme
        port = parts.port or (443 if scheme == "https" else 80)
        explicit = parts.port is not None
        tk = st.tk
        pending: list[asyncio.Future[Any]] = []

        def start(aw: Any) -> asyncio.Future[Any]:
            fut: asyncio.Future[Any] = asyncio.ensure_future(aw)
            pending.append(fut)
            return fut

        try:
            if _is_ip(host):
                st.addrs[host] = {SYSTEM}
                st.system_done = True  # nothing to resolve
                system_t: asyncio.Future[Any] = start(asyncio.sleep(0))
                udp_t: asyncio.Future[Any] = start(asyncio.sleep(0))
                doh_t: asyncio.Future[Any] = start(asyncio.sleep(0))
                st.udp_answered.set()
            else:
                system_t = start(self._system(host, trace, st))
                udp_t = start(self._udp(host, trace, st))
                doh_t = start(self._doh(host, trace, st))

            await system_t
            n_before = len(st.flows)
            first_flows = self._start_flows(host, scheme, port, explicit, trace, st)
            flows_t = [start(f) for f in first_flows]
            # the fetch waits for the flows to the system resolver's addresses only: an
            # injected UDP (or DoH) answer that came first must not hold it back
            system_flows_t = [
                t for t, f in zip(flows_t, st.flows[n_before:], strict=True) if SYSTEM in f.origins
            ]

            async def control_when_ready() -> None:
                await doh_t
                await self._control(url, (explicit and parts.port) or None, st)

            control = start(control_when_ready())

            http_t: asyncio.Future[Any] | None = None
            if system_flows_t:
                await asyncio.gather(*system_flows_t)
                if any(f.ok for f in st.flows if not f.ip_check and SYSTEM in f.origins):
                    http_t = start(self._http(url, host, port, trace, st))
            await asyncio.gather(st.udp_answered.wait(), doh_t)
            if udp_t.done():
                udp_t.result()  # a lookup that failed outright (not a DNS failure) fails now
            st.dns_done = True
            more = self._start_flows(host, scheme, port, explicit, trace, st)
            await asyncio.gather(*flows_t, *(start(f) for f in more))
            st.flows_done = True
            if http_t is None:
                http_t = start(self._http(url, host, port, trace, st))
            final = await http_t
            st.http_done = True
            if (
                self.config.quic
                and scheme == "https"
                and (self._catalog_h3(host) or _alt_svc_h3(final))
            ):
                reason = "catalog" if self._catalog_h3(host) else "alt-svc"
                await self._quic(url, host, trace, st, reason)
            await control
            slot.release()  # what is left is listening for late UDP replies
            await udp_t
        except BaseException:
            for fut in pending:
                fut.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise
        finally:
            for f in st.flows:  # connections no fetch used (deadline, cancellation)
                if f.stream is not None:
                    f.stream.close()
                    f.stream = None
        if tk.control is None and tk.control_failure is None:
            tk.control_failure = F.unknown("control query did not run")

    async def _system(self, host: str, trace: Trace, st: _State) -> None:
        r = await dns.resolve_system(
            host, trace=trace, timeout=self.config.dns_timeout, tags=["classic", "depth=0"]
        )
        st.tk.queries.append(r.query)
        st.tk.dns_experiment_failure = r.failure
        st.system_done = True
        for a in r.addrs:
            st.addrs.setdefault(a, set()).add(SYSTEM)

    async def _udp(self, host: str, trace: Trace, st: _State) -> None:
        cfg = self.config
        tk = st.tk
        answered: list[dns.DNSResult] = []
        duplicates: list[DNSDuplicateResponse] = []

        def answer(r: dns.DNSResult) -> None:  # the first reply (late ones may follow)
            answered.append(r)
            tk.queries.append(r.query)
            for a in r.addrs:
                st.addrs.setdefault(a, set()).add(UDP)
            st.udp_answered.set()

        try:
            await dns.resolve_udp(
                host,
                format_address(*cfg.udp_resolver),
                trace=trace,
                qtype="A",
                timeout=cfg.dns_timeout,
                wait_duplicates=cfg.duplicate_wait,
                tags=["depth=0"],
                on_answer=answer,
                on_duplicate=duplicates.append,
            )
        finally:
            # also when the URL's deadline cancels the lookup: its query (answered, or
            # generic_timeout_error) and the replies that came so far (an injected one
            # among them) are evidence
            st.udp_answered.set()
            tk.x_dns_duplicate_responses.extend(duplicates)
            if answered:
                tk.x_do53 = {
                    "queries": [_to_plain(answered[0].query)],
                    "duplicates": [_to_plain(d) for d in duplicates],
                }

    async def _doh(self, host: str, trace: Trace, st: _State) -> None:
        cfg = self.config
        tk = st.tk
        if not cfg.doh_url:
            return
        bootstrap = cfg.doh_address()
        if bootstrap is None:
            st.doh["queries"].append(
                _to_plain(
                    DNSQuery(
                        hostname=host,
                        query_type="A",
                        engine="doh",
                        resolver_address=cfg.doh_url,
                        failure=F.unknown("no bootstrap address for the DoH server"),
                        tags=["depth=0"],
                    )
                )
            )
            tk.x_doh = st.doh
            return
        if self._doh_session is None:
            self._doh_session = doh.DoHSession(cfg.doh_url, bootstrap, ca_file=cfg.ca_file)
        r = await dns.resolve_doh(
            host,
            cfg.doh_url,
            trace=trace,
            bootstrap_address=bootstrap,
            qtype="A",
            ca_file=cfg.ca_file,
            timeout=cfg.dns_timeout,
            tags=["depth=0"],
            session=self._doh_session,
        )
        tk.queries.append(r.query)
        st.doh["queries"].append(_to_plain(r.query))
        st.doh["tcp_connect"].extend(_to_plain(x) for x in r.tcp_connect)
        st.doh["tls_handshakes"].extend(_to_plain(x) for x in r.tls_handshakes)
        st.doh["requests"].extend(_to_plain(x) for x in r.requests)
        st.doh["x_didban_reused_connection"] = r.reused_connection
        tk.x_doh = st.doh
        for a in r.addrs:
            st.addrs.setdefault(a, set()).add(DOH)

    async def _control(self, url: str, explicit_port: int | None, st: _State) -> None:
        tk = st.tk
        cfg = self.config
        ports = [explicit_port] if explicit_port is not None else [443, 80]
        endpoints = [format_address(ip, p) for ip in st.addrs for p in ports]
        req = THRequest(
            http_request=url,
            tcp_connect=endpoints,
            http_request_headers={k: [v] for k, v in httpmod.DEFAULT_HEADERS},
            x_quic_enabled=False,
        )
        tk.x_control_request = req
        if not cfg.control_url:
            tk.control_failure = F.unknown("no control helper configured")
            st.control_done = True
            return
        try:
            if self._helper is None or self._helper.url != cfg.control_url:
                self._helper = control_client.HelperSession(cfg.control_url, ca_file=cfg.ca_file)
            res = await self._helper.query(req, cfg.control_timeout)
        except asyncio.CancelledError:
            tk.control_failure = F.GENERIC_TIMEOUT
            raise
        except Exception as exc:  # the client should not raise; record it if it does
            res = F.unknown(f"control client: {exc!r}")
        if isinstance(res, THResponse):
            tk.control = res
        else:
            tk.control_failure = res
        st.control_done = True

    def _start_flows(
        self, host: str, scheme: str, port: int, explicit_port: bool, trace: Trace, st: _State
    ) -> list[Any]:
        """Coroutines measuring every address that has no flow yet (registered in st)."""
        have = {f.ip for f in st.flows}
        new: list[_Flow] = []
        for ip, origins in st.addrs.items():
            if ip in have:
                continue
            new.append(_Flow(ip, port, origins, tls=scheme == "https"))
            if scheme == "http" and not explicit_port:
                new.append(_Flow(ip, 443, origins, tls=True, ip_check=True))
        st.flows.extend(new)
        return [self._flow(f, host, trace, st) for f in new]

    async def _flow(self, f: _Flow, host: str, trace: Trace, st: _State) -> None:
        cfg = self.config
        tags = ["depth=0", "fetch_body=false"]
        if SYSTEM in f.origins and not f.ip_check:
            tags.insert(0, "classic")
        if f.tls:
            tags.append("tcptls_experiment")
        if f.ip_check:
            tags.append("x_didban_ip_check")
        tcp = await tcpmod.connect(f.ip, f.port, trace=trace, timeout=cfg.tcp_timeout, tags=tags)
        f.tcp = tcp.record
        st.tk.tcp_connect.append(tcp.record)
        if tcp.stream is None:
            return
        if not f.tls:
            if f.ip_check or st.http_started:
                tcp.stream.close()
            else:
                f.stream = tcp.stream
            return
        hs = await tlsmod.handshake(
            tcp.stream,
            server_name=host,
            trace=trace,
            ca_file=cfg.ca_file,
            timeout=cfg.tls_timeout,
            tags=tags,
            transaction_id=tcp.record.transaction_id,
        )
        f.handshake = hs.record
        st.tk.tls_handshakes.append(hs.record)
        if hs.stream is not None:
            if f.ip_check or st.http_started:
                hs.stream.close()
            else:
                f.stream = hs.stream

    async def _http(
        self, url: str, host: str, port: int, trace: Trace, st: _State
    ) -> HTTPTransaction | None:
        tk = st.tk
        cfg = self.config
        st.http_started = True
        candidates = [f for f in st.flows if not f.ip_check]
        if not candidates:
            tk.http_experiment_failure = tk.dns_experiment_failure or F.DNS_NO_ANSWER
            return None
        working = sorted((f for f in candidates if f.ok), key=lambda f: f.rank)
        if not working:
            # Like OONI LTE: no flow works, so no connection fetches the page; the failure
            # of the best-ranked flow (system-resolver addresses first) is the HTTP failure.
            best = min(candidates, key=lambda f: f.rank)
            tk.http_experiment_failure = (
                best.handshake.failure
                if best.handshake is not None and best.handshake.failure
                else (best.tcp.status.failure if best.tcp is not None else None)
            ) or F.unknown("no endpoint was measured")
            return None
        chosen = working[0]
        stream, chosen.stream = chosen.stream, None
        for f in st.flows:  # the other connections are not needed any more
            if f.stream is not None:
                f.stream.close()
                f.stream = None
        depth = 0

        async def resolver(name: str) -> list[str] | str:
            nonlocal depth
            depth += 1
            r = await dns.resolve_system(
                name, trace=trace, timeout=cfg.dns_timeout, tags=["classic", f"depth={depth}"]
            )
            tk.queries.append(r.query)
            return r.failure if r.failure else r.addrs

        classic = ["classic"] if SYSTEM in chosen.origins else []
        if stream is None:  # cannot happen for a working flow; fetch on a new connection
            res = await httpmod.fetch(
                url,
                trace=trace,
                address=format_address(chosen.ip, port),
                resolver=resolver,
                server_name=host,
                ca_file=cfg.ca_file,
                max_redirects=cfg.max_redirects,
                body_cap=cfg.body_cap,
                tcp_timeout=cfg.tcp_timeout,
                tls_timeout=cfg.tls_timeout,
                timeout=cfg.http_timeout,
                tags=[*classic, "depth=0", "fetch_body=true"],
            )
            self._record_fetch(tk, res, [])
            return res.requests[0] if res.requests else None
        # Like OONI LTE, the flow's own connection fetches the page (first hop).
        for rec in (chosen.tcp, chosen.handshake):
            if rec is not None and rec.tags:
                rec.tags = ["fetch_body=true" if t == "fetch_body=false" else t for t in rec.tags]
        first, raw = await self._first_hop(url, host, port, stream, chosen, trace, classic)
        tk.requests = [first]
        tk.http_experiment_failure = first.failure
        if raw is not None:
            tk.x_didban_http_throughput = (
                round(raw.throughput, 1) if raw.throughput is not None else None
            )
        location = None
        if raw is not None and raw.status in httpmod.REDIRECT_CODES:
            location = next((v for k, v in raw.headers if k.lower() == "location"), None)
        if raw is None or location is None:
            return first
        nxt = urljoin(url, location.strip())
        if not urlsplit(nxt).hostname:
            tk.http_experiment_failure = F.HTTP_INVALID_REDIRECT_LOCATION_HOST
            return first
        if cfg.max_redirects < 1:
            tk.http_experiment_failure = F.unknown("stopped after 0 redirects")
            return first
        headers = list(httpmod.DEFAULT_HEADERS)
        cookies = [v.split(";", 1)[0].strip() for k, v in raw.headers if k.lower() == "set-cookie"]
        if cookies and urlsplit(nxt).hostname == host:
            headers.append(("Cookie", "; ".join(cookies)))
        res = await httpmod.fetch(
            nxt,
            trace=trace,
            resolver=resolver,
            headers=headers,
            ca_file=cfg.ca_file,
            max_redirects=cfg.max_redirects - 1,
            body_cap=cfg.body_cap,
            tcp_timeout=cfg.tcp_timeout,
            tls_timeout=cfg.tls_timeout,
            timeout=cfg.http_timeout,
            tags=[*classic, "fetch_body=true", "x_didban_redirect"],
        )
        self._record_fetch(tk, res, [first])
        return tk.requests[0] if tk.requests else first

    def _record_fetch(
        self, tk: WebConnectivityTestKeys, res: httpmod.FetchResult, older: list[HTTPTransaction]
    ) -> None:
        tk.requests = [*res.requests, *older]
        tk.tcp_connect.extend(res.tcp_connect)
        tk.tls_handshakes.extend(res.tls_handshakes)
        tk.http_experiment_failure = res.failure
        tk.x_didban_http_throughput = (
            round(res.throughput, 1) if res.throughput is not None else None
        )

    async def _first_hop(
        self,
        url: str,
        host: str,
        port: int,
        stream: Stream,
        flow: _Flow,
        trace: Trace,
        classic: list[str],
    ) -> tuple[HTTPTransaction, httpmod.RawResponse | None]:
        """GET ``url`` on the flow's open connection; the OONI transaction and raw reply."""
        cfg = self.config
        tags = [*classic, "depth=0", "fetch_body=true"]
        scheme = urlsplit(url).scheme
        default_port = 443 if scheme == "https" else 80
        authority = host if port == default_port else f"{host}:{port}"
        req_headers = [("Host", authority), *httpmod.DEFAULT_HEADERS]
        tid = flow.tcp.transaction_id if flow.tcp is not None else 0
        address = stream.address
        t0 = trace.now()
        trace.event(HTTP_TRANSACTION_START, address=address, tags=tags, transaction_id=tid)
        raw: httpmod.RawResponse | None = None
        failure: str | None = None
        try:
            raw = await httpmod.request_on_stream(
                stream,
                url,
                trace=trace,
                host_header=authority,
                headers=httpmod.DEFAULT_HEADERS,
                body_cap=cfg.body_cap,
                timeout=cfg.http_timeout,
            )
        except Exception as exc:
            failure = errors.classify(exc)
        finally:
            stream.close()
        t = trace.now()
        trace.event(
            HTTP_TRANSACTION_DONE,
            t0=t0,
            t=t,
            address=address,
            failure=failure,
            tags=tags,
            transaction_id=tid,
        )
        tx = httpmod.transaction(
            url, "GET", req_headers, raw, failure, address, stream.alpn, t0, t, tags, tid
        )
        return tx, raw

    def _catalog_h3(self, host: str) -> bool:
        sid = catalog.service_for_host(host)
        return bool(sid and catalog.by_id(sid).http3)

    async def _quic(self, url: str, host: str, trace: Trace, st: _State, reason: str) -> None:
        cfg = self.config
        ips = [f.ip for f in sorted(st.flows, key=lambda f: f.rank) if not f.ip_check]
        seen: list[str] = []
        for ip in ips:
            if ip not in seen:
                seen.append(ip)
        out: list[dict[str, Any]] = []
        for ip in seen[:1]:
            r = await quic.http3_get(
                url,
                trace=trace,
                address=format_address(ip, 443),
                server_name=host,
                ca_file=cfg.ca_file,
                timeout=cfg.quic_timeout,
                tags=["depth=0", "x_didban_quic"],
            )
            out.append(
                {
                    "address": format_address(ip, 443),
                    "reason": reason,
                    "failure": r.failure,
                    "handshake": _to_plain(r.handshake),
                    "request": _to_plain(r.request) if r.request is not None else None,
                    "throughput": r.throughput,
                }
            )
        st.tk.x_didban_quic = out

    # ---------------------------------------------------------------- helpers

    def _mark_unfinished(self, st: _State, failure: str) -> None:
        tk = st.tk
        # dns_experiment_failure is the system resolver's (v0.4): set when it never answered,
        # whatever the UDP and DoH lookups recorded meanwhile
        if not st.system_done and tk.dns_experiment_failure is None:
            tk.dns_experiment_failure = failure
        if not st.http_done and tk.http_experiment_failure is None and not tk.requests:
            tk.http_experiment_failure = failure
        if not st.control_done and tk.control is None and tk.control_failure is None:
            tk.control_failure = failure

    def _test_helpers(self) -> dict[str, Any]:
        url = self.config.control_url
        if not url:
            return {}
        return {"backend": {"address": url, "type": urlsplit(url).scheme}}

    def _options(self) -> list[str]:
        cfg = self.config
        opts = [f"resolver={format_address(*cfg.udp_resolver)}"]
        if cfg.doh_url:
            opts.append(f"doh={cfg.doh_url}")
        return opts
