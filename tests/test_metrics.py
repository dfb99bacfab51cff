"""Classification metrics beside accuracy (``metrics.test`` / ``metrics.val``): the logged
values equal scikit-learn's on the same predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sklearn.metrics import f1_score, roc_auc_score

from conftest import ROOT, run_cli
from dltrain.commands.train import run
from dltrain.config.targets import DATA_RUNNER

CONFIGS = ROOT / "configs"


def _train(tmp_path: Path, overrides: list[str]) -> dict:
    out = tmp_path / "run"
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"paths.output_dir={out}", *overrides])
    run(cfg)
    return json.loads((out / "results.json").read_text())


@pytest.mark.parametrize("classes", [2, 4])
def test_auroc_and_f1_macro_match_sklearn_on_the_test_predictions(
    tmp_path: Path, classes: int
) -> None:
    data = ["data=synthetic", "data.shape=[1,6,6]", f"data.num_classes={classes}"]
    quiet = ["logger=none", "callbacks.plots=null"]
    results = _train(tmp_path, [*data, "trainer.max_epochs=1", "metrics.val=[auroc]", *quiet])
    metrics = results["metrics"]
    assert "val/auroc" in metrics and "val/f1_macro" not in metrics
    # The same test split and net, scored by scikit-learn.
    ckpt = torch.load(results["best_checkpoint"], weights_only=True)
    stored = OmegaConf.create(ckpt["dltrain_config"])
    # The runner's own data keys (the global batch) are not the data module's arguments.
    data = OmegaConf.to_container(stored.data, resolve=True)
    dm = instantiate({k: v for k, v in data.items() if k not in DATA_RUNNER})
    dm.setup()
    net = instantiate(stored.model)
    net.load_state_dict({k[4:]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")})
    with torch.no_grad():
        probs = net.eval()(dm.normalize(dm.test_set.x)).softmax(-1).double().numpy()
    y = dm.test_set.y.numpy()
    expected = (
        roc_auc_score(y, probs[:, 1])
        if classes == 2
        else roc_auc_score(y, probs, multi_class="ovr", average="macro")
    )
    assert metrics["test/auroc"] == pytest.approx(expected, abs=1e-4)
    f1 = f1_score(y, probs.argmax(1), average="macro")
    assert metrics["test/f1_macro"] == pytest.approx(f1, abs=1e-4)


def test_unknown_metric_name_is_one_clear_line(tmp_path: Path) -> None:
    out = run_cli(["metrics.test=[aucroc]"], cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "error: metrics.test names an unknown metric 'aucroc' (did you mean 'auroc'?) "
        "— use any of: auroc, f1_macro"
    )
