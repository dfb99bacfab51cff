"""model.peft=lora: only adapters and the head train, checkpoints hold only those (plain
tensors), dl-eval / dl-predict / resume work from them, and merging gives the same net."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from safetensors.torch import load_file

from conftest import run_cli
from test_text import CONFIGS, hub_offline, tiny_bert, train, write_polarity  # noqa: F401

LORA = ["model.peft=lora", "model.lora.r=4", "optimizer.lr=1e-3", "scheduler=none",
        "data.max_length=16", "logger=none", "trainer.deterministic=true"]  # fmt: skip


def overrides(tmp_path: Path, tiny: Path, epochs: int = 2) -> list[str]:
    return ["experiment=rt_polarity_minilm", f"paths.data_dir={tmp_path / 'data'}",
            f"model.name_or_path={tiny}", f"trainer.max_epochs={epochs}", *LORA]  # fmt: skip


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> dict:  # noqa: F811
    base = tmp_path_factory.mktemp("lora")
    write_polarity(base / "data" / "rt-polarity", n=20)
    results = train(base, overrides(base, tiny_bert))
    assert results["status"] == "completed"
    return {"base": base, **results}


def _net(tiny: Path, **kw):
    from dltrain.nets.hf_classifier import HFSequenceClassifier

    torch.manual_seed(0)
    return HFSequenceClassifier(str(tiny), num_labels=2, peft="lora", lora={"r": 4}, **kw)


def test_only_adapters_and_head_train(tiny_bert: Path) -> None:  # noqa: F811
    net = _net(tiny_bert)
    trained = [n for n, p in net.named_parameters() if p.requires_grad]
    assert trained and all("lora_" in n or "classifier" in n for n in trained), trained
    assert any("query.lora_A" in n for n in trained) and any("value.lora_B" in n for n in trained)
    total = sum(p.numel() for p in net.parameters())
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) < 0.1 * total
    # The optimizer sees exactly those.
    grouped = [p for g in net.param_groups() for p in g["params"]]
    assert {id(p) for p in grouped} == {id(p) for p in net.parameters() if p.requires_grad}


def test_checkpoint_holds_what_changed_and_the_frozen_base_is_unchanged(
    lora_run: dict,
    tiny_bert: Path,  # noqa: F811
) -> None:
    ckpt = torch.load(lora_run["best_checkpoint"], weights_only=True)
    keys = [k for k in ckpt["state_dict"] if k.startswith("net.")]
    assert keys and all("lora_" in k or "classifier" in k for k in keys), keys
    assert ckpt["dltrain_config"]["model"]["name_or_path"] == str(tiny_bert)  # the base, named
    base_bytes = (tiny_bert / "model.safetensors").stat().st_size
    assert Path(lora_run["best_checkpoint"]).stat().st_size < base_bytes / 10
    # The rebuilt net's frozen weights are the pretrained folder's, untouched by training.
    from dltrain.checkpointing.checkpoint_io import load_checkpoint
    from dltrain.checkpointing.run_record import rebuild_net

    net, _ = rebuild_net(load_checkpoint(Path(lora_run["best_checkpoint"])), Path("ckpt"))
    pretrained = load_file(tiny_bert / "model.safetensors")
    base = dict(net.model.base_model.model.named_parameters())
    name = "bert.encoder.layer.0.attention.self.query.base_layer.weight"
    assert torch.equal(base[name], pretrained["bert.encoder.layer.0.attention.self.query.weight"])
    lora_b = "net.model.base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.default"
    trained_b = ckpt["state_dict"][f"{lora_b}.weight"]
    assert trained_b.abs().sum() > 0  # LoRA's B starts at zero: it trained


def test_dl_eval_and_dl_predict_score_the_adapters(lora_run: dict) -> None:
    base = lora_run["base"]
    args = [f"ckpt_path={lora_run['best_checkpoint']}", f"hydra.run.dir={base / 'ev'}"]
    env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = run_cli(args, base, "dl-eval", env=env)
    assert done.returncode == 0, done.stderr
    scored = json.loads((base / "ev" / "results.json").read_text())["metrics"]
    assert scored["test/acc"] == pytest.approx(lora_run["metrics"]["test/acc"], abs=1e-6)
    assert scored["test/loss"] == pytest.approx(lora_run["metrics"]["test/loss"], abs=1e-5)

    from dltrain.commands import predict

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="predict", overrides=[
            f"ckpt_path={lora_run['best_checkpoint']}", f"paths.output_dir={base / 'pr'}",
            "text=['wonderful , funny and smart','boring and badly acted']",
            "top_k=2"])  # fmt: skip
    records = predict.run(cfg)
    assert len(records) == 2 and all(len(r["top"]) == 2 for r in records)


def test_resume_from_a_lora_checkpoint_equals_the_uninterrupted_run(
    tmp_path: Path,
    lora_run: dict,
    tiny_bert: Path,  # noqa: F811
    capsys: pytest.CaptureFixture,
) -> None:
    write_polarity(tmp_path / "data" / "rt-polarity", n=20)
    assert train(tmp_path, overrides(tmp_path, tiny_bert, epochs=1))["epochs"] == 1
    # The same run directory, 2 epochs: resume=auto continues from its last.ckpt.
    capsys.readouterr()
    resumed = train(tmp_path, overrides(tmp_path, tiny_bert))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert f"resuming from {last}" in capsys.readouterr().out
    assert resumed["epochs"] == 2
    assert resumed["metrics"] == lora_run["metrics"]


def test_merge_adapters_gives_the_same_outputs_as_one_plain_model(tiny_bert: Path) -> None:  # noqa: F811
    from peft import PeftModel

    from dltrain.nets.lora import merge_adapters

    net = _net(tiny_bert).eval()
    with torch.no_grad():  # adapters away from their zero start, so merging matters
        for name, p in net.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    ids = torch.randint(5, 100, (3, 7))
    x = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    with torch.no_grad():
        before = net(x)
        merged = merge_adapters(net)
        after = merged(x)
    assert not isinstance(merged.model, PeftModel)
    assert not any("lora_" in k for k in merged.state_dict())
    assert "model.bert.embeddings.word_embeddings.weight" in merged.state_dict()  # all weights
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
