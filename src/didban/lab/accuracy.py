"""Lab accuracy: verdicts compared with a profile's ground truth, and the run that makes them.

The lab knows the truth (which rule blocks which URL, by which method); analysis does not.
This module lines the two up per URL (``compare``), scores them (``Score``: confusion
matrix of expected label × verdict label, accuracy, precision and recall per label, false
``blocked`` on targets that should be ok), and runs the whole measurement for one profile
exactly as a user would (``run_profile``: ``lab up`` with the control helper, ``didban run
--lab`` on the default list, ``didban dnscheck --lab`` for each ``dot://`` target,
``didban analyze``, lab down on every path). The demo prints a
verdict table with a "matches the truth?" column from it, ``bench/lab_accuracy.py`` prints
the matrix over all profiles, and ``tests/lab/test_accuracy.py`` asserts on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from didban.lab import plan, runtime, targets, zone
from didban.lab.profiles import Profile
from didban.lab.profiles import load as load_profile
from didban.lab.targets import default_urls, dot_endpoint

# The label of a target the probe produced no verdict for.
MISSING = "missing"
# Probe concurrency for accuracy runs. At 16-32 the lab's single-process fake servers and
# the two shared cores, not the censor, set the per-flow rate of HTTPS bodies that the
# throughput rule reads: false and missed `throttled` verdicts appear (docs/methodology.md,
# "Lab accuracy"). A NIN-isolation run only waits for timeouts, so it runs wider.
DEFAULT_CONCURRENCY = 8
CONCURRENCY: dict[str, int] = {"iran-2019-shutdown": 32}


def concurrency_for(profile: str) -> int:
    """The probe concurrency an accuracy run of ``profile`` uses by default."""
    return CONCURRENCY.get(profile, DEFAULT_CONCURRENCY)


class Row(msgspec.Struct, frozen=True):
    url: str
    service: str | None
    expected_outcome: str
    expected_layer: str | None
    expected_method: str | None
    state: str
    layer: str | None
    method: str | None
    confirmed: bool
    rule_id: str
    reason: str = ""
    expected_rule: str | None = None

    @property
    def expected_label(self) -> str:
        return label(self.expected_outcome, self.expected_method)

    @property
    def got_label(self) -> str:
        return label(self.state, self.method)

    @property
    def match(self) -> bool:
        """Same outcome; for anything but ``ok`` also the same method and layer."""
        if self.state != self.expected_outcome:
            return False
        if self.expected_outcome == "ok":
            return True
        if self.expected_method is not None and self.method != self.expected_method:
            return False
        return self.expected_layer is None or self.layer == self.expected_layer


def label(state: str, method: str | None) -> str:
    """``ok``, ``inconclusive``, ``missing``, the blocking method (``blocked:?`` if unnamed),
    or ``down`` (``down:<method>`` when a method is named, e.g. ``down:nin.isolated``)."""
    if state == "blocked":
        return method or "blocked:?"
    if state == "down" and method:
        return f"down:{method}"
    return state


def compare(verdicts: Iterable[Mapping[str, Any]], profile: Profile) -> list[Row]:
    """One row per verdict whose target (``targets.of_verdict``: the input, ``quic://``,
    ``app:``) the profile has ground truth for."""
    truth = {t.url: t for t in profile.ground_truth}
    rows: list[Row] = []
    for v in verdicts:
        url = targets.of_verdict(v)
        if not isinstance(url, str) or url not in truth:
            continue
        t = truth[url]
        rows.append(
            Row(
                url=url,
                service=v.get("service"),
                expected_outcome=t.outcome,
                expected_layer=t.layer,
                expected_method=t.method,
                expected_rule=t.rule,
                state=str(v.get("state")),
                layer=v.get("layer"),
                method=v.get("method"),
                confirmed=bool(v.get("confirmed")),
                rule_id=str(v.get("rule_id", "")),
                reason=str(v.get("reason", "")),
            )
        )
    return rows


def missing(verdicts_urls: Iterable[str], profile: Profile, urls: Iterable[str]) -> list[str]:
    """URLs that were measured targets with ground truth but got no verdict."""
    have = set(verdicts_urls)
    truth = {t.url for t in profile.ground_truth}
    return [u for u in urls if u in truth and u not in have]


def missing_rows(urls: Iterable[str], profile: Profile) -> list[Row]:
    """Rows (state ``missing``) for targets that got no verdict, so they count as wrong."""
    rows = []
    for url in urls:
        t = profile.truth(url)
        rows.append(
            Row(
                url=url,
                service=None,
                expected_outcome=t.outcome,
                expected_layer=t.layer,
                expected_method=t.method,
                expected_rule=t.rule,
                state=MISSING,
                layer=None,
                method=None,
                confirmed=False,
                rule_id="",
                reason="no verdict: the probe wrote no measurement for this URL",
            )
        )
    return rows


def confusion(rows: Iterable[Row]) -> Counter[tuple[str, str]]:
    """(expected label, verdict label) -> count."""
    return Counter((r.expected_label, r.got_label) for r in rows)


@dataclass(frozen=True)
class LabelScore:
    label: str
    expected: int  # rows whose ground truth has this label
    predicted: int  # rows whose verdict has this label
    correct: int  # rows with this label on both sides that match (layer included)

    @property
    def precision(self) -> float | None:
        return self.correct / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        return self.correct / self.expected if self.expected else None


@dataclass(frozen=True)
class Score:
    """Accuracy figures over a set of rows (one profile, or all of them)."""

    rows: Sequence[Row]

    @property
    def total(self) -> int:
        return len(self.rows)

    @property
    def correct(self) -> int:
        return sum(r.match for r in self.rows)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def false_blocked(self) -> list[Row]:
        """Targets that should be ok but were called ``blocked``."""
        return [r for r in self.rows if r.expected_outcome == "ok" and r.state == "blocked"]

    @property
    def mismatches(self) -> list[Row]:
        return [r for r in self.rows if not r.match]

    def matrix(self) -> Counter[tuple[str, str]]:
        return confusion(self.rows)

    def expected_labels(self) -> list[str]:
        """Row labels of the matrix: ``ok`` first, then the expected methods, sorted."""
        found = {r.expected_label for r in self.rows}
        return sorted(found, key=lambda s: (s != "ok", s))

    def got_labels(self) -> list[str]:
        """Column labels: every expected label (so the diagonal lines up), then the rest."""
        first = self.expected_labels()
        rest = sorted({r.got_label for r in self.rows} - set(first))
        return first + rest

    def per_label(self) -> list[LabelScore]:
        labels = self.got_labels()
        exp = Counter(r.expected_label for r in self.rows)
        got = Counter(r.got_label for r in self.rows)
        ok = Counter(r.expected_label for r in self.rows if r.match)
        return [LabelScore(lb, exp[lb], got[lb], ok[lb]) for lb in labels]


# --- running one profile ------------------------------------------------------------------


class SetupError(RuntimeError):
    """The measurement could not be made (lab, probe or analysis failed to run)."""


@dataclass
class ProfileRun:
    """One profile measured: the verdicts lined up with its ground truth, and timings."""

    profile: Profile
    measurements: list[Path]  # the default list's run, the extra web, app and dnscheck runs
    verdicts_file: Path
    verdicts: list[dict[str, Any]]
    rows: list[Row]
    targets: list[str]  # the default list, web_extras(), app_extras(), then dns_extras()
    not_measured: list[str]  # ground-truth targets no experiment takes (none shipped)
    seconds: dict[str, float] = field(default_factory=dict)
    probe_exit: int = 0

    @property
    def score(self) -> Score:
        return Score(self.rows)

    def row(self, url: str) -> Row | None:
        for r in self.rows:
            if r.url == url:
                return r
        return None


def _didban(
    args: Sequence[str], env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "didban.cli", *args],
        env={**os.environ, **env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
    )


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def web_extras(profile: Profile) -> list[str]:
    """Ground-truth http(s) targets outside the default list (e.g. iran-2022's DoH URLs):
    ``measure`` probes them too, with ``didban run --url``."""
    listed = set(default_urls())
    return [
        t.url
        for t in profile.ground_truth
        if t.url not in listed and t.url.startswith(("http://", "https://"))
    ]


def app_extras(profile: Profile) -> list[str]:
    """Ground-truth ``app:``, ``stun://`` and ``quic://`` targets: ``measure`` probes them
    with ``didban run --test im --test quic`` (the HTTP/3 test of each ``quic://`` target's
    https URL, given with ``--url``)."""
    return [t.url for t in profile.ground_truth if t.url.startswith(("app:", "stun://", "quic://"))]


def dns_extras(profile: Profile) -> list[str]:
    """Ground-truth ``dot://IP:PORT`` targets (an encrypted-DNS resolver): ``measure``
    checks each with ``didban dnscheck``, asking the same resolver over UDP and TCP too so
    that a blocked transport can be told from a resolver that is down."""
    return [t.url for t in profile.ground_truth if t.url.startswith("dot://")]


def _resolver_name(ip: str) -> str:
    """The name the lab's public resolver at ``ip`` has a certificate for ('' if none)."""
    for addrs, names in plan.PUBLIC_RESOLVERS.values():
        if ip in addrs and names:
            return names[0]
    return ""


def _lookup_domain(profile: Profile) -> str:
    """A lab name the profile leaves alone (its first ``ok`` web target), for dnscheck."""
    for t in profile.ground_truth:
        host = urlsplit(t.url).hostname
        web = t.url.startswith(("http://", "https://"))
        if t.outcome == "ok" and web and host and zone.site_for_host(host) is not None:
            return host
    return "en.wikipedia.org"


def _dnscheck(url: str, out: Path, domain: str, lab_json: str, timeout: float, name: str) -> None:
    endpoint = dot_endpoint(url)
    if endpoint is None:
        raise SetupError(f"{url}: not a dot://IP[:PORT] target")
    ip, port = endpoint
    sni = _resolver_name(ip)
    dot = f"{ip}:{port}" + (f"#{sni}" if sni else "")
    args = ["dnscheck", "--lab", "--accept-risk", "--output", str(out)]
    args += ["--resolver", ip, "--dot", dot, domain]
    run = _didban(args, {"DIDBAN_LAB": lab_json}, timeout)
    if run.returncode != 0 or not out.exists():
        raise SetupError(
            f"didban dnscheck --lab failed (exit {run.returncode}) for {url} in profile "
            f"{name}: {_tail(run.stderr or run.stdout)}"
        )


def _probe(
    urls: Sequence[str],
    out: Path,
    lab_json: str,
    concurrency: int,
    timeout: float,
    name: str,
    tests: Sequence[str] = (),
) -> int:
    args = ["run", "--lab", "--accept-risk", "--no-progress"]
    args += ["--concurrency", str(concurrency), "--output", str(out)]
    for u in urls:
        args += ["--url", u]
    for t in tests:
        args += ["--test", t]
    run = _didban(args, {"DIDBAN_LAB": lab_json}, timeout)
    # Exit 1 means some URL could not be measured (listed by the probe): a measurement
    # result, counted as missing verdicts. Anything else is a setup failure.
    if run.returncode not in (0, 1) or not out.exists():
        raise SetupError(
            f"didban run --lab failed (exit {run.returncode}) for profile {name}: "
            f"{_tail(run.stderr or run.stdout)}"
        )
    return run.returncode


def measure(
    desc_state_dir: str | Path,
    profile: Profile,
    workdir: Path,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float = 600.0,
) -> ProfileRun:
    """Probe the default list inside a running lab (then the profile's other http(s)
    ground-truth targets, in a second run, and its app, STUN and HTTP/3 targets in a
    third: ``--test im --test quic``), classify them with one ``didban analyze``; check
    each ``dot://`` target with ``didban dnscheck`` and classify it on its own (its
    verdict, about the looked-up domain, is filed under the resolver it tested)."""
    lab_json = str(Path(desc_state_dir) / "lab.json")
    measurements = workdir / f"{profile.name}.jsonl"
    extra_file = workdir / f"{profile.name}.extra.jsonl"
    verdicts_file = workdir / f"{profile.name}.verdicts.jsonl"
    extras = web_extras(profile)
    app_targets = app_extras(profile)
    dns_targets = dns_extras(profile)
    seconds: dict[str, float] = {}
    t0 = time.monotonic()
    code = _probe([], measurements, lab_json, concurrency, timeout, profile.name)
    seconds["probe"] = time.monotonic() - t0
    files = [measurements]
    if extras:
        t0 = time.monotonic()
        code = max(code, _probe(extras, extra_file, lab_json, concurrency, timeout, profile.name))
        seconds["probe extras"] = time.monotonic() - t0
        files.append(extra_file)
    if app_targets:
        apps_file = workdir / f"{profile.name}.apps.jsonl"
        quic = [targets.quic_url(t) for t in app_targets if t.startswith("quic://")]
        tests = ["im"] + (["quic"] if quic else [])
        t0 = time.monotonic()
        code = max(
            code, _probe(quic, apps_file, lab_json, concurrency, timeout, profile.name, tests)
        )
        seconds["probe apps"] = time.monotonic() - t0
        files.append(apps_file)
    dns_files: list[tuple[str, Path]] = []
    if dns_targets:
        t0 = time.monotonic()
        domain = _lookup_domain(profile)
        for i, url in enumerate(dns_targets):
            out = workdir / f"{profile.name}.dnscheck{i}.jsonl"
            _dnscheck(url, out, domain, lab_json, timeout, profile.name)
            dns_files.append((url, out))
        seconds["dnscheck"] = time.monotonic() - t0
    t0 = time.monotonic()
    verdicts = _analyze(files, verdicts_file, timeout, profile.name)
    for url, out in dns_files:
        found = _analyze([out], out.with_suffix(".verdicts.jsonl"), timeout, profile.name)
        verdicts += [{**v, "input": url, "x_domain": v.get("input")} for v in found]
    seconds["analyze"] = time.monotonic() - t0
    measured = default_urls() + extras + app_targets + dns_targets
    rows = [r for r in compare(verdicts, profile) if r.url in set(measured)]
    rows += missing_rows(
        missing((str(targets.of_verdict(v)) for v in verdicts), profile, measured), profile
    )
    order = {u: i for i, u in enumerate(measured)}
    rows.sort(key=lambda r: order[r.url])
    return ProfileRun(
        profile=profile,
        measurements=files + [out for _, out in dns_files],
        verdicts_file=verdicts_file,
        verdicts=verdicts,
        rows=rows,
        targets=measured,
        not_measured=[t.url for t in profile.ground_truth if t.url not in set(measured)],
        seconds=seconds,
        probe_exit=code,
    )


def _analyze(files: Sequence[Path], out: Path, timeout: float, name: str) -> list[dict[str, Any]]:
    ana = _didban(["analyze", "--quiet", *map(str, files), "--output", str(out)], {}, timeout)
    if ana.returncode != 0 or not out.exists():
        raise SetupError(
            f"didban analyze failed (exit {ana.returncode}) for profile {name}: "
            f"{_tail(ana.stderr or ana.stdout)}"
        )
    with out.open("rb") as f:
        return [msgspec.json.decode(line) for line in f if line.strip()]


def run_profile(
    name: str, workdir: Path, *, concurrency: int | None = None, timeout: float = 600.0
) -> ProfileRun:
    """Bring a lab up with ``name`` (control helper on), measure, and ALWAYS bring it down.

    ``concurrency`` defaults to ``concurrency_for(name)``. The lab is not made the current
    one, so a lab the user has up is left alone. Raises ``SetupError`` when the lab, the
    probe or the analysis cannot run."""
    try:
        profile = load_profile(name)
    except ValueError as exc:
        raise SetupError(str(exc)) from None
    t0 = time.monotonic()
    try:
        desc = runtime.up(name, control=True, make_current=False)
    except runtime.LabError as exc:
        raise SetupError(str(exc)) from None
    up_s = time.monotonic() - t0
    try:
        result = measure(
            desc.state_dir,
            profile,
            workdir,
            concurrency=concurrency or concurrency_for(profile.name),
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"profile {name}: {exc.cmd[3]} took more than {timeout:.0f} s") from None
    finally:
        t1 = time.monotonic()
        runtime.down(desc.state_dir)
        down_s = time.monotonic() - t1
    result.seconds = {"up": up_s, **result.seconds, "down": down_s}
    return result
