"""The rule table: every rule's stable id, what it concludes, what it reads, why, and its source.

Rules are evaluated in the order of this table (per test), first match wins; the
classifiers (``web``, ``apps``) implement each rule's condition under the same id.
``RULES_VERSION`` changes whenever a rule's condition or conclusion changes, so a stored
verdict can always be traced to the exact rule that produced it. docs/methodology.md is
the long form of this table; a test checks that both name the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from didban.model.verdict import METHODS, Layer, State

RULES_VERSION: Final = "2026.12.5"


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    state: State
    layer: Layer | None
    method: str | None
    confidence: float
    summary: str


def _r(
    rule_id: str,
    state: State,
    layer: Layer | None,
    method: str | None,
    confidence: float,
    summary: str,
) -> Rule:
    if method is not None and method not in METHODS:
        raise ValueError(f"rule {rule_id}: unknown method {method}")
    return Rule(rule_id, state, layer, method, confidence, summary)


# Web Connectivity, in evaluation order.
WEB: Final[tuple[Rule, ...]] = (
    _r("wc.input.no_test_keys", "inconclusive", None, None, 0.0,
       "the measurement has no web_connectivity test keys"),
    _r("wc.input.bad_url", "inconclusive", None, None, 0.0,
       "the measured input is not a URL with a host"),
    _r("wc.dns.injection.fingerprint", "blocked", "dns", "dns.injection.bogon", 1.0,
       "two replies to one query, the first a known censor address"),
    _r("wc.dns.injection.bogon", "blocked", "dns", "dns.injection.bogon", 0.95,
       "two replies to one query, the first a bogon the control did not return"),
    _r("wc.dns.injection.forged", "blocked", "dns", "dns.injection", 0.85,
       "two replies to one query with different addresses, the first not the control's"),
    _r("wc.dns.fingerprint.public_resolver", "blocked", "dns", "dns.injection.bogon", 1.0,
       "a public resolver (DNS over UDP/TCP) answered a known censor address"),
    _r("wc.dns.fingerprint", "blocked", "dns", "dns.hijack", 1.0,
       "the system resolver answered a known censor address"),
    _r("wc.http.blockpage", "blocked", "http", "http.blockpage", 1.0,
       "a response body or header matches a known blockpage"),
    _r("wc.throttled", "blocked", "ip", "throttled", 0.7,
       "a large page arrived at under a tenth of the control's rate and below an absolute "
       "ceiling"),
    _r("wc.dns.system.failed", "blocked", "dns", None, 0.85,
       "the system (ISP) resolver failed for a name the control and another resolver "
       "resolved (method: the failure)"),
    _r("wc.dns.bogon.system", "blocked", "dns", "dns.hijack", 0.85,
       "the system resolver answered a bogon the control did not return"),
    _r("wc.dns.bogon.public_resolver", "blocked", "dns", "dns.injection.bogon", 0.85,
       "a public resolver answered a bogon the control did not return"),
    _r("wc.dns.system.wrong_address", "blocked", "dns", None, 0.8,
       "the system resolver answered addresses that are not the site's and that refuse "
       "connections or fail TLS, while other addresses for the name worked"),
    _r("wc.https.ok", "ok", "http", None, 0.9,
       "the final response arrived over HTTPS with a verified certificate"),
    _r("wc.control.missing", "inconclusive", None, None, 0.0,
       "no usable control measurement: blocked cannot be told from down"),
    _r("wc.dns.bogon_everywhere", "down", "dns", None, 0.7,
       "the name points at a bogon (loopback, private) for the probe and the control alike"),
    _r("wc.dns.ghost.blocked", "blocked", "dns", None, 0.75,
       "the control found no address for the name; the probe's resolver answered one where "
       "connecting fails"),
    _r("wc.dns.ghost", "down", "dns", None, 0.6,
       "the control found no address for the name; the probe's resolver answered anyway"),
    _r("wc.dns.failure.ctrl_failing", "down", "dns", None, 0.8,
       "DNS failed for both the probe and the control"),
    _r("wc.dns.nxdomain", "blocked", "dns", "dns.nxdomain", 0.85,
       "the probe got NXDOMAIN while the control resolved the name"),
    _r("wc.dns.no_answer", "blocked", "dns", "dns.no_answer", 0.8,
       "the probe's resolver answered without an address while the control resolved the name"),
    _r("wc.dns.timeout", "blocked", "dns", "dns.timeout", 0.75,
       "the probe's DNS queries timed out while the control resolved the name"),
    _r("wc.dns.servfail", "blocked", "dns", "dns.servfail", 0.7,
       "the probe's resolver failed while the control resolved the name"),
    _r("wc.http.captcha", "ok", "http", None, 0.7,
       "the page is a CAPTCHA or bot challenge served by the site or its CDN"),
    _r("wc.http.error_everywhere", "down", "http", None, 0.7,
       "the site answered the probe and the control with an error status"),
    _r("wc.http.ctrl_error", "inconclusive", "http", None, 0.0,
       "the control got an error status, so the pages cannot be compared"),
    _r("wc.http.match", "ok", "http", None, 0.9,
       "the final cleartext response matches the control's (OONI HTTP-diff)"),
    _r("wc.dns.inconsistent", "blocked", "dns", "dns.inconsistent", 0.7,
       "addresses unrelated to the control's (no shared IP, ASN or valid TLS) and the fetch "
       "failed or differs"),
    _r("wc.http.redirect.bogon", "blocked", "http", "http.diff", 0.7,
       "a redirect to a private (bogon) address while the control got the page"),
    _r("wc.http.site_broken", "down", "http", None, 0.7,
       "the fetch stopped on the site's own fault (a redirect loop, a Location without a "
       "host) and the control's fetch stopped too"),
    _r("wc.tcp.ctrl_failing", "down", "tcp", None, 0.8,
       "TCP connects failed for the probe and for the control"),
    _r("wc.tcp.reset", "blocked", "tcp", "tcp.reset", 0.85,
       "connects were reset or refused while the control connected"),
    _r("wc.tcp.timeout", "blocked", "tcp", "tcp.timeout", 0.8,
       "connects timed out while the control connected"),
    _r("wc.tcp.unreachable", "blocked", "tcp", "tcp.unreachable", 0.8,
       "connects failed with host/network unreachable while the control connected"),
    _r("wc.tcp.other", "inconclusive", "tcp", None, 0.0,
       "connects failed with an unexpected failure string"),
    _r("wc.tls.ctrl_failing", "down", "tls", None, 0.8,
       "the TLS handshake failed for the probe and for the control"),
    _r("wc.tls.sni.reset", "blocked", "tls", "tls.sni.reset", 0.9,
       "the TLS handshake was reset while the control's handshake succeeded"),
    _r("wc.tls.sni.timeout", "blocked", "tls", "tls.sni.timeout", 0.8,
       "the TLS handshake timed out while the control's handshake succeeded"),
    _r("wc.tls.sni.eof", "blocked", "tls", "tls.sni.eof", 0.8,
       "the connection was closed during the TLS handshake while the control's succeeded"),
    _r("wc.tls.mitm", "blocked", "tls", "tls.mitm", 0.85,
       "a certificate invalid for the name while the control's TLS was fine"),
    _r("wc.tls.other", "inconclusive", "tls", None, 0.0,
       "the TLS handshake failed with an unexpected failure string"),
    _r("wc.http.ctrl_failing", "down", "http", None, 0.7,
       "the HTTP request failed for the probe and for the control"),
    _r("wc.http.reset", "blocked", "http", "http.reset", 0.85,
       "the connection was reset after the request while the control fetched the page"),
    _r("wc.http.timeout", "blocked", "http", "http.timeout", 0.75,
       "the request went unanswered while the control fetched the page"),
    _r("wc.http.eof", "blocked", "http", "http.eof", 0.8,
       "the connection was closed after the request while the control fetched the page"),
    _r("wc.http.failure.other", "inconclusive", "http", None, 0.0,
       "the request failed with a failure that is not network interference (probe error)"),
    _r("wc.hop.ctrl_failing", "down", None, None, 0.7,
       "a later hop of the redirect chain failed and the control's fetch of the chain failed "
       "too"),
    _r("wc.hop.dns", "blocked", "dns", None, 0.8,
       "a later hop's name did not resolve while the control fetched the chain to its end"),
    _r("wc.hop.tcp", "blocked", "tcp", None, 0.8,
       "a later hop's connects failed while the control fetched the chain to its end"),
    _r("wc.hop.tls", "blocked", "tls", None, 0.8,
       "a later hop's TLS handshake failed while the control fetched the chain to its end"),
    _r("wc.hop.http", "blocked", "http", None, 0.75,
       "a later hop's request failed after connecting while the control fetched the chain"),
    _r("wc.hop.other", "inconclusive", None, None, 0.0,
       "a later hop failed with a failure that is not network interference"),
    _r("wc.http.diff", "blocked", "http", "http.diff", 0.6,
       "the final response differs from the control's (OONI HTTP-diff)"),
    _r("wc.input.no_requests", "inconclusive", None, None, 0.0,
       "nothing was fetched and no failure explains why"),
)  # fmt: skip

# Other tests, each its own short cascade.
OTHER: Final[tuple[Rule, ...]] = (
    _r("unsupported.test", "inconclusive", None, None, 0.0,
       "didban has no rules for this test"),
    _r("input.malformed", "inconclusive", None, None, 0.0,
       "the record is not a JSON object with a test_name"),
    _r("app.missing_keys", "inconclusive", "app", None, 0.0,
       "the test keys a verdict needs are missing"),
    _r("app.whatsapp.blocked", "blocked", "app", None, 0.8,
       "no WhatsApp endpoint, or the registration server, or WhatsApp Web was reachable "
       "(layer and method: the failing step of didban's tagged records)"),
    _r("app.whatsapp.ok", "ok", "app", None, 0.8,
       "WhatsApp endpoints, registration server and web were reachable"),
    _r("app.telegram.blocked", "blocked", "app", None, 0.8,
       "no Telegram data centre, or Telegram Web, was reachable (layer and method: the "
       "failing step of didban's tagged records)"),
    _r("app.telegram.ok", "ok", "app", None, 0.8,
       "Telegram data centres and Telegram Web were reachable"),
    _r("app.signal.blocked", "blocked", "app", None, 0.7,
       "a Signal backend could not be reached (layer and method: the failing step of "
       "didban's tagged records)"),
    _r("app.signal.ok", "ok", "app", None, 0.8,
       "every Signal backend was reachable"),
    _r("app.facebook_messenger.dns", "blocked", "dns", "dns.inconsistent", 0.7,
       "a Messenger name resolved outside Facebook's AS32934 (dns.hijack when to a censor's "
       "address, dns.* when the lookup failed)"),
    _r("app.facebook_messenger.tcp", "blocked", "tcp", None, 0.7,
       "a Messenger endpoint was unreachable over TCP"),
    _r("app.facebook_messenger.ok", "ok", "app", None, 0.8,
       "Messenger names resolved to Facebook and its endpoints were reachable"),
    _r("stun.ok", "ok", "app", None, 0.8, "the STUN server answered the binding request"),
    _r("stun.dns", "blocked", "dns", None, 0.7,
       "the STUN server's name did not resolve (or resolved to a censor's address) while the "
       "control's lookup worked"),
    _r("stun.down", "down", "app", None, 0.7,
       "the STUN server answered neither the probe nor the control"),
    _r("stun.blocked", "blocked", "app", "stun.blocked", 0.8,
       "the binding request went unanswered while the control's was answered"),
    _r("stun.blocked.no_control", "blocked", "app", "stun.blocked", 0.5,
       "the binding request went unanswered and no control could say whether the server "
       "answers (OONI's own reading of stunreachability)"),
    _r("quic.dns", "blocked", "dns", None, 0.8,
       "the HTTP/3 test's lookup failed or answered a censor's address"),
    _r("quic.missing_keys", "inconclusive", "quic", None, 0.0,
       "the HTTP/3 measurement lacks a QUIC handshake or its TCP baseline"),
    _r("quic.ok", "ok", "quic", None, 0.9, "the QUIC handshake and the HTTP/3 GET worked"),
    _r("quic.http.failure", "inconclusive", "quic", None, 0.0,
       "the QUIC handshake worked but the HTTP/3 request failed"),
    _r("quic.down", "down", "quic", None, 0.7,
       "HTTP/3 failed for the control too: the site offers no working HTTP/3"),
    _r("quic.host_blocked", "blocked", "tcp", None, 0.7,
       "QUIC failed and so did TCP to the same address: the host is blocked, not QUIC"),
    _r("quic.blocked", "blocked", "quic", "quic.blocked", 0.8,
       "the QUIC handshake failed while TCP to the same address connected and the control's "
       "QUIC handshake worked"),
    _r("quic.blocked.no_control", "blocked", "quic", "quic.blocked", 0.5,
       "the QUIC handshake failed while TCP to the same address connected; no control"),
    _r("dnscheck.fingerprint", "blocked", "dns", "dns.hijack", 1.0,
       "the resolver answered a known censor address (bootstrap, or over DoT/DoH)"),
    _r("dnscheck.injection", "blocked", "dns", "dns.injection.bogon", 0.95,
       "a plaintext (UDP/TCP) lookup got a censor or bogon address, or two replies"),
    _r("dnscheck.transport_blocked", "blocked", "tls", None, 0.8,
       "a transport (DoT/DoH) to a resolver failed while the same resolver answered over "
       "another transport"),
    _r("dnscheck.bootstrap_failed", "inconclusive", "dns", None, 0.0,
       "the resolver's own name did not resolve (no control to tell blocked from down)"),
    _r("dnscheck.ok", "ok", "dns", None, 0.8,
       "at least one lookup through the resolver succeeded"),
    _r("dnscheck.all_failed", "inconclusive", "dns", None, 0.0,
       "every lookup failed; dnscheck has no control to tell blocked from down"),
)  # fmt: skip

# The circumvention tests (``analysis/tunnels.py``), in evaluation order per test.
TUNNELS: Final[tuple[Rule, ...]] = (
    _r("app.tunnel.ok", "ok", "app", None, 0.8,
       "the Tor or Snowflake tunnel bootstrapped"),
    _r("torsf.rendezvous", "blocked", "app", None, 0.6,
       "Snowflake's rendezvous with its broker failed (the step and failure in its log)"),
    _r("torsf.webrtc", "blocked", "app", "webrtc.blocked", 0.6,
       "the broker handed out a Snowflake proxy but the WebRTC data channel never opened"),
    _r("tor.bootstrap.tcp", "blocked", "tcp", "tcp.timeout", 0.6,
       "tor stalled before its first relay's TCP connect completed (under 10 %)"),
    _r("tor.bootstrap.tls", "blocked", "tls", "tls.sni.timeout", 0.6,
       "tor connected to its first relay but the TLS handshake never completed (10-14 %)"),
    _r("app.tunnel.blocked", "blocked", "app", "circumvention.bootstrap", 0.6,
       "the Tor or Snowflake tunnel failed to bootstrap"),
    _r("app.tor.blocked", "blocked", "app", None, 0.7,
       "every target of one Tor protocol class failed (obfs4 checked first)"),
    _r("app.tor.ok", "ok", "app", None, 0.8,
       "each Tor protocol class had a reachable target"),
    _r("vpn.ok", "ok", "app", None, 0.8, "the OpenVPN or WireGuard handshake completed"),
    _r("vpn.tcp", "blocked", "tcp", None, 0.7,
       "the TCP connect to the VPN server failed"),
    _r("vpn.host_unreachable", "blocked", "tcp", None, 0.6,
       "the VPN server's address did not answer a TCP connect (didban's baseline)"),
    _r("vpn.handshake", "blocked", "app", "tunnel.handshake.timeout", 0.6,
       "the VPN handshake went unanswered while the server's address answered"),
    _r("vpn.handshake.no_baseline", "blocked", "app", "tunnel.handshake.timeout", 0.5,
       "the VPN handshake went unanswered; no baseline shows the server's address answers"),
    _r("vpn.failure.other", "inconclusive", "app", None, 0.0,
       "the VPN handshake failed in a way censors are not known to cause"),
    _r("riseupvpn.api.blocked", "blocked", "tcp", None, 0.6,
       "RiseupVPN's API was unreachable at TCP"),
    _r("riseupvpn.api.failure", "inconclusive", "app", None, 0.0,
       "RiseupVPN's API failed otherwise (certificate, parse): no control to judge"),
    _r("riseupvpn.gateways.blocked", "blocked", "app", None, 0.6,
       "no RiseupVPN gateway was reachable over one transport"),
    _r("riseupvpn.ok", "ok", "app", None, 0.7, "RiseupVPN's API and gateways were reachable"),
    _r("proxy.ok", "ok", "app", None, 0.8, "the fetch through the proxy worked"),
    _r("proxy.unreachable", "blocked", "tcp", None, 0.7,
       "the proxy's (or Shadowsocks server's) address did not answer a TCP connect"),
    _r("proxy.refused", "inconclusive", "app", None, 0.0,
       "the proxy refused the tunnel (its own answer)"),
    _r("proxy.tunnel.blocked", "blocked", "app", "tunnel.handshake.timeout", 0.6,
       "nothing came back through the tunnel while its server's address answered"),
    _r("proxy.target.failure", "inconclusive", "app", None, 0.0,
       "the proxy worked; the fetch beyond it failed"),
)  # fmt: skip

# Run-level rules (``analysis/nin.py``): they relabel web verdicts of one probe run.
BATCH: Final[tuple[Rule, ...]] = (
    _r("batch.nin.isolated", "blocked", "ip", "nin.isolated", 0.8,
       "in one run, domestic targets were reached while every international target failed "
       "at DNS/TCP/TLS with the control reaching it"),
    _r("batch.shutdown", "blocked", "ip", "shutdown", 0.8,
       "in one run, every target, domestic and international, failed at DNS/TCP/TLS with "
       "the control reaching it"),
    _r("batch.throttled.cleared", "ok", None, None, 0.6,
       "slow against the control, but not against the rest of the run: the probe's own "
       "network or CPU was slow for every target, not this one"),
)  # fmt: skip

ALL: Final[dict[str, Rule]] = {r.id: r for r in WEB + OTHER + TUNNELS + BATCH}
if len(ALL) != len(WEB) + len(OTHER) + len(TUNNELS) + len(
    BATCH
):  # pragma: no cover - guards the table itself
    raise RuntimeError("duplicate rule ids in didban.analysis.rules")


def rule(rule_id: str) -> Rule:
    return ALL[rule_id]
