"""The circumvention experiments (``didban run --test circumvention``): Tor (vanilla_tor,
tor, torsf), OpenVPN, WireGuard, Shadowsocks, HTTP CONNECT and SOCKS5 proxies, each a thin
composition of ``didban.net`` primitives and the Debian client the test needs."""
