"""``didban serve`` (the installed ``didban`` command, as ``uv run didban serve`` runs it)
answers ``/docs`` with Swagger UI whose every asset it serves itself: no CDN, works offline."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from pathlib import Path

import httpx2
from server_helpers import free_port, stop


def test_serve_answers_docs_with_its_own_assets(tmp_path: Path) -> None:
    didban = Path(sys.executable).with_name("didban")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(didban), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        docs = None
        for _ in range(300):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                docs = httpx2.get(base + "/docs", timeout=1)
                break
            except httpx2.HTTPError:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.1)
        assert docs is not None and docs.status_code == 200
        assert docs.headers["content-type"].startswith("text/html")
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", docs.text)
        assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
        assert "/openapi.json" in docs.text
        for a in assets:
            assert a.startswith("/"), f"/docs loads {a} from elsewhere"
            r = httpx2.get(base + a, timeout=10)
            assert r.status_code == 200 and len(r.content) > 100, a
        spec = httpx2.get(base + "/openapi.json", timeout=10).json()
        for path in ("/report", "/api/v1/submit_measurement", "/api/v1/measurements",
                     "/api/v1/aggregation", "/api/v1/services/{probe_cc}"):  # fmt: skip
            assert path in spec["paths"], path
    finally:
        stop(proc)
