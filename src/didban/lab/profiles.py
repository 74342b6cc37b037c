"""Censorship profiles: YAML files of censor rules plus their ground truth, checked against
one schema.

A profile names a set of rules (each a technique of ``censor.techniques``, the schema of
its parameters) and, for every target URL, the outcome, layer and method the censor
produces. ``load`` decodes the YAML into that schema with msgspec (``ProfileDocument``,
the rules' Structs, ``TruthEntry``), then checks what a schema cannot say — rule ids unique,
a ground truth for every default URL, methods that exist and belong to their layer, rules
that exist. The first problem is reported as ``file:line: problem``, the line being the
YAML node's mark (the key, value or item at fault). ``dump_json`` gives the normalised
form the censor engine reads (``profile.json``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final, Literal

import msgspec
import msgspec.inspect as schema_info
import yaml

from didban.lab.censor.paramtypes import Identifier, Text, decode_hook
from didban.lab.censor.techniques import TECHNIQUES, AnyRule, known
from didban.lab.targets import covered
from didban.lab.targets import default_urls as default_urls  # re-exported
from didban.lab.targets import problem as target_problem
from didban.model.verdict import LAYERS, METHODS

PROFILE_DIR: Final = Path(__file__).resolve().parent / "profiles"
OUTCOMES: Final = ("ok", "blocked", "down")
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
    "stun": "app",
    "tunnel": "app",
    "webrtc": "app",
}
_AT_RE: Final = re.compile(r"\.(\w+)|\[(\d+)\]")
_MUST_RE: Final = re.compile(r"^('[^']*' )?must ")
_CONSTRUCTOR: Final = yaml.constructor.SafeConstructor()

Place = list[str | int]  # a place in the document: mapping keys and list indexes


class ProfileError(ValueError):
    """A profile that cannot be used; the message is ``file:line: problem``."""


# --- what the lab uses: the normalised profile -------------------------------------------


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


# --- the schema of the YAML document (the rules' schema is censor.techniques) ------------


class TruthEntry(msgspec.Struct, forbid_unknown_fields=True):
    """What one target (or every target, as ``default``) looks like from the client."""

    outcome: Literal["ok", "blocked", "down"]
    layer: Text | None = None
    method: Text | None = None
    rule: Text | None = None
    note: Text | None = None


class GroundTruthDocument(msgspec.Struct, forbid_unknown_fields=True):
    default: TruthEntry | None = None
    # each target is decoded on its own, so that its URL names it in a problem
    targets: dict[str, Any] = {}


class ProfileDocument(msgspec.Struct, forbid_unknown_fields=True):
    name: Identifier
    description: Text
    rules: list[AnyRule]
    ground_truth: GroundTruthDocument


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
    if root is None:
        raise ProfileError(f"{filename}:1: empty profile")
    return _Decoder(filename, root).profile(source)


def dump_json(profile: Profile) -> bytes:
    """The normalised profile as JSON (what the lab writes to ``profile.json``)."""
    return msgspec.json.encode(profile)


def from_json(data: bytes) -> Profile:
    """Read back ``dump_json`` output (the censor engine reads ``profile.json`` with it)."""
    return msgspec.json.decode(data, type=Profile)


class _Decoder:
    """Decodes one composed YAML document; every problem becomes ``file:line: sentence``."""

    def __init__(self, filename: str, root: yaml.Node) -> None:
        self.filename = filename
        self.root = root
        self.data = self._plain(root, [])

    # --- YAML nodes -> plain values, and back from a place to its node ------------------
    def _plain(self, node: yaml.Node, path: Place) -> Any:
        if isinstance(node, yaml.MappingNode):
            where = _mapping_name(path)
            out: dict[str, Any] = {}
            for k, v in node.value:
                if not isinstance(k, yaml.ScalarNode):
                    raise self._at(k, f"{where}: keys must be plain strings")
                if k.value in out:
                    raise self._at(k, f"{where}: duplicate key '{k.value}'")
                out[k.value] = self._plain(v, [*path, k.value])
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._plain(item, [*path, i]) for i, item in enumerate(node.value)]
        return _CONSTRUCTOR.construct_object(node)

    def _node(self, path: Place, key: str | None = None) -> yaml.Node:
        """The node at ``path`` (the node of its ``key``), else its nearest ancestor."""
        node = self.root
        for step in path:
            child = _child(node, step)
            if child is None:
                return node
            node = child
        if key is not None and isinstance(node, yaml.MappingNode):
            for k, _ in node.value:
                if k.value == key:
                    return k  # type: ignore[no-any-return]
        return node

    def _value(self, path: Place) -> Any:
        value = self.data
        for step in path:
            value = _step(value, step)
        return value

    def _at(self, node: yaml.Node, problem: str) -> ProfileError:
        return ProfileError(f"{self.filename}:{node.start_mark.line + 1}: {problem}")

    def fail(self, path: Place, problem: str, key: str | None = None) -> ProfileError:
        return self._at(self._node(path, key), problem)

    # --- the document -------------------------------------------------------------------
    def profile(self, source: str) -> Profile:
        doc = self.convert(self.data, ProfileDocument, [])
        rules = [Rule(str(r.id), r.technique(), r.params()) for r in doc.rules]
        seen: set[str] = set()
        for i, r in enumerate(rules):
            if r.id in seen:
                raise self.fail(["rules", i], f"duplicate rule id '{r.id}'")
            seen.add(r.id)
        truth = self.ground_truth(doc.ground_truth, seen)
        return Profile(str(doc.name), str(doc.description), rules, truth, source)

    def ground_truth(self, doc: GroundTruthDocument, rule_ids: set[str]) -> list[Truth]:
        here: Place = ["ground_truth"]
        default = None
        if doc.default is not None:
            default = self.truth("default", doc.default, [*here, "default"], rule_ids)
        entries: dict[str, Truth] = {}
        for url, raw in doc.targets.items():
            path: Place = [*here, "targets", url]
            if (why := target_problem(url)) is not None:
                raise self.fail(path[:-1], f"ground_truth: '{url}' {why}", key=url)
            entries[url] = self.truth(url, self.convert(raw, TruthEntry, path), path, rule_ids)
        out: list[Truth] = []
        for url in covered():
            if url in entries:
                out.append(entries.pop(url))
            elif default is not None:
                out.append(msgspec.structs.replace(default, url=url))
            else:
                raise self.fail(here, f"ground_truth: no entry for '{url}' and no default")
        out.extend(entries.values())
        return out

    def truth(self, url: str, entry: TruthEntry, path: Place, rule_ids: set[str]) -> Truth:
        """What a schema cannot check of one entry: ok has no method, a block names an
        existing method of its layer and an existing rule, a site down names a layer (and
        may name a method)."""
        where = f"ground truth of '{url}'"
        method, layer, rule = entry.method, entry.layer, entry.rule
        if entry.outcome == "ok":
            for key, value in (("method", method), ("layer", layer), ("rule", rule)):
                if value is not None:
                    raise self.fail(path, f"{where}: an 'ok' target has no {key}", key=key)
        else:
            # a site down everywhere has a layer (where it fails) but no blocking method
            if layer is None or (method is None and entry.outcome != "down"):
                needs = "'layer'" if entry.outcome == "down" else "'layer' and 'method'"
                raise self.fail(path, f"{where}: outcome '{entry.outcome}' needs {needs}")
            if method is not None and method not in METHODS:
                known_m = ", ".join(METHODS)
                raise self.fail(
                    [*path, "method"], f"{where}: unknown method '{method}' (known: {known_m})"
                )
            if layer not in LAYERS:
                known_l = ", ".join(LAYERS)
                raise self.fail(
                    [*path, "layer"], f"{where}: unknown layer '{layer}' (known: {known_l})"
                )
            expected = METHOD_LAYER.get(method.split(".", 1)[0]) if method else None
            if expected is not None and expected != layer:
                raise self.fail(
                    [*path, "layer"],
                    f"{where}: method '{method}' belongs to layer '{expected}', not '{layer}'",
                )
            if rule is not None and rule not in rule_ids:
                raise self.fail([*path, "rule"], f"{where}: no rule with id '{rule}'")
        return Truth(url, entry.outcome, _str(layer), _str(method), _str(rule), _str(entry.note))

    # --- decoding and explaining what the schema refused --------------------------------
    def convert(self, value: Any, kind: type[Any], base: Place) -> Any:
        try:
            return msgspec.convert(value, kind, dec_hook=decode_hook)
        except msgspec.ValidationError as e:
            raise self.explain(str(e), kind, base) from None

    def explain(self, error: str, kind: type[Any], base: Place) -> ProfileError:
        """The user's sentence for msgspec's ``error`` about the value of type ``kind`` at
        ``base``: where it is (from msgspec's ``$.a[0].b``), what is wrong with it."""
        message, _, at = error.rpartition(" - at `")
        if not message:
            message, at = error, "$`"
        path: Place = [
            *base,
            *(name if name else int(index) for name, index in _AT_RE.findall(at)),
        ]
        rel = path[len(base) :]
        value = self._value(path)
        what = self.context(path)
        if m := re.fullmatch(r"Object missing required field `(\w+)`", message):
            return self.fail(path, self.missing(path, what, m.group(1)))
        if m := re.fullmatch(r"Object contains unknown field `(\w+)`", message):
            field = m.group(1)
            return self.fail(path, self.unknown(path, what, field, kind, rel), key=field)
        if path[:1] == ["rules"] and path[2:] == ["technique"]:
            return self.fail(path, f"unknown technique '{value}' (known: {known()})")
        info = _type_at(kind, rel, self._value(base))
        return self.fail(path, _join(what, _describe(info, value) or message))

    def context(self, path: Place) -> str:
        """How a problem at ``path`` names its place: ``rule 'x': ports``, ``name``, ..."""
        if path[:1] == ["rules"] and len(path) >= 2:
            if path[2:3] in (["id"], ["technique"]):
                return "rule id" if path[2] == "id" else "technique"
            rule_id = self._value([*path[:2], "id"])
            head = f"rule '{rule_id}'" if isinstance(rule_id, str) else "a rule"
            rest = [str(p) for p in path[2:] if isinstance(p, str)]
            return f"{head}: {'.'.join(rest)}" if rest else head
        if path[:2] == ["ground_truth", "default"]:
            return _field("ground truth of 'default'", path[2:3])
        if path[:2] == ["ground_truth", "targets"] and len(path) >= 3:
            return _field(f"ground truth of '{path[2]}'", path[3:4])
        if not path:
            return "the profile"
        return ".".join(str(p) for p in path if isinstance(p, str))

    def missing(self, path: Place, what: str, field: str) -> str:
        if not path:
            return f"missing key '{field}'"
        if path[:1] == ["rules"] and len(path) == 2:
            if field in ("id", "technique"):
                return f"rule without '{field}'"
            return f"{what}: technique '{self._value([*path, 'technique'])}' needs '{field}'"
        return f"{what}: needs '{field}'"

    def unknown(self, path: Place, what: str, field: str, kind: type[Any], rel: Place) -> str:
        if path[:1] == ["rules"] and len(path) == 2:
            technique = str(self._value([*path, "technique"]))
            params = ", ".join(sorted(TECHNIQUES[technique].parameters())) or "none"
            return f"{what}: technique '{technique}' has no parameter '{field}' (known: {params})"
        base_value = self._value(path[: len(path) - len(rel)])
        info = _plain_type(_type_at(kind, rel, base_value), self._value(path))
        names = [f.name for f in info.fields] if isinstance(info, schema_info.StructType) else []
        if not path:
            return f"unknown key '{field}' (known: {', '.join(sorted(names))})"
        return f"{what}: unknown key '{field}' (known: {', '.join(names)})"


def _field(entry: str, field: Place) -> str:
    return f"{entry}: {field[0]}" if field else entry


def _mapping_name(path: Place) -> str:
    """How a problem with the keys of the mapping at ``path`` names it."""
    if not path:
        return "the profile"
    if path[0] == "rules" and len(path) >= 2:
        return "a rule" if len(path) == 2 else f"rule parameter {path[2]}"
    if path[:2] == ["ground_truth", "targets"] and len(path) == 3:
        return f"ground truth of '{path[2]}'"
    if path[:2] == ["ground_truth", "default"]:
        return "ground truth of 'default'"
    return ".".join(str(p) for p in path)


def _str(value: str | None) -> str | None:
    """A plain ``str`` (the schema's string types are subclasses msgspec cannot encode)."""
    return None if value is None else str(value)


def _child(node: yaml.Node, step: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == step:
                return v  # type: ignore[no-any-return]
    elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
        return node.value[step]  # type: ignore[no-any-return]
    return None


def _type_at(kind: type[Any], path: Place, value: Any) -> schema_info.Type:
    """The schema type at ``path`` below ``kind`` (``value``: the data at ``kind``'s place,
    to pick the technique of a rule)."""
    info = schema_info.type_info(kind)
    for step in path:
        info = _plain_type(info, value)
        value = _step(value, step)
        if isinstance(info, schema_info.StructType):
            fields: dict[str | int, schema_info.Type] = {f.name: f.type for f in info.fields}
            if step not in fields:
                return info
            info = fields[step]
        elif isinstance(info, schema_info.ListType | schema_info.DictType):
            info = info.item_type if isinstance(info, schema_info.ListType) else info.value_type
    return info


def _step(value: Any, step: str | int) -> Any:
    if isinstance(value, dict):
        return value.get(str(step))
    if isinstance(value, list) and isinstance(step, int) and step < len(value):
        return value[step]
    return None


def _plain_type(info: schema_info.Type, value: Any) -> schema_info.Type:
    """Through optional types and the rules' tagged union (by the value's technique)."""
    if isinstance(info, schema_info.Metadata):
        info = info.type
    if isinstance(info, schema_info.UnionType):
        choices = [t for t in info.types if not isinstance(t, schema_info.NoneType)]
        structs = [t for t in choices if isinstance(t, schema_info.StructType)]
        if len(structs) > 1 and isinstance(value, dict):
            tagged = [t for t in structs if t.tag == value.get("technique")]
            return tagged[0] if tagged else info
        info = choices[0] if len(choices) == 1 else info
    return info


def _describe(info: schema_info.Type, value: Any) -> str | None:
    """What is wrong with ``value`` for a schema type (None: msgspec says it best)."""
    description = too_long = None
    if isinstance(info, schema_info.Metadata):
        description = (info.extra_json_schema or {}).get("description")
        too_long = (info.extra or {}).get("too_long")
    info = _plain_type(info, None)
    if isinstance(info, schema_info.Metadata):
        info = info.type
    if description:
        return f"'{value}' is not {description}"
    if isinstance(info, schema_info.LiteralType):
        return f"'{value}' is not one of {', '.join(map(str, info.values))}"
    if isinstance(info, schema_info.IntType | schema_info.FloatType):
        integral = isinstance(info, schema_info.IntType)
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if not (is_int or (not integral and isinstance(value, float))):
            return f"'{value}' is not {'an integer' if integral else 'a number'}"
        if info.ge is not None and value < info.ge:
            return f"{value} is below the minimum {info.ge}"
        if info.le is not None and value > info.le:
            return f"{value} is above the maximum {info.le}"
        return None
    if isinstance(info, schema_info.ListType):
        if not isinstance(value, list):
            return "must be a list"
        if info.min_length and len(value) < info.min_length:
            return "must not be empty"
        if info.max_length is not None and len(value) > info.max_length:
            return str(too_long or f"at most {info.max_length} values")
        return None
    if isinstance(info, schema_info.StructType | schema_info.DictType | schema_info.UnionType):
        return None if isinstance(value, dict) else "must be a mapping"
    if isinstance(value, dict | list):
        return "must be a single value"
    return None


def _join(what: str, problem: str) -> str:
    """``name must be ...``, ``rule id 'x' must be ...``, else ``what: problem``."""
    if not what:
        return problem
    return f"{what} {problem}" if _MUST_RE.match(problem) else f"{what}: {problem}"
