"""What a run shows and leaves: progress lines, config tree, summary, plots, history;
and the commands that read runs back: dl-report and dl-predict."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import pty
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from conftest import ROOT, make_mnist, run_cli
from dltrain.commands.train import run
from dltrain.records.history import read_history, write_history

CONFIGS = ROOT / "configs"
EPOCHS = 3
TINY = [
    "data=mnist",
    "model=mlp",
    "model.hidden=[32]",
    f"trainer.max_epochs={EPOCHS}",
    "data.batch_size=32",
]


def train(run_dir: Path, data_dir: Path, overrides: list[str]) -> str:
    """Train in-process as the CLI would; return what it printed (stdout is no TTY)."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[f"paths.output_dir={run_dir}", f"paths.data_dir={data_dir}", *overrides],
        )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run(cfg)
    return out.getvalue()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One tiny MNIST-format run under <base>/outputs/train/multiruns/<time>/<job>,
    two jobs with different learning rates, laid out as a Hydra multirun."""
    base = tmp_path_factory.mktemp("runs")
    data = make_mnist(base / "data", n_train=200, n_test=50)
    sweep = base / "outputs" / "train" / "multiruns" / "2026-01-01_00-00-00"
    printed = {}
    for job, lr in enumerate(("0.01", "0.0001")):
        overrides = [*TINY, f"optimizer.lr={lr}"]
        run_dir = sweep / str(job)
        printed[job] = train(run_dir, data, overrides)
        # What Hydra writes next to every job: the command-line overrides.
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "overrides.yaml").write_text(
            "".join(f"- {o}\n" for o in [*overrides, f"paths.data_dir={data}"])
        )
    return {"base": base, "data": data, "sweep": sweep, "run": sweep / "0", "out": printed[0]}


def test_log_lines_without_a_terminal(tiny: dict) -> None:
    out = tiny["out"]
    assert "\r" not in out
    lines = out.splitlines()
    assert len(lines) < 60, out  # the tree, one line per epoch, the summary
    epochs = [ln for ln in lines if ln.startswith("epoch ")]
    assert [ln.split(":")[0] for ln in epochs] == [f"epoch {e}" for e in range(EPOCHS)]
    for line in epochs:
        assert "samples/s" in line and "val/acc=" in line
    assert all("eta " in line for line in epochs[:-1])


def test_config_tree_printed_and_saved(tiny: dict) -> None:
    saved = (tiny["run"] / "config_tree.txt").read_text()
    assert saved.splitlines()[0].startswith("config")
    assert "hidden=[32]" in saved and "MLP" in saved and "lr=0.01" in saved
    assert "\x1b[" not in saved  # no colour codes in the file
    assert "hidden=[32]" in tiny["out"]
    assert len(saved.splitlines()) < 45


def test_summary_says_metrics_time_and_places(tiny: dict) -> None:
    out = tiny["out"]
    results = json.loads((tiny["run"] / "results.json").read_text())
    summary = out[out.index("done in ") :]
    assert f"test/acc={results['metrics']['test/acc']:.4f}" in summary
    assert f"val/acc_best={results['metrics']['val/acc_best']:.4f}" in summary
    assert f"{EPOCHS} epochs" in summary
    assert str(tiny["run"]) in summary
    assert (
        "plots/{confusion_matrix.png, learning_curves.png, learning_rate.png, roc.png}" in summary
    )
    assert summary.rstrip().endswith(f"results: {tiny['run'] / 'results.json'}")


def test_plots_and_history_written(tiny: dict) -> None:
    for name in ("learning_curves", "learning_rate", "confusion_matrix", "roc"):
        with Image.open(tiny["run"] / "plots" / f"{name}.png") as image:
            assert image.format == "PNG"
            assert min(image.size) >= 300
    rows = read_history(tiny["run"])
    assert [r["epoch"] for r in rows] == list(range(EPOCHS))
    for row in rows:
        assert {"train/loss", "train/acc", "val/loss", "val/acc", "lr-Adam"} <= set(row)
    assert rows[0]["lr-Adam"] == pytest.approx(0.01)
    # The per-epoch history agrees with the CSV logger's record of the same run.
    from dltrain.records.history import read_metrics_csv

    logged = [r for r in read_metrics_csv(tiny["run"] / "csv" / "metrics.csv") if "val/acc" in r]
    assert [r["val/acc"] for r in logged] == pytest.approx([r["val/acc"] for r in rows])
    assert [r["train/loss"] for r in logged] == pytest.approx([r["train/loss"] for r in rows])


def test_resume_keeps_history_and_redraws(tiny: dict, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(tiny["sweep"] / "1", run_dir)
    (run_dir / "plots" / "learning_curves.png").unlink()
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    overrides = [*TINY, "optimizer.lr=0.0001", f"trainer.max_epochs={EPOCHS + 1}"]
    train(run_dir, tiny["data"], [*overrides, f"ckpt_path={ckpt}"])
    rows = read_history(run_dir)
    assert [r["epoch"] for r in rows] == list(range(EPOCHS + 1))
    assert all("train/loss" in r and "val/acc" in r for r in rows)
    assert (run_dir / "plots" / "learning_curves.png").is_file()


def test_report_on_a_multirun(tiny: dict) -> None:
    outputs = tiny["base"] / "outputs"
    out = run_cli([str(outputs), "--sort", "val/acc_best"], cwd=tiny["base"], cmd="dl-report")
    assert out.returncode == 0, out.stderr
    table = out.stdout
    assert "2 runs, sorted by val/acc_best" in table
    accs = [
        json.loads((tiny["sweep"] / j / "results.json").read_text())["metrics"]["val/acc_best"]
        for j in ("0", "1")
    ]
    label = "train/multiruns/2026-01-01_00-00-00/{}"
    order = [label.format(j) for j in (("0", "1") if accs[0] >= accs[1] else ("1", "0"))]
    assert table.index(order[0]) < table.index(order[1])
    # Only what differs between the runs is shown as their overrides.
    assert "optimizer.lr=0.01" in table and "model.hidden" not in table
    report = (outputs / "report.md").read_text()
    assert "| run | status | overrides | val/acc_best |" in report
    assert f"| {order[0]} | completed | optimizer.lr=" in report
    assert "![learning curves of the runs above](report_curves.png)" in report
    with Image.open(outputs / "report_curves.png") as image:
        assert image.format == "PNG"


def test_report_on_a_sweep_summary(tiny: dict, tmp_path: Path) -> None:
    """A sweep's trials: states from sweep_summary.json, metrics from their run dirs."""
    sweep = tmp_path / "sweep"
    shutil.copytree(tiny["sweep"] / "0", sweep / "0")
    trials = [
        {"number": 0, "state": "COMPLETE", "value": 0.9, "params": {"optimizer.lr": 0.01},
         "epochs": 3, "duration_s": 4.0, "run_dir": str(sweep / "0"), "reason": None},
        {"number": 1, "state": "PRUNED", "value": None, "params": {"optimizer.lr": 0.5},
         "epochs": 1, "duration_s": 1.5, "run_dir": str(sweep / "1"), "reason": None},
    ]  # fmt: skip
    summary = {"study_name": "s", "direction": "maximize", "optimized_metric": "val/acc_best",
               "best_trial": 0, "best_value": 0.9, "counts": {}, "trials": trials}  # fmt: skip
    (sweep / "sweep_summary.json").write_text(json.dumps(summary))
    # The pruned trial's run dir: no metrics in results.json, its epochs in history.json.
    (sweep / "1").mkdir()
    (sweep / "1" / "results.json").write_text(json.dumps({"status": "pruned"}))
    write_history(sweep / "1", [{"epoch": 0, "val/acc": 0.25, "val/acc_best": 0.25}])
    out = run_cli([str(sweep), "--sort", "val/acc_best"], cwd=tmp_path, cmd="dl-report")
    assert out.returncode == 0, out.stderr
    assert "┃ run " in out.stdout and " trial ┃" in out.stdout
    first, second = [ln for ln in out.stdout.splitlines() if "│" in ln]
    assert " 0 " in first and "completed" in first
    assert " 1 " in second and "pruned" in second and "optimizer.lr=0.5" in second
    assert "0.2500" in second
    assert "1.5s" in second
    assert (sweep / "report.md").is_file()


