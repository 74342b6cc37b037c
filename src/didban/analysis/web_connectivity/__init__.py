"""The Web Connectivity verdict: facts read once per measurement (``facts``), the rules
grouped by what they judge (``dns_rules``, ``http_rules``, ``throttling``,
``failure_rules``), the evidence they cite (``evidence``), and the ordered cascade
(``cascade.classify_web``)."""
