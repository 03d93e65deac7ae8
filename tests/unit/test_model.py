"""Model shapes for each cell."""

import numpy as np
import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.model.sequence_model import build_model

ALL_CELLS = ["lstm", "gru", "rnn", "peephole", "nig", "nfg", "nog", "niaf", "noaf", "cifg", "fgr", "slstm", "mlstm"]


@pytest.mark.parametrize("cell", ALL_CELLS)
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, True)])
def test_output_shape(cell, layers, bidirectional):
    cfg = ModelConfig(
        cell=cell, hidden_size=8, num_layers=layers, dropout=0.1 if layers > 1 else 0.0, bidirectional=bidirectional
    )
    model = build_model(cfg, input_size=3, output_size=2)
    assert model(torch.randn(5, 7, 3), torch.tensor([7, 3, 5, 1, 7])).shape == (5, 2)
    assert model.head.in_features == 8 * (2 if bidirectional else 1)
    every = build_model(cfg, input_size=3, output_size=2, readout="every")
    assert every(torch.randn(5, 7, 3)).shape == (5, 7, 2)


def test_lstm_projection_and_forget_bias():
    model = build_model(
        ModelConfig(hidden_size=16, proj_size=4, num_layers=2, forget_bias=2.0), input_size=3, output_size=1
    )
    assert model.head.in_features == 4 and model(torch.randn(2, 5, 3)).shape == (2, 1)
    cell = model.rnn.layers[0][0]
    assert torch.equal(cell.bias_ih_l0[16:32] + cell.bias_hh_l0[16:32], torch.full((16,), 2.0))


def test_reads_the_last_time_step():
    model = build_model(ModelConfig(hidden_size=4), input_size=1, output_size=1).eval()
    x = torch.randn(2, 6, 1)
    changed = x.clone()
    changed[:, -1] += 1.0
    assert not torch.allclose(model(x), model(changed))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "cifg", "fgr", "slstm", "mlstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_packed_padded_batch_equals_sequences_one_by_one(cell, bidirectional):
    torch.manual_seed(0)
    cfg = ModelConfig(cell=cell, hidden_size=6, num_layers=2, bidirectional=bidirectional)
    model = build_model(cfg, input_size=3, output_size=2).eval()
    seqs = [torch.randn(n, 3) for n in (5, 2, 7, 1)]
    lengths = torch.tensor([len(s) for s in seqs])
    padded = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)  # (4, 7, 3), zeros after each end
    padded_garbage = padded.clone()
    for i, n in enumerate(lengths):
        padded_garbage[i, n:] = 1e3  # padding must not leak in
    with torch.no_grad():
        one_by_one = torch.cat([model(s.unsqueeze(0)) for s in seqs])
        assert torch.allclose(model(padded, lengths), one_by_one, atol=1e-6)
        assert torch.allclose(model(padded_garbage, lengths), one_by_one, atol=1e-6)


