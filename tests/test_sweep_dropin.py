"""Searches written for hydra-optuna-sweeper run here after renaming their keys: the
lightning-hydra-template's mnist_optuna.yaml on the digits, a custom (conditional)
search space and a study with two objectives."""

from __future__ import annotations

import json
import os
from pathlib import Path

import optuna
import yaml

from conftest import run_cli

SMALL = ["trainer.max_epochs=1", "trainer.limit_train_batches=3", "test=false"]

# lightning-hydra-template's configs/hparams_search/mnist_optuna.yaml, keys renamed:
# `override /hydra/sweeper: optuna` -> dltrain_optuna, the sweeper's `_target_:
# hydra_plugins.hydra_optuna_sweeper...` line dropped, model.optimizer.lr -> optimizer.lr,
# model.net.lin{1,2,3}_size -> model.hidden (one list). Everything else as shipped there.
TEMPLATE = """\
# @package _global_
defaults:
  - override /hydra/sweeper: dltrain_optuna

optimized_metric: "val/acc_best"

hydra:
  mode: "MULTIRUN"
  sweeper:
    storage: null
    study_name: null
    n_jobs: 1
    direction: maximize
    n_trials: 20
    sampler:
      _target_: optuna.samplers.TPESampler
      seed: 1234
      n_startup_trials: 10
    params:
      optimizer.lr: interval(0.0001, 0.1)
      data.batch_size: choice(32, 64, 128, 256)
      model.hidden: choice([64, 64, 32], [128, 128, 64], [256, 256, 128])
"""

# A custom search space (hydra-optuna-sweeper's custom_search_space) that is conditional:
# SGD gets a momentum, Adam none; two objectives (loss down, accuracy up).
SPACE = '''\
def optimizer_space(cfg, trial):
    """SGD gets a momentum to search; Adam has none."""
    if trial.suggest_categorical("optimizer", ["adam", "sgd"]) == "sgd":
        trial.suggest_float("optimizer.momentum", 0.5, 0.95)
'''
TWO_OBJECTIVES = """\
# @package _global_
defaults:
  - override /hydra/sweeper: dltrain_optuna

optimized_metric: [val/loss, val/acc_best]

hydra:
  sweeper:
    direction: [minimize, maximize]
    n_trials: 4
    sampler:
      _target_: optuna.samplers.TPESampler
      seed: 3
    custom_search_space: my_space.optimizer_space
    params:
      optimizer.lr: interval(0.001, 0.1)
"""


def searches(tmp_path: Path) -> Path:
    extra = tmp_path / "extra_configs" / "hparams_search"
    extra.mkdir(parents=True)
    (extra / "template_mnist_optuna.yaml").write_text(TEMPLATE)
    (extra / "two_objectives.yaml").write_text(TWO_OBJECTIVES)
    (tmp_path / "my_space.py").write_text(SPACE)
    return extra.parent


def only_sweep(base: Path) -> Path:
    (sweep,) = (base / "outputs" / "train" / "multiruns").iterdir()
    return sweep


def test_the_template_mnist_optuna_search_runs_with_a_target_sampler_and_pruner(
    tmp_path: Path,
) -> None:
    """Before: `study_name: null` failed with "ValidationError raised while composing
    config:" and the sampler's `_target_` got `name: tpe` merged in."""
    extra = searches(tmp_path)
    pruner = "{_target_:optuna.pruners.PercentilePruner,percentile:50.0,n_startup_trials:2}"
    out = run_cli(  # no -m: the search sets hydra.mode=MULTIRUN itself
        [
            "hparams_search=template_mnist_optuna",
            f"hydra.searchpath=[file://{extra}]",
            "hydra.sweeper.n_trials=3",
            f"hydra.sweeper.pruner={pruner}",
            *SMALL,
        ],
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    sweep = only_sweep(tmp_path)  # storage null: a new journal in a new multirun folder
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["study_name"] == "template_mnist_optuna"  # study_name null
    trials = summary["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2]
    assert all(t["state"] in ("COMPLETE", "PRUNED") for t in trials), trials
    for t in trials:
        assert (sweep / str(t["number"]) / "results.json").is_file()
        assert t["params"]["model.hidden"] in ([64, 64, 32], [128, 128, 64], [256, 256, 128])
    # The sampler is the TPESampler the search names, with its seed: the same first point
    # as Optuna's own TPESampler(seed=1234) proposes for this space.
    reference = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=1234, n_startup_trials=10)
    ).ask(
        {
            "optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 0.1),
            "data.batch_size": optuna.distributions.CategoricalDistribution((32, 64, 128, 256)),
            "model.hidden": optuna.distributions.CategoricalDistribution(
                ("[64,64,32]", "[128,128,64]", "[256,256,128]")
            ),
        }
    )
    first = trials[0]["params"]
    assert first["optimizer.lr"] == reference.params["optimizer.lr"]
    assert first["data.batch_size"] == reference.params["data.batch_size"]
    # The pruner given by _target_ is what every trial rebuilds (no `name` merged in).
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(sweep / "study.journal"))
    )
    study = optuna.load_study(study_name="template_mnist_optuna", storage=storage)
    assert study.user_attrs["dltrain:pruner"] == {
        "_target_": "optuna.pruners.PercentilePruner",
        "percentile": 50.0,
        "n_startup_trials": 2,
    }


