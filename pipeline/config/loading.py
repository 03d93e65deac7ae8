"""Configs from YAML files (or a job's environment), `--set` overrides, and validation with errors
that name the key, the value and the fix, before Ray starts."""

from __future__ import annotations

import copy
import itertools
import math
import os
import random
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.config import yaml_text
from pipeline.config.base import suggest
from pipeline.config.root import ALL_KEYS, SECTIONS, Config
from pipeline.errors import ConfigError

EXCERPT = 80  # characters of a value echoed in an error


def excerpt(value: Any) -> str:
    """A value as an error shows it: its repr, cut to EXCERPT characters."""
    text = repr(value)
    return text if len(text) <= EXCERPT else f"{text[: EXCERPT - 3]}..."


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
        sentences.append(f"config key '{key}' = {excerpt(value)} in {origin} is invalid: {msg}")
    return "; ".join(sentences)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'model.hidden_size=128' -> (['model', 'hidden_size'], 128); values are parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set '{text}' is not of the form key=value, e.g. --set model.hidden_size=128")
    try:
        value = yaml_text.parse(raw, where=f"--set {key.strip()}") if raw.strip() else None
    except ConfigError as err:
        if "not valid YAML" not in str(err):
            raise  # a recursive or exploding alias, a duplicate key
        value = raw  # not YAML: the text itself
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
        node[parts[-1]] = _native(value)
    return out


def _native(value: Any) -> Any:
    """A numpy scalar from a searcher as the plain Python value the strict schema takes."""
    return value.item() if type(value).__module__ == "numpy" and hasattr(value, "item") else value


def validate(raw: dict[str, Any], *, origin: str = "config") -> Config:
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err, origin=origin)) from err
    _check_space_values(cfg, origin=origin)
    return cfg


SPACE_DRAWS = 8  # samples drawn from each range, besides its ends
JOINT_SAMPLES = 64  # combinations checked when the space has more than MAX_COMBINATIONS
MAX_COMBINATIONS = 256


def _check_space_values(cfg: Config, *, origin: str) -> None:
    """Every value a sweep can sample must form a valid config, alone and with the other keys'
    values: all combinations of choices, range ends and draws, or a seeded sample of them."""
    space = cfg.tune.space
    if not space:
        return
    rng = random.Random(cfg.tune.seed)
    values = {key: spec.candidate_values(rng, draws=SPACE_DRAWS) for key, spec in space.items()}
    for key, spec in space.items():
        if spec.uniform is not None or spec.loguniform is not None:
            _refuse_floats_for_an_integer(cfg, key, values[key][-1], origin=origin)
    base = cfg.model_dump(mode="json")
    for combo in _combinations(values, rng):
        try:
            Config.model_validate(apply_overrides(base, combo))
        except ValidationError as err:
            searched = ", ".join(f"{k}={excerpt(v)}" for k, v in combo.items())
            detail = describe_validation_error(err, origin="tune.space")
            raise ConfigError(f"{detail} (a sweep can sample {searched}; from {origin}): narrow tune.space") from err


def _combinations(values: dict[str, list[Any]], rng: random.Random) -> list[dict[str, Any]]:
    keys = list(values)
    if math.prod(len(v) for v in values.values()) <= MAX_COMBINATIONS:
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values.values())]
    first = {k: v[0] for k, v in values.items()}
    singles = [first | {k: value} for k, v in values.items() for value in v]  # each value once
    joint = [{k: rng.choice(v) for k, v in values.items()} for _ in range(JOINT_SAMPLES)]
    return singles + joint


def _refuse_floats_for_an_integer(cfg: Config, key: str, sample: float, *, origin: str) -> None:
    try:
        Config.model_validate(apply_overrides(cfg.model_dump(mode="json"), {key: sample}))
    except ValidationError as err:
        if any(e["type"].startswith("int") and ".".join(map(str, e["loc"])) == key for e in err.errors()):
            raise ConfigError(
                f"tune.space['{key}'] draws floats (e.g. {sample:.4g}) but {key} is an integer, so every trial would "
                f"fail (in {origin}); use randint: [low, high] or a choice list"
            ) from err


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
        text = yaml_text.decode(os.environ[name].encode("utf-8", "surrogateescape"), where=str(path))
    else:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"config {path} is a directory; pass a YAML file with -c (e.g. {path}/smoke.yaml)")
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; pass an existing YAML file with -c")
        try:
            data = path.read_bytes()
        except OSError as err:
            raise ConfigError(f"config file {path} cannot be read ({err.strerror}); check its permissions") from err
        text = yaml_text.decode(data, where=str(path))
    raw = yaml_text.parse(text, where=str(path)) or {}
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
