"""The circumvention tools' servers in the lab: a private Tor network with an obfs4
bridge, Snowflake (Debian's proxy and the stand-ins for what Debian lacks), OpenVPN,
WireGuard, Shadowsocks and HTTP/SOCKS5 proxies — started on demand by ``didban lab
circumvention`` (docs/lab.md, "Circumvention servers")."""