def pareto(points: dict[int, tuple[float, float]]) -> set[int]:
    """Trials no other beats on both objectives (loss down, accuracy up)."""

    def beats(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] <= b[0] and a[1] >= b[1] and a != b

    return {n for n, p in points.items() if not any(beats(q, p) for q in points.values())}


def test_a_custom_conditional_space_with_two_objectives_gives_a_pareto_front(
    tmp_path: Path,
) -> None:
    extra = searches(tmp_path)
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    out = run_cli(
        ["-m", "hparams_search=two_objectives", f"hydra.searchpath=[file://{extra}]", *SMALL],
        cwd=tmp_path,
        env={"PYTHONPATH": path},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "several objectives: trials are not pruned (Optuna cannot)" in out.stdout
    sweep = only_sweep(tmp_path)
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["direction"] == ["minimize", "maximize"]
    assert summary["optimized_metric"] == "val/loss, val/acc_best"
    trials = summary["trials"]
    assert [t["state"] for t in trials] == ["COMPLETE"] * 4
    chosen = set()
    for t in trials:
        run_dir = sweep / str(t["number"])
        metrics = json.loads((run_dir / "results.json").read_text())["metrics"]
        assert t["values"] == [metrics["val/loss"], metrics["val/acc_best"]]
        config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
        name = t["params"]["optimizer"]
        chosen.add(name)
        assert (
            config["optimizer"]["_target_"]
            == {"adam": "torch.optim.Adam", "sgd": "torch.optim.SGD"}[name]
        )
        if name == "sgd":  # the conditional parameter reaches the run
            assert config["optimizer"]["momentum"] == t["params"]["optimizer.momentum"]
        else:
            assert "optimizer.momentum" not in t["params"]
    assert chosen == {"adam", "sgd"}  # both branches of the space ran
    front = {p["number"] for p in summary["pareto_front"]}
    assert front == pareto({t["number"]: tuple(t["values"]) for t in trials})
    assert summary["best_trial"] is None
    assert (sweep / "pareto_front.png").read_bytes()[:4] == b"\x89PNG"
    assert f"Pareto front: trials {', '.join(str(n) for n in sorted(front))}" in out.stdout


def test_a_composition_error_in_a_search_names_the_key(tmp_path: Path) -> None:
    """Before: `error: invalid configuration: In 'hparams_search/bad': ValidationError
    raised while composing config: — ...` (which key?)."""
    extra = tmp_path / "extra_configs" / "hparams_search"
    extra.mkdir(parents=True)
    (extra / "bad.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /hydra/sweeper: dltrain_optuna\n"
        "hydra:\n  sweeper:\n    study_name: null\n    n_jobs: lots\n"
    )
    out = run_cli(
        ["-m", "hparams_search=bad", f"hydra.searchpath=[file://{extra.parent}]"], cwd=tmp_path
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "error: invalid configuration: hydra.sweeper.n_jobs (in hparams_search/bad): Value "
        "'lots' of type 'str' could not be converted to Integer — check the overrides "
        "(see dl-train --help)"
    )
