"""Translation without Ray: sources, teacher forcing, attention masking, beam search, metrics, config rules."""

import struct
import zipfile

import numpy as np
import pyarrow as pa
import pytest
import torch

from pipeline.config import ModelConfig, validate
from pipeline.data.tokenize import BOS_ID, EOS_ID, PAD_ID, fit_tokenizer
from pipeline.data.transforms import teacher_forcing
from pipeline.model.decoding import Decoded, beam_search, greedy, translate_batch
from pipeline.model.seq2seq import Attention, Seq2Seq

# ---- sources


def test_numbers_are_distinct_and_translated_by_num2words():
    from pipeline.data.sources.numbers import NumbersOptions, generate

    table = generate(NumbersOptions(lang="fr", count=50, low=300, high=400, seed=1))
    numbers = table.column("number").to_pylist()
    assert len(set(numbers)) == 50 and all(300 <= n < 400 for n in numbers)  # each number in one row: one split
    row = table.slice(0, 1).to_pylist()[0]
    from num2words import num2words

    assert row["source"] == num2words(row["number"]) and row["target"] == num2words(row["number"], lang="fr")
    assert "three hundred and forty-two" == num2words(342) and num2words(342, lang="fr") == "trois cent quarante-deux"


def test_a_language_num2words_lacks_is_refused_before_anything_runs():
    raw = {"task": "translate", "data": {"source": "numbers", "options": {"lang": "xx"}}}
    with pytest.raises(Exception, match="num2words has no language 'xx'; use one of .*fr"):
        validate(raw)


def _mo(messages: dict) -> bytes:
    """A GNU .mo catalogue (the format msgfmt writes) of {msgid: msgstr}."""
    keys = sorted(messages)
    ids = b"".join(k.encode() + b"\0" for k in keys)
    strs = b"".join(messages[k].encode() + b"\0" for k in keys)
    n, start = len(keys), 28 + 16 * len(keys)
    id_table, str_table, offset = [], [], 0
    for k in keys:
        id_table += [len(k.encode()), start + offset]
        offset += len(k.encode()) + 1
    offset = 0
    for k in keys:
        str_table += [len(messages[k].encode()), start + len(ids) + offset]
        offset += len(messages[k].encode()) + 1
    header = struct.pack("<7I", 0x950412DE, 0, n, 28, 28 + 8 * n, 0, 0)
    return header + struct.pack(f"<{2 * n}I", *id_table) + struct.pack(f"<{2 * n}I", *str_table) + ids + strs


def test_ui_strings_reads_the_singular_messages_of_each_catalogue(tmp_path):
    from pipeline.data.sources import ui_strings

    wheel = tmp_path / "ui_strings" / ui_strings.WHEEL
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(
            "django/conf/locale/fr/LC_MESSAGES/django.mo",
            _mo(
                {
                    "": "Content-Type: text/plain; charset=UTF-8\n",
                    "Change password": "Modifier le mot de passe",
                    "Hello %(name)s": "Bonjour %(name)s",
                    "12": "12",
                    "Empty": "",
                }
            ),
        )
        z.writestr(
            "django/contrib/admin/locale/fr/LC_MESSAGES/djangojs.mo",
            _mo({"menu\x04Change password": "Changer", "Save": "Enregistrer"}),
        )
        z.writestr("django/conf/locale/de/LC_MESSAGES/django.mo", _mo({"Save": "Sichern"}))
    table = ui_strings.generate(ui_strings.UiStringsOptions(lang="fr"), cache_dir=tmp_path)
    pairs = dict(zip(table.column("source").to_pylist(), table.column("target").to_pylist()))
    # the header, an empty translation, a message without letters and a repeated one are left out
    assert pairs == {
        "Change password": "Modifier le mot de passe",
        "Hello %(name)s": "Bonjour %(name)s",
        "Save": "Enregistrer",
    }
    assert set(table.column("catalogue").to_pylist()) == {"conf", "contrib/admin"}
    from pipeline.errors import DataError

    with pytest.raises(DataError, match="Django ships no 'ja' catalogues"):
        ui_strings.generate(ui_strings.UiStringsOptions(lang="ja"), cache_dir=tmp_path)


# ---- tokens and batches


def test_the_target_side_has_bos_and_eos_and_decodes_back_to_the_text():
    from pipeline.data.tokenize import decode_batch, encode_texts

    texts = ["trois cent quarante-deux", "deux mille neuf"]
    for kind in ("bpe", "char"):
        info = fit_tokenizer([texts * 5], kind=kind, vocab_size=80, lowercase=True, max_tokens=40, decoder_side=True)
        ids, _ = encode_texts(texts, info)
        rows = [[BOS_ID, *i, EOS_ID, PAD_ID] for i in ids.to_pylist()]
        assert decode_batch(rows, info) == texts  # specials and padding dropped, spaces and hyphens restored


