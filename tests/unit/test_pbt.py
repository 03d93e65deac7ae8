"""Population-based training's pure parts: the mutations, the clipping, the run names per clone, the
optimizer state a clone loads, and the champion's config (no Ray cluster)."""

import json

import pytest
import ray.tune
import torch
from torch import nn

from pipeline import config
from pipeline.train import checkpoint
from pipeline.train.recipe import load_optimizer_state, optimizer_for
from pipeline.tune import pbt
from pipeline.tune.space import scheduler

SPACE = {
    "train.lr": {"loguniform": [0.001, 0.01]},
    "train.weight_decay": {"uniform": [0.0, 0.1]},
    "model.dropout": {"choice": [0.0, 0.1, 0.2]},
    "model.hidden_size": {"choice": [4, 8]},
}


def _cfg(**pbt_keys):
    return config.validate(
        {
            "model": {"num_layers": 2},
            "train": {"epochs": 6, "optimizer": "adamw"},
            "tune": {"scheduler": "pbt", "num_samples": 4, "space": SPACE, **({"pbt": pbt_keys} if pbt_keys else {})},
        }
    )


def test_pbt_mutates_rate_decay_and_dropout_and_inherits_the_rest():
    sched = scheduler(_cfg(perturbation_interval=3, rounds="sync").tune, max_epochs=6)
    assert isinstance(sched, ray.tune.schedulers.PopulationBasedTraining)
    assert set(sched._hyperparam_mutations) == {"train.lr", "train.weight_decay", "model.dropout"}  # not hidden_size
    assert sched._hyperparam_mutations["model.dropout"] == [0.0, 0.1, 0.2]
    assert sched._perturbation_interval == 3 and sched._synch and sched._time_attr == "training_iteration"


def test_a_perturbed_value_is_clipped_back_into_the_space():
    space = _cfg().tune.space
    clipped = pbt.clip_to_space(
        {"train.lr": 0.012, "train.weight_decay": -0.01, "model.dropout": 0.1, "model.hidden_size": 8}, space=space
    )
    assert clipped == {"train.lr": 0.01, "train.weight_decay": 0.0, "model.dropout": 0.1, "model.hidden_size": 8}
    assert pbt.clip_to_space({"train.lr": 0.005}, space=space) == {"train.lr": 0.005}


def test_each_cloned_checkpoint_gets_its_own_train_run():
    a, b = ray.tune.Checkpoint("/runs/s/t1/checkpoint_000001"), ray.tune.Checkpoint("/runs/s/t2/checkpoint_000003")
    assert pbt.generation_name("s-t1", None) == "s-t1"
    assert pbt.generation_name("s-t1", a) == pbt.generation_name("s-t1", a) != pbt.generation_name("s-t1", b)
    assert pbt.generation_name("s-t1", a).startswith("s-t1-g")


def test_a_clone_keeps_the_donors_moments_under_its_own_decay():
    model = nn.Linear(3, 2)
    train = config.TrainConfig(epochs=4, optimizer="adamw", weight_decay=0.05)
    donor = optimizer_for(model, train)
    model(torch.ones(1, 3)).sum().backward()
    donor.step()
    clone = optimizer_for(model, train.model_copy(update={"weight_decay": 0.01}))
    load_optimizer_state(clone, donor.state_dict())
    assert clone.param_groups[0]["weight_decay"] == 0.01  # the mutated decay, not the donor's 0.05
    moments = [clone.state[p]["exp_avg"] for p in model.parameters()]
    assert all(torch.equal(m, donor.state[p]["exp_avg"]) for m, p in zip(moments, model.parameters(), strict=True))


def test_the_champions_config_is_the_one_its_weights_trained_with(tmp_path):
    """A PBT trial's final config can come from a later clone than its best checkpoint: the sweep
    takes the searched values the checkpoint recorded."""
    cfg = _cfg()
    paths = []
    for epoch, (val, lr) in enumerate([(0.5, 0.002), (0.2, 0.004), (0.3, 0.008)]):
        path = tmp_path / f"checkpoint_{epoch}"
        path.mkdir()
        trained = cfg.model_dump(mode="json")
        trained["train"]["lr"] = lr
        meta = checkpoint.CheckpointMeta(epoch=epoch, config_hash="h", run_id="r", config=trained, history=[])
        checkpoint.save(path, model=nn.Linear(1, 1), optimizer=None, meta=meta)
        paths.append((ray.tune.Checkpoint(str(path)), {"val_loss": val, "epoch": epoch}))
    result = ray.tune.Result(
        metrics={"val_loss": 0.3}, checkpoint=paths[-1][0], error=None, path=str(tmp_path), best_checkpoints=paths
    )
    outcome, trained = pbt.best_outcome(result, cfg.model_dump(mode="json"), cfg=cfg, mode="min")
    assert outcome.best_checkpoint == paths[1][0].path and outcome.best_metrics["epoch"] == 1
    assert trained.train.lr == 0.004
    assert json.loads((tmp_path / "checkpoint_1" / "meta.json").read_text())["epoch"] == 1


def test_the_generation_metrics_name_each_mutated_key():
    assert set(pbt.generation_params(_cfg())) == {"hp/train.lr", "hp/train.weight_decay", "hp/model.dropout"}


@pytest.mark.parametrize("rounds", ["async", "sync"])
def test_rounds_choose_tunes_synch_mode(rounds):
    assert scheduler(_cfg(rounds=rounds).tune, max_epochs=6)._synch is (rounds == "sync")