def test_serving_model_reads_nan_padding_and_rescales():
    from pipeline.model.sequence_model import ServingModel

    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_size=6), input_size=2, output_size=2).eval()
    seqs = [torch.randn(n, 2) for n in (4, 2, 3)]
    lengths = torch.tensor([4, 2, 3])
    padded = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=float("nan"))
    serving = ServingModel(model, out_scale=[2.0, 10.0], out_shift=[1.0, -1.0]).eval()
    with torch.no_grad():
        expected = model(torch.nan_to_num(padded), lengths) * torch.tensor([2.0, 10.0]) + torch.tensor([1.0, -1.0])
        assert torch.allclose(serving(padded), expected, atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_every_step_readout_packed_equals_one_by_one(cell):
    """generate: per-step outputs of a padded, packed batch equal each sequence's own outputs."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(cell=cell, hidden_size=6), input_size=3, output_size=4, readout="every").eval()
    seqs = [torch.randn(n, 3) for n in (5, 2, 7)]
    lengths = torch.tensor([len(s) for s in seqs])
    padded = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=1e3)
    with torch.no_grad():
        out = model(padded, lengths)  # (3, 7, 4)
        assert out.shape == (3, 7, 4)
        for i, s in enumerate(seqs):
            assert torch.allclose(out[i, : len(s)], model(s.unsqueeze(0))[0], atol=1e-6)
        state, steps = None, []
        for t in range(len(seqs[2])):  # step() == the full pass
            logits, state = model.step(seqs[2][t].unsqueeze(0), state)
            steps.append(logits)
        assert torch.allclose(torch.cat(steps), out[2], atol=1e-5)


def test_serving_model_relative_to_last_value():
    """forecast with window.normalize=last: the served model subtracts each row's last observed
    target, runs the model on relative inputs, and adds the value back to its forecasts."""
    from pipeline.model.sequence_model import ServingModel

    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_size=6), input_size=2, output_size=3).eval()
    seqs = [torch.randn(n, 2) + 100.0 for n in (4, 2)]
    lengths = torch.tensor([4, 2])
    padded = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=float("nan"))
    serving = ServingModel(model, out_scale=[2.0] * 3, out_shift=[0.0] * 3, reference="last").eval()
    ref = torch.stack([s[-1, 0] for s in seqs]).unsqueeze(1)  # (B, 1)
    relative = [torch.cat([s[:, :1] - s[-1, 0], s[:, 1:]], dim=1) for s in seqs]
    with torch.no_grad():
        expected = model(torch.nn.utils.rnn.pad_sequence(relative, batch_first=True), lengths) * 2.0 + ref
        assert torch.allclose(serving(padded), expected, atol=1e-4)


def test_serving_model_standardizes_each_window_by_itself_for_revin():
    """forecast with window.normalize=revin: the served model standardizes each row's target by the
    mean and std of its own real steps (padding excluded), and reverses that on its outputs: the
    locations get std and mean, a spread only std, a shape parameter neither."""
    from torch.export import Dim

    from pipeline.model.sequence_model import ServingModel

    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_size=6), input_size=2, output_size=3).eval()
    seqs = [torch.randn(n, 2) * 50 + 100.0 for n in (4, 2)]
    padded = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=float("nan"))
    serving = ServingModel(
        model, reference="revin", out_scale=[1.0] * 3, located=[True, False, False], scaled=[True, True, False]
    ).eval()
    mean = torch.stack([s[:, 0].mean() for s in seqs]).unsqueeze(1)  # (B, 1)
    std = torch.stack([s[:, 0].std(unbiased=False) for s in seqs]).unsqueeze(1)
    relative = [torch.cat([(s[:, :1] - m) / d, s[:, 1:]], dim=1) for s, m, d in zip(seqs, mean, std)]
    with torch.no_grad():
        raw = model(torch.nn.utils.rnn.pad_sequence(relative, batch_first=True), torch.tensor([4, 2]))  # (B, 3)
        got = serving(padded)
        exported = torch.export.export(serving, (padded,), dynamic_shapes=[{0: Dim.AUTO, 1: Dim.AUTO}]).module()
        assert torch.allclose(exported(padded), got, atol=1e-5)  # the logged (pt2) form computes the same
    assert torch.allclose(got[:, 0:1], raw[:, 0:1] * std + mean, atol=1e-4)  # location
    assert torch.allclose(got[:, 1:2], raw[:, 1:2] * std, atol=1e-4)  # spread
    assert torch.allclose(got[:, 2:3], raw[:, 2:3], atol=1e-5)  # shape


def test_serving_model_reads_the_series_moments_from_its_last_two_channels():
    """forecast with window.normalize=series: the served model takes each row's series mean and std
    as two extra channels, standardizes the target with them (features untouched), drops them, and
    reverses the scaling on its outputs; exported (pt2) it computes the same."""
    from torch.export import Dim

    from pipeline.model.sequence_model import ServingModel
    from pipeline.train.holdout import with_series_moments

    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_size=6), input_size=2, output_size=3).eval()
    x = torch.randn(2, 5, 2) * 50 + 100.0  # (B, T, C) data units
    mean, std = np.array([100.0, 90.0]), np.array([50.0, 25.0])  # each row's series training moments
    served = torch.from_numpy(with_series_moments(x.numpy(), mean, std))  # (B, T, C + 2)
    assert served.shape == (2, 5, 4) and torch.all(served[1, :, 3] == 25.0)
    serving = ServingModel(model, reference="series", out_scale=[1.0] * 3, located=[True, True, True]).eval()
    m, s = torch.tensor(mean, dtype=torch.float32)[:, None], torch.tensor(std, dtype=torch.float32)[:, None]
    relative = torch.cat([(x[..., :1] - m[..., None]) / s[..., None], x[..., 1:]], dim=-1)
    with torch.no_grad():
        expected = model(relative, torch.tensor([5, 5])) * s + m  # (B, 3)
        got = serving(served)
        exported = torch.export.export(serving, (served,), dynamic_shapes=[{0: Dim.AUTO, 1: Dim.AUTO}]).module()
        assert torch.allclose(exported(served), got, atol=1e-5)
    assert torch.allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize(
    ("cell", "bidirectional"), [("cifg", False), ("lstm", True), ("fgr", True), ("slstm", True), ("mlstm", False)]
)
def test_served_model_matches_and_exports_for_variants_and_both_directions(cell, bidirectional):
    import warnings

    from torch.export import Dim

    from pipeline.model.sequence_model import ServingModel

    torch.manual_seed(0)
    model = build_model(
        ModelConfig(cell=cell, hidden_size=6, num_layers=2, bidirectional=bidirectional), input_size=3, output_size=2
    ).eval()
    seqs = [torch.randn(n, 3) for n in (5, 2, 7)]
    padded = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=float("nan"))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model(torch.nan_to_num(padded), torch.tensor([5, 2, 7]))
        exported = torch.export.export(
            ServingModel(model).eval(), (padded,), dynamic_shapes=[{0: Dim.AUTO, 1: Dim.AUTO}]
        ).module()
        assert torch.allclose(exported(padded), expected, atol=1e-5)


@pytest.mark.parametrize(("cell", "bidirectional"), [("lstm", False), ("gru", True), ("nig", True)])
def test_token_model_embeds_ids_and_the_served_model_reads_nan_padded_ids(cell, bidirectional):
    """Token ids (B, T, 1) are embedded (padding id 0 is a zero vector) and never one-hot or scaled;
    the served model takes the same ids NaN-padded and answers as the training model does."""
    from pipeline.model.sequence_model import ServingModel

    torch.manual_seed(0)
    cfg = ModelConfig(cell=cell, hidden_size=6, bidirectional=bidirectional, embedding_dim=5)
    model = build_model(cfg, input_size=1, output_size=2, vocab_size=30).eval()
    assert model.embed.weight.shape == (30, 5) and torch.all(model.embed.weight[0] == 0)
    ids = torch.tensor([[3.0, 7, 2, 9], [4, 5, 0, 0]]).unsqueeze(-1)  # (B, T, 1), the second padded with 0
    lengths = torch.tensor([4, 2])
    nan_padded = torch.where(ids == 0, torch.full_like(ids, float("nan")), ids)
    with torch.no_grad():
        expected = model(ids, lengths)  # (B, 2)
        alone = model(ids[1:, :2], lengths[1:])
        assert torch.allclose(expected[1:], alone, atol=1e-5)  # padding changes nothing
        assert torch.allclose(ServingModel(model).eval()(nan_padded), expected, atol=1e-5)


def test_embedding_dropout_acts_in_training_only():
    model = build_model(
        ModelConfig(hidden_size=4, embedding_dim=8, embedding_dropout=0.5), input_size=1, output_size=1, vocab_size=9
    )
    ids = torch.tensor([[1.0, 2, 3, 4, 5, 6]]).unsqueeze(-1)  # (1, 6, 1)
    model.train()
    assert not torch.equal(model.inputs(ids), model.inputs(ids))
    model.eval()
    assert torch.equal(model.inputs(ids), model.embed(ids[..., 0].long()))


def test_word_dropout_turns_real_tokens_into_unk_while_training_only():
    from pipeline.data.tokenize import PAD_ID, UNK_ID
    from pipeline.model.seq2seq import Seq2Seq
    from pipeline.model.sequence_model import drop_tokens

    torch.manual_seed(0)
    ids = torch.randint(2, 50, (64, 40))  # (B, T) real tokens
    ids[:, 30:] = PAD_ID  # padded tails
    dropped = drop_tokens(ids, 0.25, training=True)
    changed = dropped != ids
    assert torch.all(dropped[changed] == UNK_ID) and not changed[:, 30:].any()  # <unk> in, padding untouched
    assert 0.22 < changed[:, :30].float().mean().item() < 0.28  # about p of the real tokens
    assert torch.equal(drop_tokens(ids, 0.25, training=False), ids) and torch.equal(
        drop_tokens(ids, 0.0, training=True), ids
    )

    seen = []  # what each model's embedding reads: dropped ids in train mode, all ids in eval
    cfg = ModelConfig(hidden_size=4, embedding_dim=8, word_dropout=0.5)
    model = build_model(cfg, input_size=1, output_size=1, vocab_size=60)
    translator = Seq2Seq(cfg, source_vocab=60, target_vocab=60)
    for embed in (model.embed, translator.src_embed):
        embed.register_forward_hook(lambda module, args, out: seen.append(args[0].clone()))
    x, lengths = ids[:, :30, None].float(), torch.full((64,), 30)  # (B, T, 1)
    for mode in ("train", "eval"):
        getattr(model, mode)(), getattr(translator, mode)()
        with torch.no_grad():
            model(x, lengths)
            translator.encode(x, lengths)
    (m_train, t_train, m_eval, t_eval) = seen
    assert (
        0.4 < (m_train == UNK_ID).float().mean().item() < 0.6 and 0.4 < (t_train == UNK_ID).float().mean().item() < 0.6
    )
    assert torch.equal(m_eval, ids[:, :30]) and torch.equal(t_eval, ids[:, :30])


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_pooled_readout_reads_only_real_steps_and_serves_the_same(pooling, bidirectional):
    from pipeline.model.sequence_model import ServingModel

    torch.manual_seed(0)
    cfg = ModelConfig(cell="gru", hidden_size=5, bidirectional=bidirectional, pooling=pooling)
    model = build_model(cfg, input_size=2, output_size=3).eval()
    seqs = [torch.randn(n, 2) for n in (6, 3)]
    padded = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)  # (2, 6, 2), zeros after the second's end
    with torch.no_grad():
        both = model(padded, torch.tensor([6, 3]))
        alone = torch.cat([model(s.unsqueeze(0), torch.tensor([len(s)])) for s in seqs])
        assert torch.allclose(both, alone, atol=1e-5)  # padding never pooled
        out, _ = model.rnn(model.inputs(seqs[1].unsqueeze(0)), torch.tensor([3]))  # (1, 3, D)
        pooled = out.mean(dim=1) if pooling == "mean" else out.amax(dim=1)
        assert torch.allclose(alone[1:], model.head(pooled), atol=1e-5)
        nan_padded = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=float("nan"))
        assert torch.allclose(ServingModel(model).eval()(nan_padded), both, atol=1e-5)


def test_steps_readout_reads_horizon_step_k_from_position_l_minus_h_plus_k():
    """model.readout steps (forecast): one head shared by the steps; step k sees inputs up to L-H+k only."""
    import warnings

    from torch.export import Dim

    from pipeline.model.sequence_model import ServingModel

    torch.manual_seed(0)
    cfg = ModelConfig(hidden_size=6, readout="steps")
    model = build_model(cfg, input_size=2, output_size=3, readout="steps", horizon=3).eval()
    assert model.head.out_features == 1  # shared by the 3 steps
    x = torch.randn(4, 8, 2)
    changed = x.clone()
    changed[:, -1] += 5.0  # the last input: only the last step's state saw it
    with torch.no_grad():
        a, b = model(x), model(changed)
        assert a.shape == (4, 3)
        assert torch.allclose(a[:, :2], b[:, :2]) and not torch.allclose(a[:, 2], b[:, 2])
        out, _ = model.rnn(model.inputs(x))  # (B, T, D)
        assert torch.allclose(a, model.head(out[:, 5:8]).squeeze(-1), atol=1e-6)
        served = ServingModel(model, out_scale=[2.0] * 3, out_shift=[1.0] * 3).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exported = torch.export.export(served, (x,), dynamic_shapes=[{0: Dim.AUTO, 1: Dim.AUTO}]).module()
        assert torch.allclose(exported(x), a * 2.0 + 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"task": "regression", "model": {"readout": "steps"}}, "model.readout is for task: forecast"),
        (
            {
                "task": "forecast",
                "data": {"source": "airline", "window": {"lookback": 2, "horizon": 3}},
                "model": {"readout": "steps"},
            },
            "data.window.horizon 3 exceeds data.window.lookback 2",
        ),
        (
            {"task": "forecast", "data": {"source": "airline"}, "model": {"readout": "steps", "pooling": "mean"}},
            "model.pooling mean is not read with model.readout steps",
        ),
    ],
)
def test_steps_readout_rules(raw, message):
    from pipeline.config import validate

    with pytest.raises(Exception, match=message):
        validate(raw)


def test_steps_readout_of_a_probabilistic_forecast_shares_one_head_of_its_parameters():
    from pipeline.model.sequence_model import model_for
    from pipeline.tasks import DataInfo
    from pipeline.tasks.forecast import ForecastInfo

    own = ForecastInfo(scaler={"mean": [0.0] * 3, "std": [1.0] * 3}, season=1, likelihood="gaussian")
    info = DataInfo(task="forecast", target="float", input_size=1, output_size=6, max_len=8, num_rows={}, task_info=own)
    model = model_for(ModelConfig(hidden_size=6, readout="steps"), info).eval()
    assert model.horizon == 3 and model.head.out_features == 2  # (mu, sigma), shared by the 3 steps
    out = model(torch.randn(5, 8, 1)).reshape(5, 3, 2)
    assert torch.all(out[..., 1] > 0)  # sigma through the distribution head
