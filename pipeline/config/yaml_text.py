"""Config text to a mapping, refusing what YAML would accept and a user did not mean.

`yaml.safe_load` never runs code, but it lets the last of two duplicate keys win silently, builds
recursive structures from an anchor used inside itself, and expands aliases without bound (an
"alias bomb" of a few lines grows to billions of values). Here each of those, text that is not
UTF-8 and an oversized file are refused with one sentence (ConfigError).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent

from pipeline.errors import ConfigError

MAX_BYTES = 1 << 20  # a config is a page of YAML, not a dataset
MAX_ALIASES = 100
MAX_VALUES = 100_000  # values after every alias is expanded


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, recursive anchors and more than MAX_ALIASES aliases."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._open_anchors: set[str] = set()
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(AliasEvent):
            event = self.peek_event()
            self._aliases += 1
            if event.anchor in self._open_anchors:
                raise _Refused(f"the anchor &{event.anchor} is used inside itself (a recursive alias, {_at(event)})")
            if self._aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} aliases ({_at(event)}); write the values out")
        return Composer.compose_node(self, parent, index)

    def compose_sequence_node(self, anchor):
        return self._composing(anchor, Composer.compose_sequence_node)

    def compose_mapping_node(self, anchor):
        return self._composing(anchor, Composer.compose_mapping_node)

    def _composing(self, anchor, compose):
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            return compose(self, anchor)
        finally:
            self._open_anchors.discard(anchor)

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                continue  # unhashable: SafeLoader's own error names it
            if key in seen:
                raise _Refused(
                    f"the key '{key}' appears twice in one mapping (lines {seen[key] + 1} and "
                    f"{key_node.start_mark.line + 1}); keep one"
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


class _Refused(yaml.YAMLError):
    pass


def _at(event) -> str:
    return f"line {event.start_mark.line + 1}"


def decode(data: bytes, *, where: str) -> str:
    """Config bytes as text: UTF-8 (a BOM is allowed), at most MAX_BYTES."""
    if len(data) > MAX_BYTES:
        raise ConfigError(f"config {where} is {len(data) / 2**20:.1f} MB (limit 1 MB); a config is YAML text, not data")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"config {where} is UTF-16 text; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config {where} is not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); save it as UTF-8"
        ) from err


def parse(text: str, *, where: str) -> Any:
    """The YAML document in `text`, refused (ConfigError) when it is invalid or unsafe to expand."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except _Refused as err:
        raise ConfigError(f"config {where}: {err}") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or err.__class__.__name__
        raise ConfigError(f"config {where} is not valid YAML ({problem}{at}); fix the syntax") from err
    if _count(data, MAX_VALUES) > MAX_VALUES:
        raise ConfigError(f"config {where} expands to more than {MAX_VALUES:,} values through its aliases; write less")
    return data


def _count(data: Any, budget: int) -> int:
    """Values in `data` with shared (aliased) parts counted each time, stopping past `budget`."""
    total, stack = 0, [data]
    while stack and total <= budget:
        item = stack.pop()
        total += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return total
