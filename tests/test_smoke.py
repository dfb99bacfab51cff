"""``dl-smoke``: every experiment in one process (or in warm workers forked from it), each
as if in its own, and green offline with synthetic stand-ins for absent data and weights
(commands/smoke*.py, data/sources/stand_in.py)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import make_cifar10, run_cli
from dltrain.config.paths import CONFIG_DIR
from dltrain.errors import DataError

# ---- one process, runs isolated ----------------------------------------------------------

PROBE = '''
"""A linear net that records the process state it was built in, and may change it."""
import gc, json, logging, os, signal, warnings
from pathlib import Path

import torch
from torch import nn


def process_state() -> dict:
    root = logging.getLogger()
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "cwd": os.getcwd(),
        "matmul_precision": torch.get_float32_matmul_precision(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "threads": torch.get_num_threads(),
        "leak": os.environ.get("PROBE_LEAK"),
        "cublas": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "sigusr2_default": signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL,
        "warning_filters": len(warnings.filters),
        "probe_logger_level": logging.getLogger("probe").level,
        "root_handlers": len(root.handlers),
        "gc": gc.isenabled(),
        "seed": torch.initial_seed(),
        "log_files": [h.baseFilename for h in root.handlers if hasattr(h, "baseFilename")],
    }


class Probe(nn.Module):
    def __init__(
        self, in_shape: list[int], num_classes: int, record: str, change: bool = False,
        die: bool = False,
    ):
        super().__init__()
        Path(record).write_text(json.dumps(process_state()))
        if die:  # a crash in native code, or the out-of-memory killer
            os.kill(os.getpid(), signal.SIGKILL)
        if change:  # what a user's code (or a library) might do to the process
            torch.set_float32_matmul_precision("medium")
            torch.set_num_threads(torch.get_num_threads() + 1)
            os.environ["PROBE_LEAK"] = "1"
            signal.signal(signal.SIGUSR2, lambda *_: None)
            warnings.filterwarnings("error", message="probe")
            logging.getLogger("probe").setLevel(logging.ERROR)
        self.fc = nn.Linear(in_shape[0], num_classes)

    def forward(self, x):
        return self.fc(x)
'''

MODEL = """\
_target_: probe.Probe
in_shape: ${data.shape}
num_classes: ${data.num_classes}
record: ${paths.output_dir}/probe.json
change: false
die: false
"""


def experiment(model: str, seed: int, extra: str = "") -> str:
    return f"""\
# @package _global_
defaults:
  - override /data: synthetic
  - override /model: {model}
  - override /logger: none
seed: {seed}
data:
  shape: [6]
  num_classes: 3
  num_train: 64
  num_test: 32
  batch_size: 16
{extra}"""


def probe_project(root: Path) -> Path:
    """A project folder with the probe net and its experiments: one changes the process
    state, one is broken, one kills its process, one records the state it starts in."""
    (root / "configs" / "model").mkdir(parents=True)
    (root / "configs" / "experiment").mkdir()
    (root / "probe.py").write_text(PROBE)
    (root / "configs" / "model" / "probe.yaml").write_text(MODEL)
    (root / "configs" / "model" / "probe_typo.yaml").write_text(
        MODEL.replace("probe.Probe", "probe.Probee")
    )
    experiments = root / "configs" / "experiment"
    changes = "model:\n  change: true\ntrainer:\n  deterministic: true\n"
    (experiments / "a_changes.yaml").write_text(experiment("probe", 7, changes))
    (experiments / "b_broken.yaml").write_text(experiment("probe_typo", 8))
    (experiments / "b_dies.yaml").write_text(experiment("probe", 9, "model:\n  die: true\n"))
    (experiments / "c_reads.yaml").write_text(experiment("probe", 11))
    (root / "no-data").mkdir()
    return root


@pytest.fixture(scope="module")
def smoked(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    """One ``dl-smoke --jobs 1`` (every run in its own process) in a project folder: its
    experiments and three built-ins whose data and weights are absent; run directories
    under ``<project>/smoke``."""
    root = probe_project(tmp_path_factory.mktemp("proj"))
    names = ["a_changes", "b_broken", "imdb_bert", "finetune_resnet_folder",
             "rt_polarity_textcnn_distilled", "c_reads"]  # fmt: skip
    # Small batches: the rows and the wiring are the same at the experiments' own sizes.
    small = ["data.batch_size=4", "data.eval_batch_size=4", "logger=none"]
    args = ["--out", str(root / "smoke"), "--jobs", "1", *names,
            f"paths.data_dir={root / 'no-data'}", *small]  # fmt: skip
    return run_cli(args, root, "dl-smoke"), root / "smoke"


ROW = re.compile(r"(\S+)\s+(built-in|project)\s+(pass(?: \([^)]*\))?|FAIL)\s+[\d.]+\s*(.*)")


def rows(stdout: str) -> dict[str, tuple[str, str, str]]:
    """The table's rows by experiment: (from, result, error / stand-ins)."""
    found = (ROW.fullmatch(ln) for ln in stdout.splitlines())
    return {m[1]: (m[2], m[3], m[4]) for m in found if m}


