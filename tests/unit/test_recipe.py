"""The training recipe (pipeline.train.recipe): optimizers, the learning rate per epoch, early stopping."""

import pytest
import torch
from torch import nn

from pipeline import config
from pipeline.config import TrainConfig
from pipeline.errors import ConfigError
from pipeline.track.summary import RunSummary, render
from pipeline.train.recipe import StopRule, lr_at, optimizer_for, plateau_cuts, stop_rule


def _train(**kw) -> TrainConfig:
    return TrainConfig(**({"epochs": 10} | kw))


def test_adamw_decays_matrices_and_embeddings_not_biases_or_norms():
    model = nn.Sequential(nn.Embedding(5, 4), nn.LSTM(4, 3), nn.LayerNorm(3), nn.Linear(3, 1))
    opt = optimizer_for(model, _train(optimizer="adamw", weight_decay=0.1))
    assert isinstance(opt, torch.optim.AdamW)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert {p.ndim for p in decayed["params"]} == {2} and {p.ndim for p in plain["params"]} == {1}
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))


def test_sgd_takes_its_momentum_and_adam_stays_adam():
    model = nn.Linear(3, 1)
    assert optimizer_for(model, _train(optimizer="sgd")).param_groups[0]["momentum"] == 0.9
    assert optimizer_for(model, _train(optimizer="sgd", momentum=0.5)).param_groups[0]["momentum"] == 0.5
    assert type(optimizer_for(model, _train())) is torch.optim.Adam


def test_constant_with_warmup_rises_linearly_to_lr():
    cfg = _train(lr=0.1, warmup_epochs=3)
    assert [round(lr_at(e, [], cfg), 6) for e in range(5)] == [0.025, 0.05, 0.075, 0.1, 0.1]


def test_cosine_equals_torchs_cosine_annealing_after_warmup():
    cfg = _train(lr=0.1, schedule="cosine", warmup_epochs=2, epochs=12)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    torchs = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.001)
    for epoch in range(2, 12):
        assert lr_at(epoch, [], cfg) == pytest.approx(opt.param_groups[0]["lr"])
        opt.step()
        torchs.step()
    assert lr_at(11, [], cfg) > 0.001  # the last epoch still learns


def test_onecycle_rises_from_lr_over_25_then_anneals_towards_lr_over_10000():
    cfg = _train(lr=0.1, schedule="onecycle", epochs=10)  # no warmup_epochs: rises over 30% (3 epochs)
    rates = [lr_at(e, [], cfg) for e in range(10)]
    assert rates[0] == pytest.approx(0.004) and rates[3] == pytest.approx(0.1) == max(rates)
    assert rates[:4] == sorted(rates[:4]) and rates[3:] == sorted(rates[3:], reverse=True)
    assert 1e-5 < rates[-1] < 0.01


def test_plateau_cuts_like_torchs_reduce_lr_on_plateau():
    losses = [1.0, 0.9, 0.95, 0.91, 0.92, 0.85, 0.86, 0.87, 0.88, 0.84, 0.9, 0.9]
    cfg = _train(lr=0.1, schedule="plateau", plateau_factor=0.5, plateau_patience=1, epochs=len(losses) + 1)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    torchs = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1, threshold=0.0)
    history = []
    for epoch, loss in enumerate(losses):
        assert lr_at(epoch, history, cfg) == pytest.approx(opt.param_groups[0]["lr"]), epoch
        history.append({"val_loss": loss})
        torchs.step(loss)
    assert lr_at(len(losses), history, cfg) == pytest.approx(opt.param_groups[0]["lr"])
    assert opt.param_groups[0]["lr"] < 0.05  # torch cut at least twice: the comparison saw cuts
    assert plateau_cuts([1.0, 1.0, 1.0], patience=2) == 0 and plateau_cuts([1.0] * 4, patience=2) == 1