def test_teacher_forcing_shifts_the_target_by_one_step():
    out = teacher_forcing(pa.table({"y": pa.array([[5, 6, 7], [8]])}), column="y")
    assert out["y_in"].tolist() == [[BOS_ID, 5, 6, 7], [BOS_ID, 8, PAD_ID, PAD_ID]]
    assert out["y"].tolist() == [[5, 6, 7, EOS_ID], [8, EOS_ID, PAD_ID, PAD_ID]]


# ---- the model


@pytest.mark.parametrize("kind", ["general", "additive"])
def test_padding_is_never_attended(kind):
    torch.manual_seed(0)
    att = Attention(kind, query_size=6, key_size=10)
    h_s = torch.randn(2, 5, 10)  # (B, S, D)
    real = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    weights = att(torch.randn(2, 3, 6), att.project(h_s), real)  # (B, T, S)
    assert weights.shape == (2, 3, 5)
    assert torch.all(weights[0, :, 3:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))


@pytest.mark.parametrize("cell", ["lstm", "gru", "cifg"])
def test_what_is_after_a_source_end_does_not_change_the_translation(cell):
    torch.manual_seed(0)
    cfg = ModelConfig(cell=cell, hidden_size=8, embedding_dim=6, bidirectional=cell != "cifg", decoder_hidden_size=12)
    model = Seq2Seq(cfg, source_vocab=20, target_vocab=15).eval()
    x = torch.randint(4, 20, (2, 6, 1)).float()  # (B, S, 1) ids
    lengths = torch.tensor([4, 6])
    y_in = torch.randint(2, 15, (2, 5))
    logits = model(x, lengths, y_in)
    assert logits.shape == (2, 5, 15)
    other = x.clone()
    other[0, 4:] = 7.0  # different tokens past the first source's end
    torch.testing.assert_close(model(other, lengths, y_in), logits)
    # the step-by-step decoder equals the fused teacher-forced pass
    memory, state = model.encode(x, lengths)
    steps = []
    for t in range(5):
        logp, state, _ = model.step(y_in[:, t], state, memory)
        steps.append(logp)
    torch.testing.assert_close(torch.stack(steps, 1), torch.log_softmax(logits, -1), atol=1e-5, rtol=1e-5)


# ---- decoding


class Table:
    """A hand-made decoder: the next token's probabilities depend on the tokens so far."""

    A, B = 4, 5

    def __init__(self, probs: dict[tuple[int, ...], dict[int, float]], vocab: int = 6):
        self.probs, self.vocab = probs, vocab

    def start(self, n):
        return [() for _ in range(n)]

    def step(self, tokens, state):
        state = [s + (int(t),) if int(t) != BOS_ID else s for s, t in zip(state, tokens)]
        logp = torch.full((len(state), self.vocab), -30.0)
        for i, s in enumerate(state):
            for tok, p in self.probs.get(s, {EOS_ID: 1.0}).items():
                logp[i, tok] = float(np.log(p))
        return logp, state, torch.ones(len(state), 1)

    def select(self, state, index):
        return [state[i] for i in index.tolist()]


def test_beam_search_finds_the_likelier_sequence_that_greedy_misses():
    # greedy: A (0.6) then </s> (0.4): 0.24; beam: B (0.4) then </s> (0.9): 0.36
    table = Table(
        {
            (): {Table.A: 0.6, Table.B: 0.4},
            (Table.A,): {EOS_ID: 0.4, Table.A: 0.3, Table.B: 0.3},
            (Table.B,): {EOS_ID: 0.9, Table.A: 0.1},
        }
    )
    assert greedy(table, n=1, max_len=5).tokens == [[Table.A]]
    found = beam_search(table, n=1, beam=2, max_len=5, alpha=0.0)
    assert found.tokens == [[Table.B]] and found.score[0] == pytest.approx(np.log(0.36), abs=1e-5)


def test_the_length_penalty_favours_longer_outputs():
    # "A </s>" 0.5 * 0.5 = 0.25 beats "B B B </s>" 0.5 * 0.45 = 0.225 unless longer outputs are favoured
    table = Table(
        {
            (): {Table.A: 0.5, Table.B: 0.5},
            (Table.A,): {EOS_ID: 0.5, Table.A: 0.3},
            (Table.B,): {Table.B: 1.0},
            (Table.B, Table.B): {Table.B: 1.0},
            (Table.B, Table.B, Table.B): {EOS_ID: 0.45, Table.A: 0.05},
        }
    )
    assert beam_search(table, n=1, beam=3, max_len=6, alpha=0.0).tokens == [[Table.A]]
    assert beam_search(table, n=1, beam=3, max_len=6, alpha=2.0).tokens == [[Table.B] * 3]


def test_beam_one_is_greedy_on_a_model():
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(hidden_size=8, embedding_dim=6), source_vocab=20, target_vocab=12).eval()
    x, lengths = torch.randint(4, 20, (5, 7, 1)).float(), torch.tensor([7, 3, 5, 1, 6])
    one = translate_batch(model, x, lengths, beam=1, max_len=8, alpha=0.0)
    assert isinstance(one, Decoded) and len(one.tokens) == 5
    memory_greedy = greedy(_stepper(model, x, lengths), n=5, max_len=8)
    assert one.tokens == memory_greedy.tokens
    four = translate_batch(model, x, lengths, beam=4, max_len=8, alpha=0.0)
    assert len(four.tokens) == 5 and all(len(t) <= 8 for t in four.tokens)
    assert all(a.shape == (len(t) + 1, 7) for a, t in zip(four.attention, four.tokens))  # one row per output + </s>