def test_dl_smoke_runs_every_experiment_in_one_process_and_none_inherits_another(
    smoked: tuple[subprocess.CompletedProcess, Path],
) -> None:
    done, out = smoked
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "5 of 6 passed"
    table = rows(done.stdout)
    assert [table[n][:2] for n in ("a_changes", "b_broken", "c_reads")] == [
        ("project", "pass"),
        ("project", "FAIL"),
        ("project", "pass"),
    ]
    assert table["b_broken"][2] == (
        "error: cannot import probe.Probee (probe has no attribute 'Probee') — "
        "check the _target_ spelling (did you mean 'Probe'?)"
    )
    # Each run its own directory, its own results and log file.
    for name, seed in (("a_changes", 7), ("c_reads", 11)):
        results = json.loads((out / name / "results.json").read_text())
        assert (results["status"], results["steps"], results["seed"]) == ("completed", 1, seed)
    a, c = (json.loads((out / n / "probe.json").read_text()) for n in ("a_changes", "c_reads"))
    assert [Path(f).parent for f in a.pop("log_files")] == [out / "a_changes"]
    assert [Path(f).parent for f in c.pop("log_files")] == [out / "c_reads"]
    assert (a.pop("seed"), c.pop("seed")) == (7, 11)
    # One process; the last run starts as the first did, after a run that changed torch's
    # settings, the environment, signals, warnings and logging (and Lightning's
    # deterministic=true), a run that failed and two built-ins with stand-ins.
    assert c == a
    assert (a["deterministic"], a["leak"], a["cublas"], a["sigusr2_default"]) == (
        False, None, None, True,
    )  # fmt: skip


def test_dl_smoke_jobs_run_side_by_side_and_a_dying_run_fails_only_its_row(
    tmp_path: Path,
) -> None:
    # Two warm workers forked from dl-smoke; b_dies kills its worker (SIGKILL) and with
    # it the pool: every run it left unfinished runs again alone, b_dies kills that
    # worker too and its row says so; the others pass, each isolated as in one process.
    root = probe_project(tmp_path)
    out = root / "smoke"
    names = ["a_changes", "b_dies", "c_reads"]
    # Hydra's deletion override (``~key``, no "=") reaches every run: no figures drawn.
    args = ["--out", str(out), "--jobs", "2", *names, "logger=none", "~callbacks.plots"]
    done = run_cli(args, root, "dl-smoke")
    assert done.returncode == 1, done.stderr[-3000:]
    table = rows(done.stdout)
    assert list(table) == names  # the table keeps the experiments' order
    assert [table[n][1] for n in names] == ["pass", "FAIL", "pass"]
    assert table["b_dies"][2] == (
        "error: the smoke worker running it died (BrokenProcessPool: A process in the "
        "process pool was terminated abruptly while the future was running or pending.)"
    )
    a, c = (json.loads((out / n / "probe.json").read_text()) for n in ("a_changes", "c_reads"))
    for probe in (a, c):  # in a worker forked from dl-smoke, with its share of the threads
        assert probe["pid"] != probe["ppid"] and probe["threads"] == a["threads"]
    assert (c["deterministic"], c["leak"], c["matmul_precision"]) == (False, None, "highest")
    for name in ("a_changes", "c_reads"):
        results = json.loads((out / name / "results.json").read_text())
        assert (results["status"], results["steps"]) == ("completed", 1)
        assert not (out / name / "plots").exists()


def test_dl_smoke_refuses_no_jobs(tmp_path: Path) -> None:
    done = run_cli(["--jobs", "0", "mnist_speed"], tmp_path, "dl-smoke")
    assert (done.returncode, done.stderr) == (
        2, "error: --jobs 0 runs nothing — pass --jobs 1 or more\n",
    )  # fmt: skip


# ---- absent data and weights -------------------------------------------------------------


