"""Measurement primitives: DNS, TCP, TLS, HTTP/1.1, HTTP/2 and QUIC, each step traced and
every error normalised to an OONI failure string. Nothing here decides what is blocked."""
