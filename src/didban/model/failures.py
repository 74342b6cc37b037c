"""OONI failure strings (ooni/spec df-007-errors) as constants, and the sets analysis uses.

The mapping from Python exceptions to these strings lives in ``didban.net.errors``;
this module only names them, so every layer spells them the same way.
"""

from typing import Final

CONNECTION_RESET: Final = "connection_reset"
CONNECTION_REFUSED: Final = "connection_refused"
CONNECTION_ABORTED: Final = "connection_aborted"
GENERIC_TIMEOUT: Final = "generic_timeout_error"
EOF_ERROR: Final = "eof_error"
HOST_UNREACHABLE: Final = "host_unreachable"
NETWORK_UNREACHABLE: Final = "network_unreachable"
NETWORK_DOWN: Final = "network_down"
# EADDRNOTAVAIL (e.g. an IPv6 answer where the host has no IPv6): not in df-007's list,
# but OONI's probe emits it (probe-cli internal/netxlite/errno.go); see docs/net.md.
ADDRESS_NOT_AVAILABLE: Final = "address_not_available"
DNS_NXDOMAIN: Final = "dns_nxdomain_error"
DNS_NO_ANSWER: Final = "dns_no_answer"
DNS_SERVFAIL: Final = "dns_servfail_error"
DNS_REFUSED: Final = "dns_refused_error"
DNS_BOGON: Final = "dns_bogon_error"
DNS_NON_RECOVERABLE: Final = "dns_non_recoverable_failure"
DNS_TEMPORARY: Final = "dns_temporary_failure"
DNS_SERVER_MISBEHAVING: Final = "dns_server_misbehaving"
DNS_WRONG_QUERY_ID: Final = "dns_reply_with_wrong_query_id"
ANDROID_DNS_CACHE_NO_DATA: Final = "android_dns_cache_no_data"
SSL_INVALID_HOSTNAME: Final = "ssl_invalid_hostname"
SSL_UNKNOWN_AUTHORITY: Final = "ssl_unknown_authority"
SSL_INVALID_CERTIFICATE: Final = "ssl_invalid_certificate"
SSL_FAILED_HANDSHAKE: Final = "ssl_failed_handshake"
QUIC_INCOMPATIBLE_VERSION: Final = "quic_incompatible_version"
HTTP_REQUEST_FAILED: Final = "http_request_failed"
HTTP_INVALID_REDIRECT_LOCATION_HOST: Final = "http_invalid_redirect_location_host"
HTTP_UNEXPECTED_REDIRECT_URL: Final = "http_unexpected_redirect_url"
HTTP_UNEXPECTED_STATUS_CODE: Final = "http_unexpected_status_code"
INTERRUPTED: Final = "interrupted"
JSON_PARSE_ERROR: Final = "json_parse_error"
UNKNOWN_FAILURE_PREFIX: Final = "unknown_failure"

# Legacy strings used by OONI's test helper (oohelperd) in its responses.
TH_DNS_NAME_ERROR: Final = "dns_name_error"
TH_DNS_SERVER_FAILURE: Final = "dns_server_failure"
TH_DNS_LOOKUP_ERROR: Final = "dns_lookup_error"
TH_CONNECT_ERROR: Final = "connect_error"
TH_CONNECTION_REFUSED: Final = "connection_refused_error"
TH_UNKNOWN_ERROR: Final = "unknown_error"

ALL: Final[frozenset[str]] = frozenset(
    {
        CONNECTION_RESET,
        CONNECTION_REFUSED,
        CONNECTION_ABORTED,
        GENERIC_TIMEOUT,
        EOF_ERROR,
        HOST_UNREACHABLE,
        NETWORK_UNREACHABLE,
        NETWORK_DOWN,
        ADDRESS_NOT_AVAILABLE,
        DNS_NXDOMAIN,
        DNS_NO_ANSWER,
        DNS_SERVFAIL,
        DNS_REFUSED,
        DNS_BOGON,
        DNS_NON_RECOVERABLE,
        DNS_TEMPORARY,
        DNS_SERVER_MISBEHAVING,
        DNS_WRONG_QUERY_ID,
        ANDROID_DNS_CACHE_NO_DATA,
        SSL_INVALID_HOSTNAME,
        SSL_UNKNOWN_AUTHORITY,
        SSL_INVALID_CERTIFICATE,
        SSL_FAILED_HANDSHAKE,
        QUIC_INCOMPATIBLE_VERSION,
        HTTP_REQUEST_FAILED,
        HTTP_INVALID_REDIRECT_LOCATION_HOST,
        HTTP_UNEXPECTED_REDIRECT_URL,
        HTTP_UNEXPECTED_STATUS_CODE,
        INTERRUPTED,
        JSON_PARSE_ERROR,
    }
)


def is_known(failure: str | None) -> bool:
    """True for null, a spec failure string, or an ``unknown_failure ...`` string."""
    return failure is None or failure in ALL or failure.startswith(UNKNOWN_FAILURE_PREFIX)


def unknown(detail: str) -> str:
    """OONI's spelling for a failure it cannot classify: ``unknown_failure: <detail>``."""
    return f"{UNKNOWN_FAILURE_PREFIX}: {detail}"
