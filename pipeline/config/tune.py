"""`tune`: the search space, the searcher and scheduler, the objective, and the report."""

from __future__ import annotations

import math
import random
from typing import Any, Literal

from pydantic import Field, model_validator

from pipeline.config.base import Section


class SpaceSpec(Section):
    choice: list[Any] | None = Field(None, max_length=1000)
    uniform: list[float] | None = Field(None, min_length=2, max_length=2)
    loguniform: list[float] | None = Field(None, min_length=2, max_length=2)
    randint: list[int] | None = Field(None, min_length=2, max_length=2)

    @model_validator(mode="after")
    def _exactly_one(self) -> SpaceSpec:
        given = [k for k in ("choice", "uniform", "loguniform", "randint") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of choice, uniform, loguniform, randint")
        if self.choice is not None and not self.choice:
            raise ValueError("choice needs at least one value")
        for kind in ("uniform", "loguniform", "randint"):
            bounds = getattr(self, kind)
            if bounds is not None and not bounds[0] < bounds[1]:
                raise ValueError(f"{kind} needs [low, high] with low < high, got {list(bounds)}")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError("loguniform bounds must be positive")
        return self

    def candidate_values(self, rng: random.Random | None = None, *, draws: int = 0) -> list[Any]:
        """Values that must each form a valid config: the choices, or the range's ends and `draws`
        samples drawn as Tune draws them."""
        if self.choice is not None:
            return list(self.choice)
        rng = rng or random.Random(0)
        if self.randint is not None:
            low, high = self.randint  # tune.randint's upper bound is exclusive
            return [low, high - 1, *(rng.randrange(low, high) for _ in range(draws))]
        if self.uniform is not None:
            low, high = self.uniform
            return [low, high, *(rng.uniform(low, high) for _ in range(draws))]
        low, high = self.loguniform
        return [low, high, *(math.exp(rng.uniform(math.log(low), math.log(high))) for _ in range(draws))]


# What population-based training may change in a running trial: the weights carry over, so only keys
# that leave the model's shapes alone. Other tune.space keys are sampled once and, on an exploit,
# copied from the trial whose checkpoint is cloned (with its weights).
PBT_MUTABLE = ("train.lr", "train.weight_decay", "model.dropout")


class PbtConfig(Section):
    """Population-based training (`tune.scheduler: pbt`, Ray Tune's PopulationBasedTraining)."""

    perturbation_interval: int = Field(
        2, ge=1, le=100_000, description="epochs between two exploit/explore decisions of a trial"
    )
    quantile_fraction: float = Field(
        0.25,
        gt=0,
        le=0.5,
        description="the bottom share of the population that clones a checkpoint of the top share",
    )
    resample_probability: float = Field(
        0.25, ge=0, le=1, description="explore: the chance a mutated key is drawn anew from tune.space, else perturbed"
    )
    rounds: Literal["async", "sync"] = Field(
        "async",
        description=(
            "async: a trial is compared with the population's latest results when it reaches its interval (Ray's "
            "default); sync: every trial waits at each interval for the whole population (reproducible decisions)"
        ),
    )


class TuneConfig(Section):
    num_samples: int = Field(2, ge=1, le=10_000, description="trials (grid: repetitions of the whole grid)")
    max_concurrent: int = Field(0, ge=0, le=1024, description="0 = as many trials as the cluster's CPUs/GPUs fit")
    trial_workers: int | None = Field(
        None, ge=1, le=1024, description="Ray Train workers per trial; default train.workers"
    )
    search: Literal["random", "grid", "optuna"] = Field(
        "random",
        description=(
            "random sampling; grid: every combination of the choice lists (x num_samples), ranges sampled "
            "per trial; optuna: TPE"
        ),
    )
    scheduler: Literal["asha", "fifo", "pbt"] = Field(
        "asha",
        description=(
            "asha stops poor trials early (grace_period, reduction_factor); fifo runs every trial to the end; pbt: "
            "population-based training, poor trials clone a good trial's checkpoint and mutate "
            + ", ".join(PBT_MUTABLE)
            + " (tune.pbt)"
        ),
    )
    pbt: PbtConfig | None = Field(None, description="tune.scheduler pbt: how it exploits and explores; null: defaults")
    grace_period: int = Field(1, ge=1, le=100_000, description="ASHA: epochs before a trial can be stopped")
    reduction_factor: int = Field(2, ge=2, le=100, description="ASHA: keep 1/reduction_factor per rung")
    metric: str | None = Field(None, description="what the sweep optimizes; default the task's validation metric")
    mode: Literal["min", "max"] | None = Field(None, description="default: max for accuracy, else min")
    seed: int = Field(
        0,
        ge=0,
        le=2**32 - 1,
        description="seed of the search: random and grid sampling (Tune's variant generator), optuna's TPE",
    )
    solved_below: float | None = Field(
        None,
        gt=0,
        description=(
            "report: the line under which a trial's test metric counts as solved (e.g. 0.01 MSE on the adding problem)"
        ),
    )
    space: dict[str, SpaceSpec] = Field(
        default_factory=dict,
        description=(
            "dotted model.*/train.* key -> {choice: [...]}, {uniform: [a, b]}, {loguniform: [a, b]} or "
            "{randint: [a, b]} (upper bound exclusive); data.* keys take choice lists only (each data variant is "
            "prepared once, before the trials)"
        ),
    )

    @model_validator(mode="after")
    def _solved_needs_cells_by_data(self) -> TuneConfig:
        if self.solved_below is not None and (
            "model.cell" not in self.space or not any(k.startswith("data.") for k in self.space)
        ):
            raise ValueError(
                "tune.solved_below marks the cells-by-data report: search model.cell and a data.* key, or remove it"
            )
        return self

    @model_validator(mode="after")
    def _asha_keys_need_asha(self) -> TuneConfig:
        if self.scheduler != "asha" and (self.grace_period != 1 or self.reduction_factor != 2):
            raise ValueError(
                f"tune.grace_period and tune.reduction_factor are ASHA's and tune.scheduler is {self.scheduler}; "
                "remove them or set tune.scheduler: asha"
            )
        return self

    @model_validator(mode="after")
    def _pbt_rules(self) -> TuneConfig:
        if self.scheduler != "pbt":
            if self.pbt is not None:
                raise ValueError(f"tune.pbt is read by tune.scheduler pbt and it is {self.scheduler}; remove tune.pbt")
            return self
        if not any(key in self.space for key in PBT_MUTABLE):
            raise ValueError(
                f"tune.scheduler pbt mutates {', '.join(PBT_MUTABLE)} and tune.space has none of them; add one "
                "(e.g. train.lr: {loguniform: [0.0001, 0.01]})"
            )
        if self.search == "optuna":
            raise ValueError(
                "tune.scheduler pbt makes its own choices and cannot follow optuna; set tune.search: random"
            )
        if self.search == "random" and self.num_samples < 2:
            raise ValueError("tune.scheduler pbt needs a population: set tune.num_samples to 2 or more")
        return self

    def pbt_settings(self) -> PbtConfig:
        return self.pbt or PbtConfig()

    @model_validator(mode="after")
    def _grid_needs_choices(self) -> TuneConfig:
        if self.search == "grid" and not any(spec.choice is not None for spec in self.space.values()):
            raise ValueError(
                "tune.search: grid crosses the choice lists of tune.space and there are none; add one or use random"
            )
        return self
