"""Configs from YAML files (or a job's environment), `--set` overrides, and validation with errors
that name the key, the value and the fix, before Ray starts."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipeline.config.base import suggest
from pipeline.config.root import ALL_KEYS, SECTIONS, Config
from pipeline.errors import ConfigError


def describe_validation_error(err: ValidationError, *, origin: str) -> str:
    """Turn pydantic's report into one sentence per problem, naming the key and the fix."""
    sentences = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        key = ".".join(loc)
        if e["type"] == "extra_forbidden":
            sentences.append(f"unknown config key '{key}' in {origin}{suggest(key, ALL_KEYS + SECTIONS)}")
            continue
        value = e.get("input")
        msg = e["msg"].removeprefix("Value error, ")
        if isinstance(value, dict):  # a rule across a section's keys: the message names them
            sentences.append(f"invalid config in {origin}: {msg}")
            continue
        sentences.append(f"config key '{key}' = {value!r} in {origin} is invalid: {msg}")
    return "; ".join(sentences)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'model.hidden_size=128' -> (['model', 'hidden_size'], 128); values are parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set '{text}' is not of the form key=value, e.g. --set model.hidden_size=128")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `raw` with dotted-key overrides set (from --set strings or a Tune sample)."""
    out = copy.deepcopy(raw)
    pairs = overrides.items() if isinstance(overrides, dict) else [parse_override(o) for o in overrides]
    for path, value in pairs:
        parts = path.split(".") if isinstance(path, str) else path
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                prefix = ".".join(parts[: i + 1])
                raise ConfigError(f"cannot set '{'.'.join(parts)}': '{prefix}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def validate(raw: dict[str, Any], *, origin: str = "config") -> Config:
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err, origin=origin)) from err
    _check_space_values(cfg, origin=origin)
    return cfg


def _check_space_values(cfg: Config, *, origin: str) -> None:
    """Every value a sweep can sample must itself form a valid config."""
    base = cfg.model_dump(mode="json")
    for key, spec in cfg.tune.space.items():
        for value in spec.candidate_values():
            try:
                Config.model_validate(apply_overrides(base, {key: value}))
            except ValidationError as err:
                detail = describe_validation_error(err, origin=f"tune.space['{key}']")
                raise ConfigError(f"{detail} (searched value {value!r} from {origin})") from err


CONFIG_ENV = "LSTMPIPE_CONFIG"  # `lstmpipe submit` ships the resolved config to its job in this variable


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file, or `env:NAME`: YAML text in environment variable NAME (a submitted job's config)."""
    if str(path).startswith("env:"):
        name = str(path).removeprefix("env:")
        if name not in os.environ:
            raise ConfigError(
                f"config env:{name} names an unset environment variable; set {name} to the YAML text or pass a file "
                "with -c"
            )
        text = os.environ[name]
    else:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; pass an existing YAML file with -c")
        text = path.read_text()
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML ({err.__class__.__name__}): fix the syntax") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(raw).__name__}")
    return raw


def load(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read YAML (or start from defaults), apply --set overrides, validate."""
    raw = read_yaml(path) if path is not None else {}
    raw = apply_overrides(raw, overrides or [])
    origin = f"{path}" if path is not None else "defaults"
    if overrides:
        origin += " with --set " + " ".join(overrides)
    return validate(raw, origin=origin)


def bundled_config(name: str) -> Path:
    """A config shipped with the project: conf/NAME in a clone, pipeline/bundled_conf/NAME in a wheel."""
    package = Path(__file__).resolve().parents[1]
    for root in (package / "bundled_conf", package.parent / "conf"):
        if (root / name).is_file():
            return root / name
    raise ConfigError(f"bundled config '{name}' was not found next to the pipeline package; reinstall the project")
