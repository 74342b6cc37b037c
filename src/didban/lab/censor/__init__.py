"""The lab's censor engine: one process in the isp namespace that installs a profile's rules
(iptables chains, tc qdiscs, an NFQUEUE injector) and logs every rule that fires."""