def test_dl_smoke_passes_built_ins_offline_with_stand_ins(
    smoked: tuple[subprocess.CompletedProcess, Path],
) -> None:
    done, out = smoked
    table = rows(done.stdout)
    assert table["imdb_bert"][1] == "pass (synthetic data, random weights)"
    assert table["imdb_bert"][2] == (
        "random weights: a small bert config (bert-base-uncased's is not available offline); "
        "HFDatasetDataModule: cannot load dataset 'imdb': the Hub is not reachable (or "
        "HF_HUB_OFFLINE is set) and it is not in the local cache"
    )
    assert table["finetune_resnet_folder"][1] == "pass (synthetic data, random weights)"
    assert table["finetune_resnet_folder"][2] == (
        "data.num_classes=2 assumed; "
        "random weights: resnet18's ImageNet weights are not in torch's hub cache; "
        f"ImageFolderDataModule: image folder {out}/.stand-ins/"
        "finetune_resnet_folder/absent-root does not exist"
    )
    # A distilled student without a teacher: the teacher is a one-batch run of the same
    # experiment (a plain classifier) on the same stand-in texts.
    assert table["rt_polarity_textcnn_distilled"][1] == "pass (synthetic data, random weights)"
    assert table["rt_polarity_textcnn_distilled"][2].startswith(
        "random weights: teacher from a one-batch run of this experiment; "
        "TextFilesDataModule: text file not found: "
    )
    # The stand-in model is the experiment's architecture family, with random weights.
    stood = json.loads((out / ".stand-ins/imdb_bert/hf-model/config.json").read_text())
    assert stood["model_type"] == "bert" and stood["num_hidden_layers"] == 2
    for name in ("imdb_bert", "finetune_resnet_folder", "rt_polarity_textcnn_distilled"):
        results = json.loads((out / name / "results.json").read_text())
        assert (results["status"], results["steps"]) == ("completed", 1)
        # The figures were built from the run's data, none rendered (smoke_plan.py).
        overrides = (out / name / ".hydra/overrides.yaml").read_text()
        assert "- callbacks.plots.render=false" in overrides
        assert not list(out.glob(f"{name}/plots/*.png"))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], ["callbacks.plots.render=false"]),
        (["callbacks.plots.render=true"], []),  # the user's word stands
        (["~callbacks.plots"], []),  # no plots callback: nothing to set
    ],
)
def test_smoke_builds_figures_without_rendering_them(
    tmp_path: Path, overrides: list[str], expected: list[str]
) -> None:
    from dltrain.commands import smoke_plan

    args = ["experiment=mnist_speed", *overrides]
    found = smoke_plan.plan(compose_train(args), tmp_path, args)
    assert [o for o in found.overrides if o.startswith("callbacks.plots")] == expected
    assert found.notes == []  # the row stays "pass"


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def built_data(
    overrides: list[str], stand_in: bool, folder: Path | None = None
) -> tuple[object, list[str]]:
    """The data module ``dl-train`` builds for ``overrides``, set up; with the smoke
    run's stand-in active or not; and the stand-in's notes."""
    from dltrain.commands import build
    from dltrain.data.sources import stand_in as stand_ins

    cfg = compose_train(overrides)
    if not stand_in:
        dm = build.datamodule(cfg)
        dm.setup("fit")
        return dm, []
    with stand_ins.standing_in(folder) as notes:
        dm = build.datamodule(cfg)
        dm.prepare_data()
        dm.setup("fit")
    return dm, notes


