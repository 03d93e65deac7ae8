"""docs/configuration.md, rendered from the schema's own fields (type, default, description), so the
documentation cannot drift from what validation accepts (tests/unit/test_docs.py compares them).

    python -m pipeline.config.reference > docs/configuration.md
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from pipeline.config.root import Config
from pipeline.data.sources import SOURCES

INTRO = """# Configuration

<!-- Generated from the schema by `python -m pipeline.config.reference > docs/configuration.md`;
tests/unit/test_docs.py fails when this file and the schema disagree. -->

One typed schema (`pipeline/config/`, one module per section), YAML in `conf/`, any key overridden
with `--set key=value` (values parse as YAML: `true`, `null`, `[1, 2]`). Unknown keys fail before
Ray starts, naming the key and the closest valid one: `unknown config key 'model.hiden_size' in
conf/x.yaml; did you mean 'model.hidden_size'?`. A key that the run would not read (an ASHA key
under `fifo`, `model.dropout` with one layer, a forecast-only key for `regression`, ...) fails the
same way: each task owns its rules (`Task.check`). Every value a sweep can sample (`tune.space`)
is validated too.
"""


def _section(annotation: Any) -> type[BaseModel] | None:
    candidates = (annotation, *typing.get_args(annotation))
    return next((a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)), None)


def type_name(annotation: Any) -> str:
    """A field's type as a reader writes it in YAML: `int`, `float | null`, `lstm | gru | ...`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join("null" if a is type(None) else type_name(a) for a in args)
    if origin in (list, tuple):
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        value = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    return f"`{json.dumps(value)}`"


def rows(model: type[BaseModel] = Config, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) of every leaf key, in schema order."""
    out = []
    for name, field in model.model_fields.items():
        section = _section(field.annotation)
        if section is not None and name != "space":
            out += rows(section, f"{prefix}{name}.")
            continue
        out.append((f"{prefix}{name}", type_name(field.annotation), _default(field), field.description or ""))
    return out


def render() -> str:
    lines = [INTRO]
    every = rows()
    for section, field in Config.model_fields.items():
        nested = _section(field.annotation) is not None
        lines += [f"\n## `{section}`\n", (field.description or "") + "\n"] if nested else ["\n## top level\n"]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key, kind, default, text in every:
            if key.split(".")[0] == section:
                cell = text.replace("|", "\\|")
                lines.append(f"| `{key}` | {kind} | {default} | {cell} |")
    lines += [
        "\n## `data.options` of the built-in sources\n",
        "| source | task | key | type | default | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for source in SOURCES.values():
        for key, kind, default, text in rows(source.options_model) or [("", "", "", "no options")]:
            lines.append(
                f"| `{source.name}` | {source.task} | {f'`{key}`' if key else ''} | {kind} | {default} | {text} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
