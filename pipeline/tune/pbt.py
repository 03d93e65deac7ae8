"""Population-based training (`tune.scheduler: pbt`) over trials that are each a TorchTrainer run.

Ray Tune's PopulationBasedTraining clones the Tune checkpoint of a good trial into a poor one and
mutates the clone's config (`train.lr`, `train.weight_decay`, `model.dropout`). Train V2's
`TuneReportCallback` forwards metrics only, never a Tune checkpoint, so PBT would have nothing to
clone. Here a trial instead fits its trainer in a thread while its own thread hands every epoch's
report to Tune *with* that epoch's checkpoint:

  Train controller  --after_report-->  Handoff actor  --receive-->  trial thread: ray.tune.report(metrics, checkpoint)
  (`pipeline.tune.handoff`, kept light: the controller imports it)

The controller waits until Tune has copied the checkpoint (so Ray Train cannot delete it meanwhile)
and Tune has decided on the trial. A cloned trial starts a new Ray Train run (a "generation",
named after the checkpoint it starts from) whose workers load that checkpoint (`WorkerSpec.warm_start`)
and continue at the epoch after it, with the mutated rate, decay and dropout.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
from collections.abc import Callable
from typing import Any

import ray
import ray.train
import ray.tune
from ray.tune.schedulers import PopulationBasedTraining

from pipeline.config import PBT_MUTABLE, Config, SpaceSpec, TuneConfig, apply_overrides, validate
from pipeline.tasks import get_task
from pipeline.train.checkpoint import load_meta
from pipeline.train.driver import FitOutcome, checkpoint_outcome, fit, with_best_of
from pipeline.train.recipe import stop_rule
from pipeline.tune.handoff import CheckpointReport, Handoff

GENERATION_TAG = "lstmpipe.pbt.generation"  # on a trial's run: the checkpoint its current weights started from


def mutations(cfg: TuneConfig, *, domains: dict[str, Any]) -> dict[str, Any]:
    """tune.space's mutable keys as PBT's hyperparam_mutations: choice lists as lists (PBT steps to a
    neighbouring choice), ranges as their Tune domains (`domains`, PBT scales or resamples them)."""
    return {
        key: list(spec.choice) if spec.choice is not None else domains[key]
        for key, spec in cfg.space.items()
        if key in PBT_MUTABLE
    }


def clip_to_space(config: dict[str, Any], *, space: dict[str, SpaceSpec]) -> dict[str, Any]:
    """PBT perturbs a value by x0.8 or x1.2 without looking at its range: bring each mutated value back
    inside tune.space's bounds, so every clone is a config the space could have sampled."""
    out = dict(config)
    for key, spec in space.items():
        if key not in PBT_MUTABLE or key not in out or spec.choice is not None:
            continue
        low, high = spec.uniform or spec.loguniform or (spec.randint[0], spec.randint[1] - 1)
        value = min(max(out[key], low), high)
        out[key] = int(round(value)) if spec.randint is not None else float(value)
    return out


def pbt_scheduler(cfg: TuneConfig, *, domains: dict[str, Any]) -> PopulationBasedTraining:
    """Tune's PBT, one perturbation per `tune.pbt.perturbation_interval` epochs (training_iteration
    counts reported epochs, also across clones); `domains`: tune.space as Tune distributions."""
    pbt = cfg.pbt_settings()
    return PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=pbt.perturbation_interval,
        hyperparam_mutations=mutations(cfg, domains=domains),
        quantile_fraction=pbt.quantile_fraction,
        resample_probability=pbt.resample_probability,
        custom_explore_fn=functools.partial(clip_to_space, space=dict(cfg.space)),
        synch=pbt.rounds == "sync",
    )


# -- the trial's side ------------------------------------------------------------------------------


