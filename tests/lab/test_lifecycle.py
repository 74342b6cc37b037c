"""The ``didban lab`` command: clear one-line errors (no root, no ip/iptables, bad profile,
no lab, lab already up) and the full cycle up → status → exec → switch → down."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from didban.lab import plan, runtime, topology

pytestmark = pytest.mark.lab
DIDBAN = [sys.executable, "-m", "didban.cli"]


def _didban(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DIDBAN, *args], capture_output=True, text=True, timeout=timeout,
        env=env or dict(os.environ), check=False,
    )  # fmt: skip


def test_without_root_the_cli_says_so() -> None:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to drop root for this test")
    for cmd in (["lab", "up"], ["lab", "down"]):
        r = subprocess.run(
            [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", *DIDBAN, *cmd],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert r.returncode == 1, r.stderr
        assert r.stderr.strip() == (
            "didban lab: the lab needs root (network namespaces, iptables): run it as root"
        )


def test_without_ip_or_iptables_the_cli_says_so(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    r = _didban("lab", "up", env=env)
    assert (r.returncode, r.stderr.strip()) == (
        1, "didban lab: the lab needs 'ip' on PATH (Debian: apt-get install iproute2)")  # fmt: skip
    ip = shutil.which("ip")
    assert ip is not None
    (tmp_path / "ip").symlink_to(ip)
    r = _didban("lab", "up", env=env)
    need = "didban lab: the lab needs 'iptables' on PATH (Debian: apt-get install iptables)"
    assert (r.returncode, r.stderr.strip()) == (1, need)


def test_unknown_or_invalid_profile_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    before = set(topology.NETNS_DIR.iterdir()) if topology.NETNS_DIR.exists() else set()
    r = _didban("lab", "up", "--profile", "no-such-profile")
    assert r.returncode == 1
    assert r.stderr.startswith("didban lab: ") and "no-such-profile" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: broken\nrules: [\n")
    r = _didban("lab", "up", "--profile", str(bad))
    assert r.returncode == 1
    assert "broken.yaml:" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # No namespace appeared because of these calls (other labs may come and go meanwhile,
    # but none of them is named after a failed run: failed runs never reach `netns add`).
    after = set(topology.NETNS_DIR.iterdir()) if topology.NETNS_DIR.exists() else set()
    assert not {p for p in after - before if not (Path(plan.RUN_DIR) / p.name[:7]).exists()}


def test_exec_without_a_command_is_a_usage_error() -> None:
    r = _didban("lab", "exec", "--")
    assert r.returncode == 2
    assert "nothing to run" in r.stderr


def _curl(*extra: str) -> subprocess.CompletedProcess[str]:
    return _didban("lab", "exec", "--", "curl", "-sS", "--max-time", "5", *extra,
                   "https://www.instagram.com/")  # fmt: skip


def test_full_cycle_up_status_exec_switch_down() -> None:
    live = runtime.current()
    if live is not None and runtime.lab_exists(live):
        pytest.skip(f"another lab ({live.name}) is the current lab; this test needs the CLI's")
    r = _didban("lab", "up", "--profile", "clean")  # default: the control helper too
    assert r.returncode == 0, r.stderr
    prefix = r.stdout.split()[1]
    try:
        assert f"{prefix}client" in r.stdout and "up with profile 'clean' in" in r.stdout
        again = _didban("lab", "up")
        assert again.returncode == 1
        assert again.stderr.strip() == (
            f"didban lab: a lab is already up ({prefix}); run 'didban lab down' first"
        )
        status = _didban("lab", "status")
        assert status.returncode == 0
        assert f"lab {prefix}  profile 'clean'" in status.stdout
        assert "DEAD" not in status.stdout and "MISSING" not in status.stdout
        assert re.search(r"proc  control +pid \d+ +alive", status.stdout)
        assert "rules fired: 0 (none)" in status.stdout

        page = _curl()
        assert page.returncode == 0, page.stderr
        assert "<title>Instagram</title>" in page.stdout
        env_line = _didban("lab", "exec", "--", "sh", "-c",
                           "echo $SSL_CERT_FILE; cat /etc/resolv.conf; exit 3")  # fmt: skip
        assert env_line.returncode == 3
        assert env_line.stdout.splitlines()[:2] == [
            f"{plan.RUN_DIR}/{prefix}/ca.pem", f"nameserver {plan.ISP_RESOLVER}"]  # fmt: skip

        bad = _didban("lab", "switch", "--profile", "no-such-profile")
        assert bad.returncode == 1 and "no-such-profile" in bad.stderr
        profile_json = Path(plan.RUN_DIR) / prefix / "profile.json"
        assert json.loads(profile_json.read_bytes())["name"] == "clean"

        sw = _didban("lab", "switch", "--profile", "iran-2022")
        assert (sw.returncode, sw.stdout.strip()) == (0, "profile switched to 'iran-2022'")
        assert json.loads(profile_json.read_bytes())["name"] == "iran-2022"
        blocked = _curl()  # switch returns once the censor has reloaded
        assert blocked.returncode in (35, 56), blocked.stderr  # TLS / recv failure
        assert "reset" in blocked.stderr.lower()
        fired = runtime.status()["fired"]
        assert isinstance(fired, dict) and sum(fired.values()) >= 1, fired

        _didban("lab", "switch", "--profile", "clean")
        back = _curl()
        assert "<title>Instagram</title>" in back.stdout
    finally:
        down = _didban("lab", "down")
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == f"lab {prefix} removed (6 namespaces deleted)"
    assert not topology.existing(topology.namespaces(prefix).values())
    after = _didban("lab", "status")
    assert (after.returncode, after.stderr.strip()) == (
        1, "didban lab: no lab is up (start one with: didban lab up --profile clean)")  # fmt: skip


def test_switch_refuses_when_the_censor_is_not_running() -> None:
    import signal
    import time

    desc = runtime.up("clean", control=False, make_current=False)
    try:
        pid = desc.pids.get("censor")
        if pid is None:
            pytest.skip("this lab runs without a censor (no iptables)")
        os.kill(pid, signal.SIGKILL)  # a process this test's lab started
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                break
            time.sleep(0.05)
        profile_json = Path(desc.state_dir) / "profile.json"
        with pytest.raises(runtime.LabError, match=r"censor .* is not running"):
            runtime.switch("iran-2022", desc.state_dir)
        assert json.loads(profile_json.read_bytes())["name"] == "clean"  # unchanged
    finally:
        runtime.down(desc.state_dir)


def test_sigterm_during_lab_up_removes_the_half_built_lab() -> None:
    import signal
    import time

    live = runtime.current()
    if live is not None and runtime.lab_exists(live):
        pytest.skip(f"another lab ({live.name}) is the current lab; this test needs the CLI's")
    labs = Path(plan.RUN_DIR)
    before = set(labs.iterdir()) if labs.is_dir() else set()
    p = subprocess.Popen(
        [*DIDBAN, "lab", "up", "--profile", "iran-2022"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    new: set[Path] = set()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not new and p.poll() is None:
            new = (set(labs.iterdir()) if labs.is_dir() else set()) - before
            time.sleep(0.005)
        p.send_signal(signal.SIGTERM)  # while it builds: its state directory exists
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        leftover = (set(labs.iterdir()) if labs.is_dir() else set()) - before
        for sd in leftover:  # whatever happened, no lab of this test stays up
            runtime.down(sd)
    assert new, "lab up finished before it could be interrupted"
    if p.returncode == 0:
        pytest.skip("lab up completed before the signal arrived")
    assert p.returncode == 130, err
    assert "interrupted; the half-built lab was removed" in err
    assert not leftover  # it removed itself: nothing was left for the test to remove
    (state_dir,) = new
    assert not topology.existing(topology.namespaces(state_dir.name).values())
