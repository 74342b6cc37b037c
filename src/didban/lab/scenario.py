"""Lab scenarios: a YAML file of profile switches at offsets, validated like the profiles.

```yaml
name: clean-2022-nin-clean
description: a block, then the 2019 international cut, then nothing   # optional
switches:
  - {at: 0, profile: clean}              # the first switch is at 0: the lab starts with it
  - {at: 2m, profile: iran-2022}
  - {at: 4m, profile: iran-2019-shutdown}
  - {at: 6m, profile: clean}
duration: 8m                             # when the scenario ends (after the last switch)
```

Offsets and the duration are seconds (``90``, ``90s``, ``1.5m``, ``2h``). A profile is a
shipped name or a YAML path (relative to the scenario's directory), and is loaded and
validated here, so a scenario that would fail half-way fails before the lab is touched.
The first problem is one ``file:line: problem`` sentence (``ScenarioError``), the line of
the YAML node at fault. ``expected`` turns a profile's ground truth into the per-target
expectations of the ground-truth timeline (``didban.model.scenario``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import yaml

from didban.data import catalog
from didban.lab import profiles
from didban.model.scenario import Expected

_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9._\-]{0,62}$")
_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")
_UNITS: Final = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_TOP_KEYS: Final = ("name", "description", "switches", "duration")
_SWITCH_KEYS: Final = ("at", "profile")


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message is ``file:line: problem``."""


@dataclass(frozen=True)
class Step:
    at: float  # seconds after the start
    profile: str  # as written (a shipped name or a path)
    name: str  # the profile's name
    expected: tuple[Expected, ...]
    line: int


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    steps: tuple[Step, ...]
    duration: float
    source: str


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``1.5m``, ``2h`` as seconds; ValueError otherwise."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"a duration is seconds or a number with s, m or h (90, 2m), not {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def target_of(url: str) -> str:
    """How verdicts name the target of ``url``: its catalog service, else its host."""
    host = (urlsplit(url).hostname or url).lower()
    return catalog.service_for_host(host) or host


# Targets of the app, STUN and HTTP/3 tests (lab/targets.py): a scenario probes websites.
_APP_TARGETS = ("app:", "stun://", "quic://")


def expected(profile: profiles.Profile) -> tuple[Expected, ...]:
    """Every ground-truth target of ``profile`` a scenario measures, as the timeline
    records it (not the app, STUN and HTTP/3 targets: ``didban run --test``)."""
    return tuple(
        Expected(t.url, target_of(t.url), t.outcome, t.layer, t.method)
        for t in profile.ground_truth
        if not t.url.startswith(_APP_TARGETS)
    )


def load(path: Path) -> Scenario:
    """Read and validate a scenario file; raises ``ScenarioError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(
            f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    return loads(text, path.name, path.parent)


def loads(text: str, filename: str = "<scenario>", base: Path | None = None) -> Scenario:
    """Parse and validate scenario YAML; profile paths are relative to ``base``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise ScenarioError(f"{filename}:{line}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{filename}:1: invalid YAML: {exc}") from None
    return _Reader(filename, base or Path(".")).scenario(root)


class _Reader:
    def __init__(self, filename: str, base: Path) -> None:
        self.filename = filename
        self.base = base

    def fail(self, node: yaml.Node | None, problem: str) -> ScenarioError:
        line = node.start_mark.line + 1 if node is not None else 1
        return ScenarioError(f"{self.filename}:{line}: {problem}")

    def mapping(self, node: yaml.Node, what: str, keys: tuple[str, ...]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, yaml.Node] = {}
        for k, v in node.value:
            name = k.value if isinstance(k, yaml.ScalarNode) else None
            if name not in keys:
                raise self.fail(k, f"{what}: unknown key {name!r} (known: {', '.join(keys)})")
            if name in out:
                raise self.fail(k, f"{what}: duplicate key {name!r}")
            out[name] = v
        return out

    def text(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            raise self.fail(node, f"{what} must be a non-empty string")
        return str(node.value)

    def seconds(self, node: yaml.Node, what: str) -> float:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{what} must be a duration like 90, 90s or 2m")
        try:
            return parse_duration(str(node.value))
        except ValueError as exc:
            raise self.fail(node, f"{what}: {exc}") from None

    def scenario(self, root: yaml.Node | None) -> Scenario:
        if root is None:
            raise ScenarioError(f"{self.filename}:1: empty scenario")
        top = self.mapping(root, "the scenario", _TOP_KEYS)
        for key in ("name", "switches", "duration"):
            if key not in top:
                raise self.fail(root, f"the scenario needs '{key}'")
        name = self.text(top["name"], "name")
        if not _NAME.match(name):
            raise self.fail(
                top["name"], f"name must be lower-case letters, digits, '-', not {name!r}"
            )
        description = self.text(top["description"], "description") if "description" in top else ""
        switches = top["switches"]
        if not isinstance(switches, yaml.SequenceNode) or not switches.value:
            raise self.fail(switches, "switches must be a non-empty list of {at, profile}")
        steps: list[Step] = []
        for i, node in enumerate(switches.value, 1):
            steps.append(self.step(node, i, steps[-1] if steps else None))
        duration = self.seconds(top["duration"], "duration")
        if duration <= steps[-1].at:
            raise self.fail(
                top["duration"],
                f"duration ({duration:g} s) must be after the last switch ({steps[-1].at:g} s)",
            )
        return Scenario(name, description, tuple(steps), duration, self.filename)

    def step(self, node: yaml.Node, i: int, previous: Step | None) -> Step:
        what = f"switch {i}"
        fields = self.mapping(node, what, _SWITCH_KEYS)
        for key in _SWITCH_KEYS:
            if key not in fields:
                raise self.fail(node, f"{what} needs '{key}'")
        at = self.seconds(fields["at"], f"{what}: at")
        if previous is None and at != 0:
            raise self.fail(fields["at"], f"{what} must be at 0: the lab starts with it")
        if previous is not None and at <= previous.at:
            raise self.fail(
                fields["at"],
                f"{what}: at ({at:g} s) must be after switch {i - 1} ({previous.at:g} s)",
            )
        written = self.text(fields["profile"], f"{what}: profile")
        ref = written
        if "/" in written or written.endswith((".yaml", ".yml")):
            ref = str(self.base / written)
        try:
            profile = profiles.load(ref)
        except profiles.ProfileError as exc:
            raise self.fail(fields["profile"], f"{what}: profile {written!r}: {exc}") from None
        return Step(at, ref, str(profile.name), expected(profile), node.start_mark.line + 1)
