"""The roots an app's TLS is verified against: the configured roots (the system's, or the
lab CA) plus the CA files the app pins (``apps.yaml``'s ``ca``; in the lab, the lab's
stand-in for that CA). OONI's signal test does the same: Mozilla's roots and Signal's CA.
The bundle is one PEM file written once per run and removed by :meth:`Roots.close`."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from didban.data.apps import App
from didban.net import verify
from didban.probe.config import ProbeConfig


class Roots:
    """The verification bundle of one app for one run."""

    def __init__(self, app: App, config: ProbeConfig) -> None:
        self.app = app
        self.config = config
        self._file: str | None = None

    def pinned(self) -> list[str]:
        """The app's pinned CA files: the lab's stand-ins in lab mode, else the catalog's."""
        if self.app.id in self.config.pinned_cas:
            return list(self.config.pinned_cas[self.app.id])
        return [str(p) for p in self.app.ca_files()]

    def ca_file(self) -> str | None:
        """The bundle's path (None: the app pins nothing; use the configured roots)."""
        pinned = self.pinned()
        if not pinned:
            return self.config.ca_file
        if self._file is None:
            base = self.config.ca_file or verify.default_ca_file()
            parts = [Path(p).read_bytes() for p in ([base] if base else []) + pinned]
            fd, name = tempfile.mkstemp(prefix=f"didban-{self.app.id}-roots-", suffix=".pem")
            with os.fdopen(fd, "wb") as fh:
                fh.write(b"\n".join(p.rstrip(b"\n") for p in parts) + b"\n")
            self._file = name
        return self._file

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._file)
            self._file = None
