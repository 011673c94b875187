"""docker-compose.yml read as a recipe for local processes (no Docker; helpers, no tests).

What a service's container would get, translated for a process on this machine:
- variables interpolated the way Compose does (``${X:-default}``, ``${X-default}``, ``${X}``,
  ``$X``, ``$$``), from a dict the caller gives (never the caller's whole environment);
- the image's ``ENV`` (the Dockerfile's last stage) under the service's ``environment``;
- service host names with their container ports (``ray-head:6379``, ``http://minio:9000``)
  replaced by ``127.0.0.1`` and the port started here, and named-volume mount points
  (``/var/lib/curate/...``) by local directories. A value that still names a service after
  that fails loudly: the compose file has grown a link the caller does not know about.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_VAR = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(
    r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$", re.DOTALL
)


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose variable substitution in one string."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        if m.group("bare"):
            return variables.get(m.group("bare"), "")
        b = _BRACED.match(m.group("braced"))
        if not b:
            raise ValueError(f"bad compose interpolation: {m.group(0)}")
        name, op, arg = b.group("name"), b.group("op"), b.group("arg") or ""
        val = variables.get(name)
        if op == ":-":
            return val if val else arg
        if op == "-":
            return arg if val is None else val
        if op in (":?", "?"):
            if val is None or (op == ":?" and not val):
                raise ValueError(f"compose variable {name} is required: {arg}")
            return val
        if op == ":+":
            return arg if val else ""
        if op == "+":
            return arg if val is not None else ""
        return val or ""

    return _VAR.sub(sub, text)


def _interpolate_tree(node: Any, variables: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolate_tree(x, variables) for x in node]
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, variables) for k, v in node.items()}
    return node


def load_compose(path: Path, variables: dict[str, str]) -> dict:
    """The compose file with YAML anchors merged and variables substituted."""
    return _interpolate_tree(yaml.safe_load(Path(path).read_text()), variables)


def dockerfile_env(path: Path) -> dict[str, str]:
    """``ENV`` of the Dockerfile's final stage (``ENV K=V K2=V2`` and ``ENV K V`` forms)."""
    env: dict[str, str] = {}
    text = Path(path).read_text().replace("\\\n", " ")
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if not words:
            continue
        if words[0].upper() == "FROM":
            env = {}
        elif words[0].upper() == "ENV" and len(words) == 2:
            parts = shlex.split(words[1])
            if "=" in parts[0]:
                env.update(p.split("=", 1) for p in parts)
            else:
                env[parts[0]] = " ".join(parts[1:])
    return env


def as_list(value: str | list[str]) -> list[str]:
    """A compose ``command``/``entrypoint`` as argv."""
    return shlex.split(value) if isinstance(value, str) else [str(x) for x in value]


@dataclass
class Localizer:
    """Maps a compose project's network names and volumes onto this machine."""

    services: list[str]
    ports: dict[tuple[str, int], int] = field(default_factory=dict)  # (service, container port) -> port
    volumes: dict[str, Path] = field(default_factory=dict)  # container mount point -> local dir

    def __call__(self, value: str) -> str:
        for (svc, cport), port in self.ports.items():
            value = re.sub(rf"(?<![\w.-]){re.escape(svc)}:{cport}(?!\d)", f"127.0.0.1:{port}", value)
        for mount, local in sorted(self.volumes.items(), key=lambda kv: -len(kv[0])):
            value = re.sub(rf"(?<![\w/]){re.escape(mount)}(?=/|$|,)", str(local), value)
        for svc in self.services:  # a service still used as a host name: unmapped link
            if re.search(rf"(?:^|//|@|=|,){re.escape(svc)}(?::\d|/|,|$)", value):
                raise AssertionError(f"{value!r} names compose service '{svc}', which has no local mapping")
        return value


def volume_mounts(svc: dict) -> dict[str, str]:
    """Named-volume mounts of a service: mount point -> volume name."""
    out = {}
    for v in svc.get("volumes") or []:
        src, _, dst = str(v).partition(":")
        if dst and not src.startswith((".", "/")):
            out[dst.split(":")[0]] = src
    return out


def service_env(cfg: dict, name: str, image_env: dict[str, str], localize: Localizer) -> dict[str, str]:
    """The environment service ``name``'s container gets, localized for a process here."""
    svc = cfg["services"][name]
    env = dict(image_env) if svc.get("build") else {}
    raw = svc.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(str(x).split("=", 1) for x in raw)
    env.update({k: "" if v is None else str(v) for k, v in raw.items()})
    return {k: localize(v) for k, v in env.items()}
