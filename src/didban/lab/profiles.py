"""Censorship profiles: YAML files of censor rules plus their ground truth, validated.

A profile names a set of rules (each a technique from ``censor.techniques`` with
parameters) and, for every target URL, the outcome, layer and method the censor produces.
``load`` validates everything and reports problems as ``file:line: problem``;
``dump_json`` gives the normalised form the censor engine reads (``profile.json``).
"""

from __future__ import annotations

import csv
import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec
import yaml

from didban.data import path as data_path
from didban.lab import plan
from didban.lab.censor.techniques import TECHNIQUES, Param, known
from didban.model.verdict import LAYERS, METHODS

PROFILE_DIR: Final = Path(__file__).resolve().parent / "profiles"
OUTCOMES: Final = ("ok", "blocked", "down")
LAB_NETWORKS: Final = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "10.10.34.0/24")
)
# The layer a method belongs to (a ground-truth entry must agree).
METHOD_LAYER: Final[dict[str, str]] = {
    "dns": "dns",
    "tcp": "tcp",
    "tls": "tls",
    "http": "http",
    "quic": "quic",
    "throttled": "ip",
    "shutdown": "ip",
    "nin": "ip",
    "protocol": "tcp",
}
_ID_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_NAME_RE: Final = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.?)+$")
_RATE_RE: Final = re.compile(r"^\d+(\.\d+)?(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$")
_DURATION_RE: Final = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")


class ProfileError(ValueError):
    """A profile that cannot be used; the message is ``file:line: problem``."""


class Rule(msgspec.Struct, frozen=True):
    id: str
    technique: str
    params: dict[str, Any]


class Truth(msgspec.Struct, frozen=True, omit_defaults=True):
    url: str
    outcome: str
    layer: str | None = None
    method: str | None = None
    rule: str | None = None
    note: str | None = None


class Profile(msgspec.Struct, frozen=True):
    name: str
    description: str
    rules: list[Rule]
    ground_truth: list[Truth]
    source: str = ""

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def truth(self, url: str) -> Truth:
        for t in self.ground_truth:
            if t.url == url:
                return t
        raise KeyError(url)


def dot_endpoint(url: str) -> tuple[str, int] | None:
    """(ip, port) of a ``dot://IP[:PORT]`` ground-truth target (port 853 by default)."""
    split = urlsplit(url)
    try:
        ip = str(ipaddress.ip_address(split.hostname or ""))
        port = split.port or 853
    except ValueError:
        return None
    if split.scheme != "dot" or split.path not in ("", "/"):
        return None
    return ip, port


def default_urls() -> list[str]:
    """The URLs of ``data/default-list.csv``, in file order: every profile covers them."""
    with data_path("default-list.csv").open(encoding="utf-8", newline="") as f:
        return [row["url"] for row in csv.DictReader(f)]


def available() -> list[str]:
    """Names of the shipped profiles."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def resolve(name_or_path: str) -> Path:
    """The file of a shipped profile name, or the given path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or "/" in name_or_path:
        return p
    shipped = PROFILE_DIR / f"{name_or_path}.yaml"
    return p if not shipped.exists() and p.is_file() else shipped


def load(name_or_path: str) -> Profile:
    """Load and validate a profile by shipped name or path; raises ``ProfileError``."""
    file = resolve(name_or_path)
    if not file.is_file():
        if file.parent == PROFILE_DIR:
            raise ProfileError(f"no profile '{name_or_path}' (available: {', '.join(available())})")
        if file.is_dir():
            raise ProfileError(f"{file} is a directory, not a profile file")
        raise ProfileError(f"{file}: no such profile file")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ProfileError(f"{file}: cannot read: {e}") from e
    return loads(text, file.name, str(file))


