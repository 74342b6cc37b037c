"""The censor's enforcers: each profile rule compiled into what the kernel queues (iptables
match specs), shapes (tc) or redirects (nat), what the ISP resolver is told, and the
decision userspace takes for each queued packet. One module per family of techniques;
``censor.policy`` assembles a profile's enforcers."""
