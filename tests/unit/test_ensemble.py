"""model.ensemble: members trained on their own losses, averaged as probabilities when judged and served."""

import math
import warnings

import numpy as np
import torch

from pipeline.config import ModelConfig
from pipeline.model.ensemble import Ensemble, EnsembleServing, mean_log_probs, traced_member
from pipeline.model.sequence_model import SequenceModel, model_for
from pipeline.tasks import DataInfo
from pipeline.tasks.classify import ClassifyInfo, loss_terms
from pipeline.train.finish import serving_model


def classify_info(*, classes=3, input_size=2) -> DataInfo:
    own = ClassifyInfo(classes=[str(k) for k in range(classes)], majority_class=0)
    return DataInfo(
        task="classify",
        target="class",
        input_size=input_size,
        output_size=classes,
        max_len=6,
        num_rows={},
        task_info=own,
    )


def test_mean_log_probs_is_the_log_of_the_members_mean_probabilities():
    logits = torch.tensor([[[2.0, 0.0]], [[0.0, 1.0]], [[-1.0, 3.0]]])  # (M=3, B=1, K=2)
    by_hand = np.mean([np.exp(r) / np.exp(r).sum() for r in logits[:, 0].numpy()], axis=0)
    assert np.allclose(mean_log_probs(logits)[0].exp().numpy(), by_hand)
    assert torch.allclose(mean_log_probs(logits[:1]), torch.log_softmax(logits[0], dim=-1))  # one member: itself


def test_model_for_builds_differently_initialized_members_and_averages_them_in_eval():
    torch.manual_seed(0)
    model = model_for(ModelConfig(hidden_size=4, ensemble=3), classify_info())
    assert isinstance(model, Ensemble) and len(model.members) == 3
    assert all(isinstance(m, SequenceModel) for m in model.members)
    first, second = (m.head.weight for m in model.members[:2])
    assert not torch.equal(first, second)  # each member its own initial weights
    x, lengths = torch.randn(5, 6, 2), torch.tensor([6, 3, 5, 1, 6])
    assert model.train()(x, lengths).shape == (3, 5, 3)  # every member's logits, for their own losses
    with torch.no_grad():
        members = torch.stack([m(x, lengths) for m in model.members])  # (3, 5, 3)
        assert torch.allclose(model.eval()(x, lengths), mean_log_probs(members))
    assert not isinstance(model_for(ModelConfig(hidden_size=4), classify_info()), Ensemble)


def test_each_member_learns_from_its_own_loss_only():
    """The loss of an ensemble in training is the members' mean cross-entropy: a member's gradient is
    what its own loss gives it (scaled by 1/M), untouched by the others' predictions."""
    torch.manual_seed(0)
    model = model_for(ModelConfig(hidden_size=4, ensemble=2), classify_info()).train()
    x, lengths, y = torch.randn(4, 6, 2), torch.tensor([6, 2, 4, 5]), torch.tensor([0, 2, 1, 2])
    total, n = loss_terms(model(x, lengths), y)["loss"]
    total.backward()
    joint = model.members[0].head.weight.grad.clone()
    model.zero_grad()
    alone, _ = loss_terms(model.members[0](x, lengths), y)["loss"]
    (alone / 2).backward()
    assert n == 4 and torch.allclose(joint, model.members[0].head.weight.grad, atol=1e-6)
    members = [torch.nn.functional.cross_entropy(m(x, lengths), y, reduction="sum") for m in model.members]
    assert math.isclose(total.item(), sum(m.item() for m in members) / 2, rel_tol=1e-5)


def test_accuracy_in_training_is_the_averaged_prediction():
    pred = torch.tensor([[[3.0, 0.0], [0.0, 1.0]], [[-1.0, 0.0], [0.0, 5.0]]])  # (M=2, B=2, K=2)
    y = torch.tensor([0, 1])
    correct, n = loss_terms(pred, y)["accuracy"]
    assert n == 2 and correct.item() == 2  # the mean says class 0 for the first (member 2 alone: 1)


def test_the_served_ensemble_answers_as_the_trained_one_and_exports():
    from torch.export import Dim

    torch.manual_seed(0)
    info = classify_info()
    model = model_for(ModelConfig(hidden_size=4, bidirectional=True, pooling="mean", ensemble=2), info).eval()
    served = serving_model(model, info).eval()
    assert isinstance(served, EnsembleServing) and len(served.members) == 2
    seqs = [torch.randn(n, 2) for n in (5, 2, 6)]
    padded = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=float("nan"))  # (3, 6, 2)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model(torch.nan_to_num(padded), torch.tensor([5, 2, 6]))  # (3, K) log mean probabilities
        assert torch.allclose(served(padded), expected, atol=1e-5)
        exported = torch.export.export(served, (padded,), dynamic_shapes=[{0: Dim.AUTO, 1: Dim.AUTO}]).module()
        assert torch.allclose(exported(padded), expected, atol=1e-5)


def test_telemetry_traces_the_first_member():
    from pipeline.telemetry.record import record

    torch.manual_seed(0)
    model = model_for(ModelConfig(hidden_size=4, ensemble=2), classify_info())
    assert traced_member(model) is model.members[0]
    x, lengths, y = torch.randn(3, 6, 2), torch.tensor([6, 4, 2]), torch.tensor([0, 1, 2])
    batch = {"x": x, "lengths": lengths, "y": y}
    recorded = record(model, batch, loss=lambda p, target: loss_terms(p, target)["loss"][0], epoch=0)
    alone = record(model.members[0], batch, loss=lambda p, target: loss_terms(p, target)["loss"][0], epoch=0)
    assert recorded.table.to_pandas().equals(
        alone.table.to_pandas()
    )  # NaN where NaN; the first member's gates, states and gradient flow
    single = model_for(ModelConfig(hidden_size=4), classify_info())
    assert traced_member(single) is single
