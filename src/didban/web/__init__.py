"""Pages for people, rendered on the server: the self-contained HTML report of verdicts
with their evidence (``report``, the ``didban report`` command in ``cli``), and the
explorer's pages to come, which will share its templates (``templates/``)."""