def test_report_without_runs_is_a_clear_error(tmp_path: Path) -> None:
    out = run_cli([str(tmp_path)], cwd=tmp_path, cmd="dl-report")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"error: no runs found under {tmp_path} — pass directories that dl-train wrote "
        "(they hold results.json or .hydra/)"
    )


def test_predict_matches_the_trained_model(tiny: dict, tmp_path: Path) -> None:
    """PNGs of test images: dl-predict gives the probabilities the model gives them
    in training's own pipeline (same decoding, size and normalisation)."""
    from dltrain.checkpointing.checkpoint_io import load_checkpoint
    from dltrain.data.sources.mnist import MNISTDataModule

    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    dm = MNISTDataModule(data_dir=tiny["data"], shape=[1, 28, 28], num_classes=10)
    dm.setup()
    x = dm.test_set.x[:5]
    for i, img in enumerate(x):
        folder = images / "sub" if i >= 3 else images
        Image.fromarray(img[0].numpy().astype(np.uint8)).save(folder / f"img{i}.png")
    ckpt = tiny["run"] / "checkpoints" / "last.ckpt"
    out = run_cli([f"ckpt_path={ckpt}", f"inputs={images}", "top_k=2"], cwd=tmp_path,
                  cmd="dl-predict")  # fmt: skip
    assert out.returncode == 0, out.stderr

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    state = load_checkpoint(ckpt)
    net = instantiate(OmegaConf.create(state["dltrain_config"]).model)
    net.load_state_dict({k[4:]: v for k, v in state["state_dict"].items() if k[:4] == "net."})
    with torch.no_grad():
        want = net.eval()(dm.normalize(x)).softmax(-1)

    run_dir = next((tmp_path / "outputs" / "predict" / "runs").iterdir())
    with (run_dir / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 * 2
    got = json.loads((run_dir / "predictions.json").read_text())["predictions"]
    names = [Path(p["input"]).name for p in got]
    assert names == ["img0.png", "img1.png", "img2.png", "img3.png", "img4.png"]
    for i, pred in enumerate(got):
        top = want[i].topk(2)
        assert [t["class"] for t in pred["top"]] == top.indices.tolist()
        assert [t["prob"] for t in pred["top"]] == pytest.approx(top.values.tolist(), abs=1e-5)
    first = f"{images / 'img0.png'}: {got[0]['top'][0]['name']} ({got[0]['top'][0]['prob']:.3f})"
    assert first in out.stdout


def test_predict_inputs_errors(tmp_path: Path) -> None:
    from dltrain.commands.predict import find_images
    from dltrain.errors import DataError

    with pytest.raises(DataError) as missing:
        find_images(str(tmp_path / "nowhere.png"))
    assert str(missing.value) == (
        f"input {tmp_path / 'nowhere.png'} does not exist — "
        "pass an image file, a folder, or a list [a,b]"
    )
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"no \.png/\.jpg/\.jpeg images in"):
        find_images(str(tmp_path))


def test_rich_bar_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With stdout on a (pseudo-)terminal the rich bar shows samples/s and time left;
    no per-epoch log lines."""
    primary, secondary = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:  # keep the terminal's buffer from filling up
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    monkeypatch.setenv("COLUMNS", "160")
    terminal = os.fdopen(secondary, "w", buffering=1)
    data = make_mnist(tmp_path / "data", n_train=160, n_test=10)
    overrides = [*TINY, "trainer.max_epochs=2", "logger=none", "data.batch_size=16"]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                f"paths.output_dir={tmp_path / 'run'}",
                f"paths.data_dir={data}",
                *overrides,
            ],
        )
    try:
        with contextlib.redirect_stdout(terminal):
            assert sys.stdout.isatty()
            run(cfg)
    finally:
        terminal.close()
        reader.join(timeout=10)
        os.close(primary)
    text = b"".join(chunks).decode(errors="replace")
    assert "samples/s" in text and "Epoch 1/1" in text
    assert "0:00:0" in text  # elapsed • remaining
    assert "\nepoch 0:" not in text
    assert "test/acc=" in text
