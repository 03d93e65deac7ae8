"""A trained model by URI: `runs:/RUN_ID`, `models:/NAME@ALIAS`, `models:/NAME/VERSION`, or a
checkpoint directory. Every run logs its tested checkpoint (state_dict, config and data info)
beside the pt2 model, so the eager model comes back with everything needed to prepare data for
it, sample from it, or score with it."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.config import Config, validate
from pipeline.errors import ConfigError
from pipeline.model.sequence_model import SequenceModel, model_for
from pipeline.tasks import DataInfo
from pipeline.track.models import download_checkpoint
from pipeline.train import checkpoint


@dataclass(frozen=True)
class Trained:
    model: SequenceModel  # eval mode, on CPU
    info: DataInfo
    config: Config
    directory: Path  # the local checkpoint directory


def resolve(model_uri: str, *, tracking_uri: str, dst: str | Path) -> Path:
    if model_uri.startswith(("runs:/", "models:/")):
        return download_checkpoint(tracking_uri, model_uri, dst=dst)
    path = Path(model_uri).expanduser()
    if (path / checkpoint.MODEL_FILE).is_file():
        return path.resolve()
    raise ConfigError(
        f"--model {model_uri} is neither a runs:/ or models:/ URI nor a checkpoint directory (with "
        f"{checkpoint.MODEL_FILE}); "
        "pass e.g. models:/NAME@champion or runs/<run>/epoch_0009"
    )


def load_dir(directory: str | Path) -> Trained:
    directory = Path(directory)
    state = checkpoint.load(directory)
    if state.meta.config is None or state.meta.info is None:
        raise ConfigError(
            f"checkpoint {directory} has no config/data info (written by an older version); retrain to load it by URI"
        )
    cfg = validate(state.meta.config, origin=f"{directory}/{checkpoint.META_FILE}")
    try:
        info = DataInfo.from_dict(state.meta.info)
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            f"checkpoint {directory}: its data info is not one lstmpipe wrote ({err!r:.120}); use a checkpoint of a run"
        ) from err
    _check_fits(directory, cfg, info, state.model)
    model = model_for(cfg.model, info)
    model.load_state_dict(state.model)
    return Trained(model=model.eval(), info=info, config=cfg, directory=directory)


def _check_fits(directory: Path, cfg, info: DataInfo, weights: dict) -> None:
    """The weights have the shapes the checkpoint's own config and data info build, checked on the
    meta device first (no memory: an `input_size` of 1e9 in a hostile meta.json allocates nothing)."""
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in model_for(cfg.model, info).state_dict().items()}
    except (RuntimeError, ValueError, TypeError) as err:
        expected, problem = {}, f"its config builds no model ({err!s:.120})"
    else:
        found = {k: tuple(v.shape) for k, v in weights.items() if isinstance(v, torch.Tensor)}
        wrong = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
        problem = (
            f"{wrong[0]} is {found.get(wrong[0], 'missing')} in {checkpoint.MODEL_FILE} but "
            f"{expected.get(wrong[0], 'absent')} by its config"
            if wrong
            else ""
        )
    if problem:
        raise ConfigError(
            f"checkpoint {directory} does not fit its own config ({problem}); use a checkpoint directory lstmpipe wrote"
        )


def load(model_uri: str, *, tracking_uri: str) -> Trained:
    """Resolve and load; a downloaded checkpoint is read into memory, its temp copy removed."""
    if model_uri.startswith(("runs:/", "models:/")):
        with tempfile.TemporaryDirectory() as tmp:
            trained = load_dir(resolve(model_uri, tracking_uri=tracking_uri, dst=tmp))
        return Trained(model=trained.model, info=trained.info, config=trained.config, directory=Path(model_uri))
    return load_dir(resolve(model_uri, tracking_uri=tracking_uri, dst="."))
