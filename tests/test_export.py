"""dl-export: every built-in net family (and a user's own) exports to ONNX and ONNX
Runtime reproduces the checkpoint's logits (max abs difference <= 1e-4) on the samples,
at a batch size other than the one exported; a net with an op ONNX lacks fails with one
line naming the op and its layer; int8 quantization, pt2 and safetensors round trips;
the real commands end to end (``dl-train`` -> ``dl-export`` -> onnxruntime).

The family cases build nets directly from their configs (tiny sizes) and hand the
exporter their test split as a data module would: the exporter is the thing under test,
training is not needed for parity.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from hydra.utils import instantiate
from torch import Tensor, nn

from conftest import run_cli
from dltrain.errors import RunError
from dltrain.export.card import ExportCard, InputSpec, Normalization
from dltrain.export.folder import PARITY_TOL, Request, export
from dltrain.export.source import Source

TAB = {"numeric": 4, "categories": [5, 3]}


class SplitBatches:
    """A test split in batches, as a data module's test loader and transfer hook give it."""

    def __init__(self, x: Tensor | dict[str, Tensor], y: Tensor, batch: int = 4) -> None:
        self.x, self.y, self.batch = x, y, batch

    def test_dataloader(self) -> Iterator[tuple[Any, Tensor]]:
        for i in range(0, len(self.y), self.batch):
            part = slice(i, i + self.batch)
            if isinstance(self.x, dict):
                yield {k: v[part] for k, v in self.x.items()}, self.y[part]
            else:
                yield self.x[part], self.y[part]

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return batch


class OwnNet(nn.Module):
    """A user's net: not a dl-train class, no ``takes`` attribute (its data says)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GELU(), nn.Flatten())
        self.head = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x).tanh())


class EigNet(nn.Module):
    """Eigenvalues in the forward pass: ONNX has no op for them."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.spectrum = Spectrum()

    def forward(self, x: Tensor) -> Tensor:
        return self.spectrum(self.proj(x).view(-1, 2, 2))


