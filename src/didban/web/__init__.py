"""Pages for people, rendered on the server (docs/explorer.md): the explorer that
``didban serve`` serves beside the API, and the self-contained HTML report of
``didban report`` — one set of templates (``templates/``), one stylesheet, Farsi and
English."""