def test_image_stand_in_has_the_real_datas_shape_classes_and_dtype(tmp_path: Path) -> None:
    real_dir, empty = make_cifar10(tmp_path / "real"), tmp_path / "empty"
    args = ["experiment=cifar10_resnet18", f"paths.root_dir={tmp_path}"]
    real, none = built_data([*args, f"paths.data_dir={real_dir}"], stand_in=True)
    assert none == []  # the data is there: the stand-in stays out of the way
    fake, notes = built_data([*args, f"paths.data_dir={empty}"], stand_in=True)
    assert notes == [
        "CIFAR10DataModule: CIFAR10 not found: expected data_batch_1, data_batch_2, "
        f"data_batch_3, data_batch_4, data_batch_5, test_batch in {empty}/cifar-10-batches-py"
    ]
    for got, want in ((fake.train_set, real.train_set), (fake.test_set, real.test_set)):
        assert got.x.dtype == want.x.dtype == torch.uint8
        assert got.x.shape[1:] == want.x.shape[1:] == (3, 32, 32)
        assert got.y.dtype == want.y.dtype
    assert (
        sorted(set(fake.train_set.y.tolist())) == list(range(10)) == list(range(real.num_classes))
    )
    x, y = fake.on_after_batch_transfer(next(iter(fake.train_dataloader())), 0)
    assert x.shape == (128, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (128,)
    # Outside dl-smoke nothing stands in: dl-train says the data is missing.
    with pytest.raises(DataError, match="CIFAR10 not found"):
        built_data([*args, f"paths.data_dir={empty}"], stand_in=False)


def test_image_folder_stand_in_stores_the_cache_shape_and_trains_at_the_shape(
    tmp_path: Path,
) -> None:
    args = ["experiment=finetune_resnet_folder", f"data.root={tmp_path / 'absent'}"]
    dm, notes = built_data([*args, "data.num_classes=4", "data.batch_size=4"], stand_in=True)
    assert notes == [f"ImageFolderDataModule: image folder {tmp_path / 'absent'} does not exist"]
    assert dm.train_set.x.shape[1:] == (3, 256, 256) and dm.train_set.x.dtype == torch.uint8
    assert sorted(set(dm.train_set.y.tolist())) == [0, 1, 2, 3]
    batch = next(iter(dm.val_dataloader()))
    x, _ = dm.on_after_batch_transfer(batch, 0)  # normalised; evaluation's center crop
    assert x.shape[1:] == (3, 224, 224) and x.dtype == torch.float32


def test_text_stand_in_gives_token_ids_like_the_real_texts(tmp_path: Path) -> None:
    from test_text import write_polarity

    write_polarity(tmp_path / "real" / "rt-polarity")
    args = ["experiment=rt_polarity_textcnn", f"paths.root_dir={tmp_path}", "data.cache_dir=null"]
    real, _ = built_data([*args, f"paths.data_dir={tmp_path / 'real'}"], stand_in=False)
    fake, notes = built_data([*args, f"paths.data_dir={tmp_path / 'none'}"], stand_in=True)
    missing = tmp_path / "none" / "rt-polarity" / "rt-polarity.neg"
    assert notes == [f"TextFilesDataModule: text file not found: {missing}"]
    for name in ("train", "val", "test"):
        got, want = fake.splits[name], real.splits[name]
        assert got.ids.dtype == want.ids.dtype and got.lengths.dtype == want.lengths.dtype
        assert got.ids.dim() == want.ids.dim() == 2
        assert int(got.lengths.max()) <= fake.max_length == real.max_length == 64
        assert got.y.dtype == want.y.dtype
    # Long stand-in texts reach max_length (truncated, as long real texts are).
    assert int(fake.splits["train"].lengths.max()) == 64
    assert sorted(set(fake.splits["train"].y.tolist())) == [0, 1]
    # The word-level tokenizer was trained on the stand-in texts: few unknown words.
    assert (fake.splits["train"].ids == 1).sum() == 0


def test_table_stand_in_has_the_declared_columns_and_classes(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    pd.DataFrame({
        "age": rng.normal(40, 9, 90), "income": rng.lognormal(size=90),
        "city": rng.choice(["x", "y", "z"], 90), "y": rng.choice(["good", "bad", "ok"], 90),
    }).to_csv(tmp_path / "real.csv", index=False)  # fmt: skip
    args = ["data=tabular", "model=mlp", "data.target=y", "data.numeric=[age,income]",
            "data.categorical=[city]", "data.num_classes=3"]  # fmt: skip
    real, _ = built_data([*args, f"data.path={tmp_path / 'real.csv'}"], stand_in=False)
    absent = [*args, f"data.path={tmp_path / 'absent.csv'}"]
    fake, notes = built_data(absent, stand_in=True, folder=tmp_path / "stand-ins")
    assert notes == [f"TabularDataModule: table {tmp_path / 'absent.csv'} does not exist"]
    # The same columns, so the same encoded width, class count and dtype.
    assert list(pd.read_csv(fake.path).columns) == ["age", "income", "city", "y"]
    assert (fake.shape, fake.num_classes) == (real.shape, real.num_classes)
    assert real.num_classes == 3
    assert fake.train_set.x.dtype == real.train_set.x.dtype == torch.float32
    assert sorted(set(fake.train_set.y.tolist())) == [0, 1, 2]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["experiment=cifar10_resnet18"], ["data.eval_batch_size=128"]),  # 1000 -> 128
        ([], ["data.eval_batch_size=64"]),  # digits: 512 -> 64
        (["data.eval_batch_size=32"], []),  # already no larger than the training batch
    ],
)
def test_smoke_evaluates_one_batch_no_larger_than_the_training_batch(
    tmp_path: Path, overrides: list[str], expected: list[str]
) -> None:
    from dltrain.commands import smoke_plan

    found = smoke_plan.plan(compose_train(overrides), tmp_path)
    assert [o for o in found.overrides if o.startswith("data.eval_batch_size")] == expected
    assert found.notes == []  # not a stand-in: the row stays "pass"