class Spectrum(nn.Module):
    def forward(self, m: Tensor) -> Tensor:
        return torch.linalg.eigvalsh(m @ m.transpose(1, 2))


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random-init BERT-like encoder saved as a local folder (nothing from the Hub)."""
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    config = BertConfig(
        vocab_size=60,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return str(folder)


def _images(c: int, h: int, w: int) -> Tensor:
    return torch.randn(10, c, h, w)


def _text() -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 60, (10, 12), generator=gen)
    lengths = torch.tensor([12, 3, 7, 12, 1, 9, 5, 12, 2, 8])
    mask = (torch.arange(12) < lengths[:, None]).long()
    return {"input_ids": ids * mask, "attention_mask": mask}


def _table() -> Tensor:
    gen = torch.Generator().manual_seed(0)
    codes = torch.stack([torch.randint(0, 5, (10,), generator=gen),
                         torch.randint(0, 3, (10,), generator=gen)], 1)  # fmt: skip
    return torch.cat([torch.randn(10, 4, generator=gen), codes.float()], 1)


FAMILIES: dict[str, tuple[dict[str, Any], str]] = {
    "mlp": ({"_target_": "dltrain.nets.mlp.MLP", "in_shape": [1, 8, 8], "hidden": [16]}, "img1"),
    "cnn": ({"_target_": "dltrain.nets.cnn.CNN", "in_shape": [1, 8, 8], "channels": [4, 8],
             "hidden": 8}, "img1"),  # fmt: skip
    "resnet": ({"_target_": "dltrain.nets.resnet.ResNet", "in_shape": [3, 16, 16],
                "small_input": True}, "img3"),  # fmt: skip
    "vit": ({"_target_": "dltrain.nets.vit.ViT", "in_shape": [1, 8, 8], "patch_size": 4,
             "width": 16, "depth": 1, "heads": 2}, "img1"),  # fmt: skip
    "cnn1d": ({"_target_": "dltrain.nets.cnn1d.CNN1D", "in_shape": [1, 20],
               "channels": [4, 8]}, "seq"),  # fmt: skip
    "gru": ({"_target_": "dltrain.nets.rnn.GRU", "in_shape": [1, 20], "hidden": 8}, "seq"),
    "lstm": ({"_target_": "dltrain.nets.rnn.LSTM", "in_shape": [1, 20], "hidden": 8,
              "bidirectional": True}, "seq"),  # fmt: skip
    "transformer_seq": ({"_target_": "dltrain.nets.transformer_seq.SequenceTransformer",
                         "in_shape": [1, 20], "width": 16, "depth": 1,
                         "heads": 2}, "seq"),  # fmt: skip
    "textcnn": ({"_target_": "dltrain.nets.textcnn.TextCNN", "vocab_size": 60,
                 "embed_dim": 8, "channels": 4}, "text"),  # fmt: skip
    "hf_classifier": ({"_target_": "dltrain.nets.hf_classifier.HFSequenceClassifier"}, "text"),
    "ft_transformer": ({"_target_": "dltrain.nets.ft_transformer.FTTransformer",
                        "in_shape": [6], "tabular": TAB, "d_token": 8, "n_blocks": 1,
                        "heads": 2}, "table"),  # fmt: skip
    "tabular_mlp": ({"_target_": "dltrain.nets.mlp.MLP", "in_shape": [6], "hidden": [8],
                     "tabular": TAB}, "table"),  # fmt: skip
}


def _net(name: str, tiny_bert: str) -> nn.Module:
    cfg, _ = FAMILIES[name]
    if name == "hf_classifier":
        return instantiate({**cfg, "name_or_path": tiny_bert, "num_labels": 3}).eval()
    return instantiate({**cfg, "num_classes": 3}).eval()


def _source(net: nn.Module, data: str) -> Source:
    """The net with a test split of the kind it takes, described as ``describe`` would."""
    x: Tensor | dict[str, Tensor]
    if data == "text":
        x, kind = _text(), "text"
        spec = InputSpec(kind, [], max_length=12, pad_id=0, tokenizer="tokenizer.json")
    elif data == "table":
        x, kind = _table(), "table"
        spec = InputSpec(kind, [], preprocessing={"task": "classification"})
    else:
        x = {"img1": lambda: _images(1, 8, 8), "img3": lambda: _images(3, 16, 16),
             "seq": lambda: torch.randn(10, 1, 20)}[data]()  # fmt: skip
        kind = "sequence" if data == "seq" else "image"
        shape = list(x.shape[1:])
        norm = Normalization(255.0, [0.5] * shape[0], [0.25] * shape[0])
        spec = InputSpec(kind, [], shape=shape, stored_shape=shape, normalization=norm)
    y = torch.arange(10) % 3
    return Source(net, SplitBatches(x, y), kind, "classification", ["a", "b", "c"], spec)


def _check_folder(folder: Path, net: nn.Module) -> ExportCard:
    """ONNX Runtime on the samples, at batch sizes 1 and n+2, against the net itself."""
    card = ExportCard.read(folder)
    samples = np.load(folder / card.samples, allow_pickle=False)
    names = [t.name for t in card.input.tensors]
    sess = ort.InferenceSession(str(folder / card.model_file), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == names
    feeds = {k: samples[k] for k in names}
    bigger = {k: np.concatenate([v, v[:2]]) for k, v in feeds.items()}
    for inputs in ({k: v[:1] for k, v in feeds.items()}, bigger):
        got = sess.run(None, inputs)[0]
        torch_in = {k: torch.from_numpy(v) for k, v in inputs.items()}
        with torch.inference_mode():
            want = net(torch_in if "input_ids" in torch_in else torch_in["x"]).numpy()
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= PARITY_TOL
    assert np.abs(sess.run(None, feeds)[0] - samples["expected"]).max() <= PARITY_TOL
    return card


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_exports_to_onnx_with_parity(
    family: str, tiny_bert: str, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    net = _net(family, tiny_bert)
    source = _source(net, FAMILIES[family][1])
    (folder,) = export(source, tmp_path, Request(format="onnx", samples=6))
    assert folder == tmp_path / "onnx"
    card = _check_folder(folder, net)
    assert card.parity_max_abs_diff is not None and card.parity_max_abs_diff <= PARITY_TOL
    assert card.input.tensors[0].shape[0] == "batch"
    # The file's own score on the split equals the net's (same argmax on every row).
    with torch.inference_mode():
        right = sum(int((net(x).argmax(1) == y).sum()) for x, y in source.test_batches())
    assert card.export_metrics == {"test/acc": right / 10}
    if source.kind == "text":  # the exported text length is dynamic; TextCNN bounds it
        assert card.input.tensors[0].shape == ["batch", "sequence"]
        assert card.input.min_length == (6 if family == "textcnn" else 2)
    assert (folder / "MODEL_CARD.md").read_text().startswith(f"# Model card: {type(net).__name__}")


def test_a_users_own_net_exports_with_parity(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = OwnNet().eval()
    (folder,) = export(_source(net, "img1"), tmp_path, Request(format="onnx"))
    card = _check_folder(folder, net)
    assert card.net == f"{__name__}.OwnNet"
    assert card.input.normalization == Normalization(255.0, [0.5], [0.25], baked=False)


def test_an_op_onnx_lacks_fails_naming_the_op_and_the_layer(tmp_path: Path) -> None:
    source = _source(EigNet().eval(), "img1")
    source.datamodule = SplitBatches(torch.randn(4, 4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(RunError) as caught:
        export(source, tmp_path, Request(format="onnx"))
    assert str(caught.value) == (
        "cannot convert EigNet to ONNX: op aten._linalg_eigh in layer spectrum (Spectrum) "
        "has no ONNX conversion — replace that op in the net, or export format=pt2 / "
        "format=safetensors"
    )
    assert not (tmp_path / "onnx" / "card.json").exists()


def test_int8_pt2_and_safetensors_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = _net("mlp", "")
    source = _source(net, "img1")
    fp32, int8 = export(source, tmp_path, Request(format="onnx", quantize="int8"))
    card = ExportCard.read(int8)
    assert int8 == tmp_path / "onnx-int8" and card.quantized == "int8"
    assert (int8 / "model.onnx").stat().st_size < (fp32 / "model.onnx").stat().st_size
    assert set(card.export_metrics) == {"test/acc"} and card.parity_max_abs_diff < 0.1
    x = source.samples(10)[0]
    with torch.inference_mode():
        want = net(x)
    (pt2,) = export(source, tmp_path, Request(format="pt2", score=False))
    program = torch.export.load(str(pt2 / "model.pt2"))
    assert torch.allclose(program.module()(x), want, atol=1e-5)
    (st,) = export(source, tmp_path, Request(format="safetensors", config={"model": {
        **FAMILIES["mlp"][0], "num_classes": 3}}))  # fmt: skip
    from omegaconf import OmegaConf
    from safetensors.torch import load_file

    again = instantiate(OmegaConf.load(st / "model.yaml"))
    again.load_state_dict(load_file(st / "model.safetensors"))
    with torch.inference_mode():
        assert torch.equal(again.eval()(x), want)
    assert ExportCard.read(st).format == "safetensors"


def test_dl_train_then_dl_export_then_onnxruntime(tmp_path: Path) -> None:
    """The commands as a user runs them: digits, a CNN, one epoch; int8 alongside."""
    out = run_cli(["model=cnn", "trainer.max_epochs=1", "logger=none"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (run,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    ckpt = run / "checkpoints" / "last.ckpt"
    out = run_cli([f"ckpt_path={ckpt}", "quantize=int8"], cwd=tmp_path, cmd="dl-export")
    assert out.returncode == 0, out.stderr
    fp32, int8 = run / "export" / "onnx", run / "export" / "onnx-int8"
    assert f"export: {fp32}  test/acc=" in out.stdout and f"export: {int8}" in out.stdout
    card = json.loads((fp32 / "card.json").read_text())
    results = json.loads((run / "results.json").read_text())
    # The run's own test accuracy, and the ONNX file's on the same rows, agree.
    assert card["metrics"]["test/acc"] == pytest.approx(results["metrics"]["test/acc"])
    assert card["export_metrics"]["test/acc"] == pytest.approx(card["metrics"]["test/acc"])
    assert card["input"]["normalization"]["scale"] == 16.0  # digits store 0..16
    assert card["config"]["model"]["_target_"] == "dltrain.nets.cnn.CNN"
    assert card["checkpoint"] == str(ckpt)
    samples = np.load(fp32 / "samples.npz", allow_pickle=False)
    assert samples["x"].shape == (8, 1, 8, 8) and samples["target"].dtype == np.int64
    sess = ort.InferenceSession(str(fp32 / "model.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(sess.run(None, {"x": samples["x"]})[0] - samples["expected"]).max() <= 1e-4
    int8_card = json.loads((int8 / "card.json").read_text())
    assert int8_card["quantized"] == "int8"
    assert abs(int8_card["export_metrics"]["test/acc"] - card["export_metrics"]["test/acc"]) < 0.05


def test_dl_export_of_a_users_net_with_an_op_onnx_lacks(tmp_path: Path) -> None:
    """One line on stderr naming the op and the layer; exit 1; no export folder."""
    (tmp_path / "eignet.py").write_text(
        "import torch\nfrom torch import nn\n\n\n"
        "class Spectrum(nn.Module):\n"
        "    def forward(self, m):\n"
        "        return torch.linalg.eigvalsh(m @ m.transpose(1, 2))\n\n\n"
        "class EigNet(nn.Module):\n"
        "    def __init__(self, in_shape, num_classes):\n"
        "        super().__init__()\n"
        "        self.proj = nn.Linear(64, 4)\n"
        "        self.spectrum = Spectrum()\n"
        "        self.out = nn.Linear(2, num_classes)\n\n"
        "    def forward(self, x):\n"
        "        return self.out(self.spectrum(self.proj(x.flatten(1)).view(-1, 2, 2)))\n"
    )
    (tmp_path / "configs" / "model").mkdir(parents=True)
    (tmp_path / "configs" / "model" / "eignet.yaml").write_text(
        "_target_: eignet.EigNet\nin_shape: ${data.shape}\nnum_classes: ${data.num_classes}\n"
    )
    out = run_cli(["model=eignet", "debug=fast", "logger=none"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (run,) = (tmp_path / "outputs" / "debug" / "runs").iterdir()
    out = run_cli([f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"], cwd=tmp_path,
                  cmd="dl-export")  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "error: cannot convert EigNet to ONNX: op aten._linalg_eigh in layer spectrum "
        "(Spectrum) has no ONNX conversion — replace that op in the net, or export "
        "format=pt2 / format=safetensors"
    ]
    assert not (run / "export" / "onnx" / "model.onnx").exists()


def test_a_text_export_carries_the_tokenizer_that_made_its_ids(tmp_path: Path) -> None:
    """Real text data (word-level tokenizer trained on the files): the folder's
    tokenizer.json, used as a predictor uses it, gives the ids stored in samples.npz."""
    from tokenizers import Tokenizer

    from dltrain.data.sources.text_files import TextFilesDataModule
    from dltrain.data.sources.tokenizers import WordLevelTokenizer
    from dltrain.export.source import describe
    from dltrain.nets.textcnn import TextCNN

    words = ["good", "bad", "film", "plot", "great", "dull", "the", "a", "was", "very"]
    rng = np.random.default_rng(0)
    texts = {}
    for name in ("neg", "pos"):
        lines = [" ".join(rng.choice(words, rng.integers(2, 9))) for _ in range(30)]
        texts[name] = lines
        (tmp_path / f"r.{name}").write_text("\n".join(lines) + "\n")
    dm = TextFilesDataModule(
        files=[str(tmp_path / "r.neg"), str(tmp_path / "r.pos")], tokenizer=WordLevelTokenizer(),
        num_classes=2, max_length=6, test_fraction=0.2, eval_batch_size=5,
    )  # fmt: skip
    dm.setup("test")
    torch.manual_seed(0)
    net = TextCNN(vocab_size=20, num_classes=2, embed_dim=8, channels=4).eval()
    source = describe(net, dm, {"dltrain_data": dm.prediction_state()}, None)
    (folder,) = export(source, tmp_path / "export", Request(format="onnx", samples=4))
    card = _check_folder(folder, net)
    assert card.labels == ["r.neg", "r.pos"] or card.labels == ["neg", "pos"]
    assert (card.input.kind, card.input.max_length, card.input.pad_id) == ("text", 6, 0)
    assert card.input.tokenizer == "tokenizer.json" and card.input.min_length == 6
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_truncation(card.input.max_length)
    samples = np.load(folder / "samples.npz")
    ids, mask = samples["input_ids"], samples["attention_mask"]
    every = texts["neg"] + texts["pos"]
    for row, keep in zip(ids, mask, strict=True):
        real = row[keep.astype(bool)].tolist()
        assert any(tok.encode(t).ids == real for t in every), real


def test_a_table_export_carries_the_fitted_preprocessing(tmp_path: Path) -> None:
    """Real table data: the card holds the fitted preprocessing as plain JSON (row keys
    left out), and samples.npz the matrix the data module made of the test rows."""
    import pandas as pd

    from dltrain.data.sources.tabular import TabularDataModule
    from dltrain.export.source import describe

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, 60).astype(float), "income": rng.normal(50, 10, 60),
        "city": rng.choice(["oslo", "rome", "lima"], 60), "label": rng.choice(["no", "yes"], 60),
    })  # fmt: skip
    frame.loc[3, "income"] = np.nan
    frame.to_csv(tmp_path / "t.csv", index=False)
    dm = TabularDataModule(path=str(tmp_path / "t.csv"), target="label", eval_batch_size=5)
    state = dm.prepare_table(None)
    dm.setup("test")
    table = state.to_dict()
    torch.manual_seed(0)
    net = instantiate({**FAMILIES["tabular_mlp"][0], "in_shape": [state.width],
                       "tabular": state.feature_spec(), "num_classes": 2}).eval()  # fmt: skip
    source = describe(net, dm, {}, table)
    (folder,) = export(source, tmp_path / "export", Request(format="onnx", samples=5))
    card = _check_folder(folder, net)
    raw = json.loads((folder / "card.json").read_text())["input"]["preprocessing"]
    assert raw == json.loads(json.dumps({k: v for k, v in table.items() if k != "split"}))
    assert (card.task, card.labels, card.input.kind) == ("classification", ["no", "yes"], "table")
    assert np.array_equal(np.load(folder / "samples.npz")["x"], dm.test_set.x[:5].numpy())


# LightGBM differs only in the file written (its text model): slow, xgboost is its twin.
@pytest.mark.parametrize("library", ["xgboost", pytest.param("lightgbm", marks=pytest.mark.slow)])
def test_boosted_trees_export_in_their_boosters_own_format(tmp_path: Path, library: str) -> None:
    """dl-train -> dl-export format=booster: the booster alone loads the file and gives
    the stored outputs on the stored samples; format=pt2 is refused in one line."""
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = {"a": rng.normal(size=200), "b": rng.choice(["x", "y", "z"], 200),
             "y": rng.choice(["lo", "hi"], 200)}  # fmt: skip
    pd.DataFrame(frame).to_csv(tmp_path / "t.csv", index=False)
    data = ["data=tabular", "data.path=t.csv", "data.target=y", "threads=1", "logger=none"]
    out = run_cli([*data, f"model={library}", "model.n_estimators=5"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    (run,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    ckpt = run / "checkpoints" / "model.ckpt"
    out = run_cli([f"ckpt_path={ckpt}", "format=pt2"], tmp_path, cmd="dl-export")
    assert out.returncode == 2 and out.stderr.strip() == (
        "error: boosted trees export in their booster's own format, not format=pt2 — "
        "use format=booster (XGBoost JSON / LightGBM text)"
    )
    out = run_cli([f"ckpt_path={ckpt}", "format=booster"], tmp_path, cmd="dl-export")
    assert out.returncode == 0, out.stderr[-2000:]
    folder = run / "export" / "booster"
    card = ExportCard.read(folder)
    assert (card.format, card.labels, card.output.name) == (library, ["hi", "lo"], "probabilities")
    assert card.input.preprocessing is not None and "split" not in card.input.preprocessing
    samples = np.load(folder / "samples.npz")
    if library == "xgboost":
        import xgboost as xgb

        booster = xgb.Booster(model_file=str(folder / "model.json"))
        dm = xgb.DMatrix(samples["x"], feature_types=booster.feature_types, enable_categorical=True)
        positive = booster.predict(dm)
    else:
        import lightgbm as lgb

        positive = lgb.Booster(model_file=str(folder / "model.txt")).predict(samples["x"])
    assert np.allclose(positive, samples["expected"][:, 1], atol=1e-6)
    results = json.loads((run / "results.json").read_text())
    assert card.export_metrics["test/acc"] == pytest.approx(results["metrics"]["test/acc"])


def test_int8_of_a_transformer_leaves_nothing_in_the_working_folder(
    tiny_bert: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ONNX Runtime's shape inference cannot finish on a BERT graph's symbolic lengths and
    # then saves its partial model into the working directory, which is the user's.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    torch.manual_seed(0)
    net = _net("hf_classifier", tiny_bert)
    request = Request(format="onnx", quantize="int8")
    _, int8 = export(_source(net, "text"), tmp_path / "out", request)
    assert sorted(p.name for p in cwd.iterdir()) == []
    assert sorted(p.name for p in int8.iterdir()) == [
        "MODEL_CARD.md", "card.json", "model.onnx", "samples.npz"]  # fmt: skip