def test_plateau_ignores_the_warmup_epochs():
    cfg = _train(lr=0.1, schedule="plateau", plateau_patience=0, warmup_epochs=2)
    history = [{"val_loss": 1.0}, {"val_loss": 2.0}, {"val_loss": 0.5}]
    assert lr_at(3, history, cfg) == 0.1  # the rise of the warmup is no plateau


def test_early_stopping_counts_epochs_without_improvement():
    rule = StopRule(metric="val_loss", mode="min", patience=2, min_delta=0.0)
    history = [{"val_loss": v} for v in (1.0, 0.8, 0.81, 0.79, 0.8, 0.82)]
    assert [rule.reached(history[:n]) for n in range(1, 7)] == [False, False, False, False, False, True]
    strict = StopRule(metric="val_loss", mode="min", patience=2, min_delta=0.05)
    assert strict.reached(history[:4])  # 0.79 beats 0.8 by less than min_delta
    accuracy = StopRule(metric="val_accuracy", mode="max", patience=1, min_delta=0.0)
    assert not accuracy.reached([{"val_accuracy": 0.5}, {"val_accuracy": 0.6}])
    assert accuracy.reached([{"val_accuracy": 0.5}, {"val_accuracy": 0.6}, {"val_accuracy": 0.6}])


def test_the_stop_rule_watches_the_checkpoint_metric_unless_told():
    cfg = _train(early_stopping={"patience": 3})
    rule = stop_rule(cfg, mode_of=lambda m: "max" if m == "val_accuracy" else "min")
    assert rule == StopRule(metric="val_loss", mode="min", patience=3, min_delta=0.0)
    cfg = _train(early_stopping={"metric": "val_accuracy"}, checkpoint_metric="val_accuracy")
    assert stop_rule(cfg, mode_of=lambda m: "max").mode == "max"
    assert stop_rule(_train(), mode_of=lambda m: "min") is None


@pytest.mark.parametrize(
    ("train", "match"),
    [
        ({"weight_decay": 0.01}, "train.weight_decay is not applied by train.optimizer=adam.*adamw"),
        ({"optimizer": "adamw", "momentum": 0.9}, "train.momentum is sgd's"),
        ({"schedule": "cosine", "plateau_factor": 0.3}, "train.plateau_factor is read by train.schedule=plateau"),
        ({"warmup_epochs": 10, "epochs": 10}, "train.warmup_epochs=10 leaves no epoch"),
        ({"early_stopping": {"patience": 0}}, "train.early_stopping.patience"),
        ({"early_stopping": {"patiense": 2}}, "patiense"),
        ({"early_stopping": {"metric": "val_los"}}, "'val_los' is not a validation metric.*did you mean 'val_loss'"),
        ({"optimizer": "lion"}, "train.optimizer"),
        ({"schedule": "step"}, "train.schedule"),
    ],
)
def test_recipe_keys_are_refused_where_nothing_reads_them(train, match):
    with pytest.raises(ConfigError, match=match):
        config.validate({"train": train})


def test_recipe_keys_are_set_from_the_command_line():
    cfg = config.validate(
        config.apply_overrides(
            {}, ["train.early_stopping.patience=3", "train.schedule=onecycle", "train.optimizer=sgd"]
        )
    )
    assert cfg.train.early_stopping.patience == 3 and cfg.train.schedule == "onecycle"


def test_the_summary_says_where_early_stopping_ended_the_run():
    metrics = {"val_loss": 0.5, "best_epoch": 3.0, "stopped_epoch": 6.0, "max_epochs": 20.0, "test_mse": 0.4}
    text = render(RunSummary("FINISHED", "sqlite:///m.db", "e", "r" * 32, "n", metrics=metrics), title="train")
    assert "early stopping: stopped after epoch 6 of 20" in text
    assert "early stopping" not in render(
        RunSummary("FINISHED", "sqlite:///m.db", "e", "r" * 32, "n", metrics={"val_loss": 0.5}), title="train"
    )
