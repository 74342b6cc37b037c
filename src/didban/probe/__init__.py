"""Experiments (web_connectivity, dnscheck, ...), test lists and the runner. It records evidence;
it never judges."""