def _stepper(model, x, lengths):
    from pipeline.model.decoding import _Encoded

    return _Encoded(model, x, lengths)


# ---- metrics and losses


def test_scores_are_sacrebleus():
    import sacrebleu

    from pipeline.tasks.translate import scores

    hyps = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    refs = ["The dog bit the man.", "It was not unexpected.", "The man bit him first."]
    got = scores(hyps, refs)
    assert got["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert got["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert got["exact_match"] == pytest.approx(1 / 3)
    assert scores(refs, refs) == {"bleu": pytest.approx(100.0), "chrf": pytest.approx(100.0), "exact_match": 1.0}
    # sacrebleu's documented example (README): these hypotheses against two reference streams score 48.53
    second = ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."]
    assert sacrebleu.corpus_bleu(hyps, [refs, second]).score == pytest.approx(48.53, abs=0.01)


def test_test_metrics_compare_with_copying_the_source():
    from pipeline.tasks import DataInfo
    from pipeline.tasks.translate import TranslateInfo, test_metrics

    target = fit_tokenizer(
        [["un deux trois"]], kind="char", vocab_size=50, lowercase=True, max_tokens=20, decoder_side=True
    )
    info = DataInfo(
        task="translate",
        input_size=10,
        output_size=10,
        target="sequence",
        max_len=5,
        task_info=TranslateInfo(target=target, max_target_tokens=5),
    )
    out = {
        "hyp": np.array(["un", "troi"], dtype=object),
        "ref": np.array(["Un", "trois"], dtype=object),
        "src": np.array(["one", "three"], dtype=object),
    }
    m = test_metrics(out, info)
    assert m["test_exact_match"] == 0.5  # "Un" is lowercased as the target tokenizer normalizes it
    assert m["baseline_test_exact_match"] == 0.0 and m["test_chrf"] > m["baseline_test_chrf"]


def test_the_loss_ignores_padding_and_smooths_labels():
    from pipeline.tasks.translate import loss_terms

    pred = torch.randn(2, 3, 7)
    y = torch.tensor([[4, 5, EOS_ID], [6, EOS_ID, PAD_ID]])
    loss, n = loss_terms(pred, y)["loss"]
    assert n == 5
    real = pred[[0, 0, 0, 1, 1], [0, 1, 2, 0, 1]]
    expected = torch.nn.functional.cross_entropy(real, torch.tensor([4, 5, EOS_ID, 6, EOS_ID]), reduction="sum")
    torch.testing.assert_close(loss, expected)
    smooth, _ = loss_terms(pred, y, label_smoothing=0.1)["loss"]
    assert not torch.isclose(smooth, loss)


# ---- config rules


def _translate(**over):
    raw = {"task": "translate", "data": {"source": "numbers", "columns": {"source": "source", "target": "target"}}}
    for key, value in over.items():
        section, name = key.split("__")
        raw.setdefault(section, {})[name] = value
    return raw


def test_the_checkpoint_metric_is_one_the_task_reports_on_validation():
    cfg = validate(_translate(train__checkpoint_metric="val_chrf"))
    from pipeline.tasks import get_task

    assert get_task(cfg.task).metric_mode(cfg.train.checkpoint_metric) == "max"
    with pytest.raises(Exception, match="'val_acuracy' is not a validation metric of task translate; did you mean"):
        validate(_translate(train__checkpoint_metric="val_acuracy"))
    with pytest.raises(Exception, match="'test_r2' is not a validation metric of task regression; use one of val_loss"):
        validate({"train": {"checkpoint_metric": "test_r2"}})


def test_a_translate_config_takes_the_decoder_keys():
    cfg = validate(_translate(model__attention="additive", model__beam_size=2, train__label_smoothing=0.1))
    assert cfg.data.text.tokenizer == "bpe"  # the built-in translation sets default to BPE
    assert cfg.model.decoding["attention"] == "additive" and cfg.model.decoding["beam_size"] == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"task": "classify", "data": {"source": "digits"}, "model": {"beam_size": 3}},
            "model.beam_size is for task: translate",
        ),
        (
            {"task": "regression", "train": {"label_smoothing": 0.1}},
            "train.label_smoothing is for task: translate or classify",
        ),
        ({"task": "regression", "data": {"columns": {"source": "a"}}}, "data.columns.source is for task: translate"),
        (
            _translate(data__text={"tokenizer": "word"}),
            "word does not restore the spaces.*set data.text.tokenizer: bpe",
        ),
        (_translate(model__pooling="mean"), "model.pooling does not apply to translate"),
    ],
)
def test_keys_nothing_reads_are_refused(raw, message):
    with pytest.raises(Exception, match=message):
        validate(raw)