def loads(text: str, filename: str = "<profile>", source: str = "") -> Profile:
    """Parse and validate profile YAML text; ``filename`` prefixes error messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 1
        raise ProfileError(f"{filename}:{line}: invalid YAML: {e.problem}") from e
    except yaml.YAMLError as e:
        raise ProfileError(f"{filename}:1: invalid YAML: {e}") from e
    return _Validator(filename, source).profile(root)


def dump_json(profile: Profile) -> bytes:
    """The normalised profile as JSON (what the lab writes to ``profile.json``)."""
    return msgspec.json.encode(profile)


def from_json(data: bytes) -> Profile:
    """Read back ``dump_json`` output (the censor engine reads ``profile.json`` with it)."""
    return msgspec.json.decode(data, type=Profile)


def addresses_of(ref: str) -> list[str]:
    """Expand an address parameter item: an IP/CIDR, ``service:<id>`` or ``resolver:<name>``."""
    if ref.startswith("service:"):
        sid = ref.split(":", 1)[1]
        table = {**plan.SERVICE_ADDRS, **plan.DOMESTIC_SITES}
        if sid not in table:
            raise ValueError(f"unknown service '{sid}' (known: {', '.join(sorted(table))})")
        return list(table[sid])
    if ref.startswith("resolver:"):
        rname = ref.split(":", 1)[1]
        if rname == "isp":
            return [plan.ISP_RESOLVER]
        if rname not in plan.PUBLIC_RESOLVERS:
            known_r = ", ".join(["isp", *sorted(plan.PUBLIC_RESOLVERS)])
            raise ValueError(f"unknown resolver '{rname}' (known: {known_r})")
        return list(plan.PUBLIC_RESOLVERS[rname][0])
    try:
        net = ipaddress.ip_network(ref, strict=True)
    except ValueError as e:
        raise ValueError(
            f"'{ref}' is not an IPv4 address, CIDR, service:<id> or resolver:<name>"
        ) from e
    if net.version != 4 or not any(net.subnet_of(lab) for lab in LAB_NETWORKS):  # type: ignore[arg-type]
        raise ValueError(
            f"'{ref}' is not a lab address (allowed: 192.0.2.0/24, 198.51.100.0/24, "
            "203.0.113.0/24, 10.10.34.0/24)"
        )
    return [str(net.network_address) if net.prefixlen == 32 else str(net)]


def parse_duration(value: object) -> float:
    """Seconds from 3, 0.5, "3s", "500ms" or "2m"."""
    if isinstance(value, bool):
        raise ValueError("a duration, not a boolean")
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION_RE.match(str(value).strip())
    if not m:
        raise ValueError(f"'{value}' is not a duration (e.g. 3, 0.5, '3s', '500ms', '2m')")
    n = float(m.group(1))
    return {"ms": n / 1000, "s": n, "m": n * 60, None: n}[m.group(2)]


class _Validator:
    """Walks the composed YAML node tree, keeping line numbers for error messages."""

    def __init__(self, filename: str, source: str) -> None:
        self.filename = filename
        self.source = source

    def fail(self, node: yaml.Node | None, problem: str) -> ProfileError:
        line = node.start_mark.line + 1 if node is not None else 1
        return ProfileError(f"{self.filename}:{line}: {problem}")

    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise self.fail(k, f"{what}: keys must be plain strings")
            if k.value in out:
                raise self.fail(k, f"{what}: duplicate key '{k.value}'")
            out[k.value] = (k, v)
        return out

    def scalar(self, node: yaml.Node, what: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{what} must be a single value")
        return (
            yaml.safe_load(yaml.serialize(node))
            if node.tag != "tag:yaml.org,2002:str"
            else node.value
        )

    def string(self, node: yaml.Node, what: str) -> str:
        v = self.scalar(node, what)
        if not isinstance(v, str) or not v.strip():
            raise self.fail(node, f"{what} must be a non-empty string")
        return v

    def seq(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        return list(node.value)

    def profile(self, root: yaml.Node | None) -> Profile:
        if root is None:
            raise ProfileError(f"{self.filename}:1: empty profile")
        top = self.mapping(root, "the profile")
        allowed = {"name", "description", "rules", "ground_truth"}
        for key, (knode, _) in top.items():
            if key not in allowed:
                raise self.fail(knode, f"unknown key '{key}' (known: {', '.join(sorted(allowed))})")
        for req in ("name", "description", "rules", "ground_truth"):
            if req not in top:
                raise self.fail(root, f"missing key '{req}'")
        name = self.string(top["name"][1], "name")
        if not _ID_RE.match(name):
            raise self.fail(
                top["name"][1], f"name '{name}' must be lowercase letters, digits, '.', '_' or '-'"
            )
        description = self.string(top["description"][1], "description")
        rules = [self.rule(n) for n in self.seq(top["rules"][1], "rules")]
        seen: dict[str, yaml.Node] = {}
        for n, r in zip(top["rules"][1].value, rules, strict=True):
            if r.id in seen:
                raise self.fail(n, f"duplicate rule id '{r.id}'")
            seen[r.id] = n
        truth = self.ground_truth(top["ground_truth"][1], {r.id for r in rules})
        return Profile(name, description, rules, truth, self.source)

    def rule(self, node: yaml.Node) -> Rule:
        m = self.mapping(node, "a rule")
        for req in ("id", "technique"):
            if req not in m:
                raise self.fail(node, f"rule without '{req}'")
        rid = self.string(m["id"][1], "rule id")
        if not _ID_RE.match(rid):
            raise self.fail(
                m["id"][1], f"rule id '{rid}' must be lowercase letters, digits, '.', '_' or '-'"
            )
        tname = self.string(m["technique"][1], "technique")
        if tname not in TECHNIQUES:
            raise self.fail(m["technique"][1], f"unknown technique '{tname}' (known: {known()})")
        tech = TECHNIQUES[tname]
        params: dict[str, Any] = {}
        for key, (knode, vnode) in m.items():
            if key in ("id", "technique", "note"):
                continue
            if key not in tech.params:
                names = ", ".join(sorted(tech.params)) or "none"
                raise self.fail(
                    knode,
                    f"rule '{rid}': technique '{tname}' has no parameter '{key}' (known: {names})",
                )
            params[key] = self.param(vnode, tech.params[key], f"rule '{rid}': {key}")
            # an empty list means "any" to the censor: a required list, or one with a
            # minimum (tls_mitm's ports), must name something (ip_blackhole with
            # addresses: [] would cut every destination)
            spec = tech.params[key]
            if params[key] == [] and (spec.required or spec.minimum):
                raise self.fail(vnode, f"rule '{rid}': {key} must not be empty")
        for pname, spec in tech.params.items():
            if pname not in params:
                if spec.required:
                    raise self.fail(node, f"rule '{rid}': technique '{tname}' needs '{pname}'")
                params[pname] = spec.default
        if tname == "http_blockpage" and not params["hosts"] and not params["keywords"]:
            raise self.fail(node, f"rule '{rid}': http_blockpage needs 'hosts' or 'keywords'")
        return Rule(rid, tname, params)

    def param(self, node: yaml.Node, spec: Param, what: str) -> Any:
        kind = spec.kind
        if kind in ("names", "strings", "addresses", "ports"):
            items = self.seq(node, what)
            if kind == "names":
                out_n: list[str] = []
                for it in items:
                    v = self.string(it, what).lower().rstrip(".")
                    if not _NAME_RE.match(v):
                        raise self.fail(it, f"{what}: '{v}' is not a DNS name")
                    out_n.append(v)
                return out_n
            if kind == "strings":
                return [self.string(it, what) for it in items]
            if kind == "ports":
                ports: list[int] = []
                for it in items:
                    v = self.scalar(it, what)
                    if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 65535:
                        raise self.fail(it, f"{what}: '{v}' is not a port (1-65535)")
                    ports.append(v)
                if len(ports) > 15:
                    raise self.fail(node, f"{what}: at most 15 ports (iptables multiport)")
                return ports
            addrs: list[str] = []
            for it in items:
                v = self.string(it, what)
                try:
                    addrs.extend(addresses_of(v))
                except ValueError as e:
                    raise self.fail(it, f"{what}: {e}") from e
            return addrs
        if kind == "schedule":
            m = self.mapping(node, what)
            out: dict[str, float] = {}
            for key in ("on", "off"):
                if key not in m:
                    raise self.fail(node, f"{what}: needs '{key}' (a duration, e.g. 5s)")
                try:
                    out[key] = parse_duration(self.scalar(m[key][1], what))
                except ValueError as e:
                    raise self.fail(m[key][1], f"{what}.{key}: {e}") from e
                if out[key] <= 0:
                    raise self.fail(m[key][1], f"{what}.{key}: must be positive")
            for key, (knode, _) in m.items():
                if key not in ("on", "off"):
                    raise self.fail(knode, f"{what}: unknown key '{key}' (known: on, off)")
            return out
        v = self.scalar(node, what)
        checks: dict[str, Callable[[Any], Any]] = {
            "int": self._int,
            "float": self._float,
            "ipv4": self._ipv4,
            "rate": self._rate,
            "duration": parse_duration,
            "choice": lambda x: self._choice(x, spec.choices),
        }
        try:
            value = checks[kind](v)
        except ValueError as e:
            raise self.fail(node, f"{what}: {e}") from e
        if isinstance(value, int | float) and not isinstance(value, bool):
            if spec.minimum is not None and value < spec.minimum:
                raise self.fail(node, f"{what}: {value} is below the minimum {spec.minimum}")
            if spec.maximum is not None and value > spec.maximum:
                raise self.fail(node, f"{what}: {value} is above the maximum {spec.maximum}")
        return value

    @staticmethod
    def _int(v: Any) -> int:
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError(f"'{v}' is not an integer")
        return v

    @staticmethod
    def _float(v: Any) -> float:
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise ValueError(f"'{v}' is not a number")
        return float(v)

    @staticmethod
    def _ipv4(v: Any) -> str:
        s = str(v)
        got = addresses_of(s)
        if "/" in got[0]:
            raise ValueError(f"'{s}' must be one address, not a network")
        return got[0]

    @staticmethod
    def _rate(v: Any) -> str:
        s = str(v).strip().lower()
        if not _RATE_RE.match(s):
            raise ValueError(f"'{v}' is not a rate (e.g. 1mbit, 512kbit)")
        return s

    @staticmethod
    def _choice(v: Any, choices: tuple[str, ...]) -> str:
        if not isinstance(v, str) or v not in choices:
            raise ValueError(f"'{v}' is not one of {', '.join(choices)}")
        return v

    def ground_truth(self, node: yaml.Node, rule_ids: set[str]) -> list[Truth]:
        m = self.mapping(node, "ground_truth")
        for key, (knode, _) in m.items():
            if key not in ("default", "targets"):
                raise self.fail(
                    knode, f"ground_truth: unknown key '{key}' (known: default, targets)"
                )
        default: Truth | None = None
        if "default" in m:
            default = self.truth("default", m["default"][1], rule_ids)
        entries: dict[str, Truth] = {}
        if "targets" in m:
            targets = self.mapping(m["targets"][1], "ground_truth.targets")
            for url, (knode, vnode) in targets.items():
                if not re.match(r"^(https?|dot|dns)://[^/\s]+", url):
                    raise self.fail(knode, f"ground_truth: '{url}' is not a URL")
                if url.startswith("dot://") and dot_endpoint(url) is None:
                    raise self.fail(
                        knode, f"ground_truth: '{url}' is not dot://IP[:PORT] (a DoT resolver)"
                    )
                entries[url] = self.truth(url, vnode, rule_ids)
        out: list[Truth] = []
        for url in default_urls():
            if url in entries:
                out.append(entries.pop(url))
            elif default is not None:
                out.append(msgspec.structs.replace(default, url=url))
            else:
                raise self.fail(node, f"ground_truth: no entry for '{url}' and no default")
        out.extend(entries.values())
        return out

    def truth(self, url: str, node: yaml.Node, rule_ids: set[str]) -> Truth:
        m = self.mapping(node, f"ground truth of '{url}'")
        allowed = ("outcome", "layer", "method", "rule", "note")
        for key, (knode, _) in m.items():
            if key not in allowed:
                raise self.fail(
                    knode,
                    f"ground truth of '{url}': unknown key '{key}' (known: {', '.join(allowed)})",
                )
        if "outcome" not in m:
            raise self.fail(node, f"ground truth of '{url}': missing 'outcome'")
        vals = {k: self.string(v, f"ground truth of '{url}': {k}") for k, (_, v) in m.items()}
        outcome = vals["outcome"]
        if outcome not in OUTCOMES:
            raise self.fail(
                m["outcome"][1],
                f"ground truth of '{url}': outcome '{outcome}' is not one of {', '.join(OUTCOMES)}",
            )
        method, layer, rule = vals.get("method"), vals.get("layer"), vals.get("rule")
        if outcome == "ok":
            for key in ("method", "layer", "rule"):
                if key in m:
                    raise self.fail(
                        m[key][0], f"ground truth of '{url}': an 'ok' target has no {key}"
                    )
        else:
            where = f"ground truth of '{url}'"
            if method is None or layer is None:
                raise self.fail(node, f"{where}: outcome '{outcome}' needs 'layer' and 'method'")
            if method not in METHODS:
                known_m = ", ".join(METHODS)
                raise self.fail(
                    m["method"][1], f"{where}: unknown method '{method}' (known: {known_m})"
                )
            if layer not in LAYERS:
                known_l = ", ".join(LAYERS)
                raise self.fail(
                    m["layer"][1], f"{where}: unknown layer '{layer}' (known: {known_l})"
                )
            expected = METHOD_LAYER.get(method.split(".", 1)[0])
            if expected is not None and expected != layer:
                raise self.fail(
                    m["layer"][1],
                    f"{where}: method '{method}' belongs to layer '{expected}', not '{layer}'",
                )
            if rule is not None and rule not in rule_ids:
                raise self.fail(m["rule"][1], f"{where}: no rule with id '{rule}'")
        return Truth(url, outcome, layer, method, rule, vals.get("note"))