def fit_generation(cfg: Config, start: ray.tune.Checkpoint | None, *, build: Callable[[list], Any]) -> FitOutcome:
    """Train this trial's current generation: from `start` (a clone's or a time-sliced trial's Tune
    checkpoint) to train.epochs, reporting each epoch with its checkpoint. PBT can pause a trial at
    its last epoch (to give the slot to a waiting trial) or clone a donor's last epoch: then there is
    nothing left to train and the start checkpoint is the outcome. Of the start and what the
    generation trained, the better by train.checkpoint_metric is the trial's best checkpoint."""
    begun = checkpoint_outcome(start) if start is not None else None
    rule = stop_rule(cfg.train, mode_of=get_task(cfg.task).metric_mode)
    if begun is not None and (len(begun.history) >= cfg.train.epochs or (rule and rule.reached(begun.history))):
        return begun
    handoff = Handoff.remote()
    trained = fit_reporting_checkpoints(build([CheckpointReport(handoff)]), cfg, handoff=handoff)
    return trained if begun is None else with_best_of(cfg, trained, begun)


def fit_reporting_checkpoints(trainer, cfg: Config, *, handoff) -> FitOutcome:
    """`fit` in a thread; this thread reports each epoch to Tune with its checkpoint (Tune copies it
    into the trial's directory: what PBT clones), until the fit ends."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["outcome"] = fit(trainer, cfg)
        except BaseException as err:  # noqa: BLE001 - raised again in the trial's thread
            box["error"] = err
        finally:
            handoff.send.remote(None)

    thread = threading.Thread(target=run, name="lstmpipe-fit", daemon=True)
    thread.start()
    while (item := ray.get(handoff.receive.remote())) is not None:
        metrics, ckpt = item
        saved = ray.tune.Checkpoint(ckpt.path, filesystem=ckpt.filesystem) if ckpt is not None else None
        ray.tune.report(metrics, checkpoint=saved)
        ray.get(handoff.reported.remote())
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["outcome"]


def generation_name(trial_run_name: str, start: ray.tune.Checkpoint | None) -> str:
    """The Ray Train run name of a trial's current weights: the trial's own name until PBT clones a
    checkpoint into it, then one per cloned checkpoint (so Train never restores the replaced weights;
    a restored sweep that starts again from the same checkpoint continues the same run)."""
    if start is None:
        return trial_run_name
    return f"{trial_run_name}-g{hashlib.sha256(start.path.encode()).hexdigest()[:8]}"


def generation_params(cfg: Config) -> dict[str, float]:
    """The mutable hyperparameters this generation trains with, as metrics (`hp/<key>`) at its first
    epoch: MLflow params cannot change, so the trial's run plots them against epochs instead."""
    return {f"hp/{key}": float(_get(cfg, key)) for key in PBT_MUTABLE if key in cfg.tune.space}


def _get(cfg: Config, key: str) -> Any:
    section, name = key.split(".", 1)
    return getattr(getattr(cfg, section), name)


# -- the sweep's side ------------------------------------------------------------------------------


def best_outcome(best: ray.tune.Result, base: dict[str, Any], *, cfg: Config, mode: str) -> tuple[FitOutcome, Config]:
    """The best checkpoint Tune kept for the best trial, by train.checkpoint_metric, and the config its
    weights were trained with: a trial's final config may come from a later clone than that checkpoint."""
    metric = cfg.train.checkpoint_metric
    ranked = [(c, m) for c, m in best.best_checkpoints if _finite(m.get(metric))]
    if not ranked:
        raise ValueError(f"trial {best.path} kept no checkpoint with a finite {metric}")
    ckpt, metrics = (min if mode == "min" else max)(ranked, key=lambda cm: cm[1][metric])
    meta = load_meta(ckpt.path)
    searched = {key: _dotted(meta.config or {}, key) for key in cfg.tune.space}
    trained = validate(apply_overrides(base, searched), origin="best PBT checkpoint")
    outcome = FitOutcome(best_checkpoint=ckpt.path, best_metrics=metrics, run_path=best.path, history=meta.history)
    return outcome, trained


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _dotted(tree: dict[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        node = node[part]
    return node
