"""What ``dl-smoke`` changes in an experiment so that it runs offline: decided from the
composed config, before the run, and said in the table's row.

- A required data value the experiment leaves to the user (``data.root: ???``,
  ``data.path``, a template's ``data.num_classes`` or ``data.target``): a path that does
  not exist (the data stand-in, ``data/sources/stand_in.py``, then supplies synthetic
  data), 2 classes, a target column named ``target``.
- ImageNet weights (``model.pretrained=true``) not in torch's hub cache and no
  ``model.weights_path``: the same architecture, randomly initialised.
- ``module=distill`` without a ``teacher``: a one-batch run of the same experiment as a
  plain classifier, whose checkpoint then teaches.
- A Hugging Face model (``model.name_or_path``) that is neither a local folder nor in the
  Hub cache: a folder written here with a randomly initialised model of the same family
  (from the cached ``config.json`` when there is one, else a small config of the family,
  guessed from the name) and a word-piece tokenizer for the stand-in texts.

And not a stand-in but a smoke run's one batch: a boosted-tree model trains
``BOOSTER_ROUNDS`` rounds (``debug=fast`` limits a net's batches only), and the one
validation and test batch is no larger than the training batch (``data.eval_batch_size``
capped at ``data.batch_size``: an experiment's evaluation batch of 1,000 images through
a ResNet is most of its smoke run, and checks no wiring the training batch does not).
Nor are the run's figures rendered (``callbacks.plots.render=false``): each is built
from the run's data, every call of ``records/plotting.py`` made, but matplotlib's
layout, rasterising and PNG writing (~0.3 s of CPU a figure, the same work for every
experiment) are skipped. ``dl-smoke callbacks.plots.render=true`` renders them.

Data that is absent is replaced at run time instead (``stand_in.wrap``): only reading
it can tell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from dltrain import hub
from dltrain.data.sources.stand_in import WORDS
from dltrain.errors import ConfigError

#: ``???`` data keys the plan fills: a folder or file that does not exist (so the data
#: stand-in takes over), or a class count.
ABSENT_PATHS = ("root", "path", "data_dir")
ASSUMED_CLASSES = 2
#: Boosting rounds of a smoke run's boosted-tree model (its "one batch").
BOOSTER_ROUNDS = 10
#: The small config of a family when none is available offline: enough to check wiring.
SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 64}  # fmt: skip
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclass
class Plan:
    """Overrides to add to the run, and what each stands in for (the row's notes)."""

    overrides: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    random_weights: bool = False


def plan(
    cfg: DictConfig,
    assets: Path,
    args: list[str] | None = None,
    train: Callable[[], None] | None = None,
) -> Plan:
    """The stand-ins ``cfg`` (composed from ``args``) needs to run here; ``assets``: a
    folder for what they write; ``train``: ``dl-train``'s entry point, for a teacher."""
    out = Plan()
    _fill_required_data(cfg, assets, out)
    _one_eval_batch(cfg, out)
    _figures_built_only(cfg, args or [], out)
    if args is not None and train is not None:
        _teacher(cfg, args, assets, out, train)
    model = cfg.get("model")
    if model is None or not OmegaConf.is_dict(model):
        return out
    _few_rounds(model, out)
    if model.get("pretrained") is True and not model.get("weights_path"):
        _imagenet_weights(model, out)
    name = model.get("name_or_path")
    if isinstance(name, str):
        _hf_model(name, cfg, assets, out)
    return out


def _one_eval_batch(cfg: DictConfig, out: Plan) -> None:
    """``data.eval_batch_size`` no larger than ``data.batch_size`` (module docstring)."""
    data = cfg.get("data")
    if data is None or not OmegaConf.is_dict(data):
        return
    train, evaluate = data.get("batch_size"), data.get("eval_batch_size")
    if isinstance(train, int) and isinstance(evaluate, int) and evaluate > train:
        out.overrides.append(f"data.eval_batch_size={train}")


def _figures_built_only(cfg: DictConfig, args: list[str], out: Plan) -> None:
    """``callbacks.plots.render=false`` where the run's plots callback has that key and
    the command line does not set it (module docstring)."""
    plots = OmegaConf.select(cfg, "callbacks.plots")
    if not OmegaConf.is_dict(plots) or "render" not in plots:
        return
    if not any(a.lstrip("+").startswith("callbacks.plots.render=") for a in args):
        out.overrides.append("callbacks.plots.render=false")


def _teacher(
    cfg: DictConfig, args: list[str], assets: Path, out: Plan, train: Callable[[], None]
) -> None:
    """``module=distill`` without a teacher checkpoint: the teacher is a one-batch run of
    the same experiment as a plain classifier (``module=classifier``), in this process,
    so it reads exactly the student's inputs (data, tokenizer and split)."""
    module = cfg.get("module")
    if cfg.get("teacher") or module is None or "teacher" not in module:
        return
    from dltrain.commands import smoke_run
    from dltrain.data.sources import stand_in

    run_dir = assets / "teacher"
    teach = [*args, *out.overrides, "module=classifier", *_distill_only_keys(args)]
    argv = ["dl-train", *teach, f"hydra.run.dir={run_dir}"]
    with stand_in.standing_in(assets):  # the student's stand-in data, if it gets one
        done = smoke_run.run_cli(train, argv)
    found = sorted((run_dir / "checkpoints").glob("*.ckpt"))
    if done.code != 0 or not found:
        said = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
        raise ConfigError(
            f"dl-smoke could not train a stand-in teacher ({(said or ['no checkpoint'])[-1]})",
            "pass teacher=<run dir>/checkpoints/<file>.ckpt",
        )
    out.overrides.append(f"teacher={found[-1]}")
    out.notes.append("random weights: teacher from a one-batch run of this experiment")
    out.random_weights = True


def _distill_only_keys(args: list[str]) -> list[str]:
    """Deletions of the ``module`` keys the experiment sets for distillation
    (``temperature``, ``alpha``) that the plain classifier does not take."""
    import inspect

    from hydra import compose
    from hydra.utils import get_class

    from dltrain.config.paths import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[a for a in args if not a.startswith("hydra.")]
                      + ["module=classifier"])  # fmt: skip
    takes = inspect.signature(get_class(cfg.module._target_)).parameters
    return [f"~module.{k}" for k in cfg.module if not k.startswith("_") and k not in takes]


def _few_rounds(model: DictConfig, out: Plan) -> None:
    """A boosted-tree model's one batch: ``debug=fast`` limits a net's batches, not a
    booster's rounds, which would otherwise run up to ``n_estimators`` (hundreds)."""
    from dltrain.trees.boosters import is_booster

    rounds = model.get("n_estimators")
    if isinstance(rounds, int) and rounds > BOOSTER_ROUNDS and is_booster(model.get("_target_")):
        out.overrides.append(f"model.n_estimators={BOOSTER_ROUNDS}")


def _fill_required_data(cfg: DictConfig, assets: Path, out: Plan) -> None:
    data = cfg.get("data")
    if data is None or not OmegaConf.is_dict(data):
        return
    for key in data:
        if not OmegaConf.is_missing(data, key):
            continue
        if key in ABSENT_PATHS:
            out.overrides.append(f"data.{key}={assets / f'absent-{key}'}")
        elif key == "target":
            out.overrides.append("data.target=target")
            out.notes.append("data.target=target assumed")
        elif key == "num_classes":
            out.overrides.append(f"data.num_classes={ASSUMED_CLASSES}")
            out.notes.append(f"data.num_classes={ASSUMED_CLASSES} assumed")


def _imagenet_weights(model: DictConfig, out: Plan) -> None:
    arch = model.get("arch") or _torchvision_arch(str(model.get("_target_", "")))
    if arch is None or _weights_cached(str(arch)):
        return
    out.overrides.append("model.pretrained=false")
    out.notes.append(f"random weights: {arch}'s ImageNet weights are not in torch's hub cache")
    out.random_weights = True


def _torchvision_arch(target: str) -> str | None:
    return "vit_b_16" if target.endswith(".ViTB16") else None


def _weights_cached(arch: str) -> bool:
    import torch
    from torchvision.models import get_model_weights

    url = get_model_weights(arch).DEFAULT.url
    return (Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]).is_file()


def _hf_model(name: str, cfg: DictConfig, assets: Path, out: Plan) -> None:
    if hub.is_local(hub.resolve(name)) or _hub_cached(name, "model.safetensors"):
        return
    config, why = _hf_config(name)
    folder = assets / "hf-model"
    _write_hf_folder(config, folder)
    out.overrides.append(f"model.name_or_path={folder}")
    out.notes.append(f"random weights: {why}")
    out.random_weights = True


def _hub_cached(repo: str, filename: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename)
    return found if isinstance(found, str) else None


def _hf_config(name: str) -> tuple[Any, str]:
    """The model's own config from the Hub cache, else a small one of its family."""
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    cached = _hub_cached(name, "config.json")
    if cached:
        config = AutoConfig.from_pretrained(Path(cached).parent, local_files_only=True)
        return config, f"{name}'s config from the Hub cache, without its weights"
    # The family from the name: the longest model type it contains, the fallback that
    # transformers 4's AutoConfig used for configs without a model_type.
    key = name.lower().replace("-", "_")
    family = max((t for t in CONFIG_MAPPING if t in key), key=len, default=None)
    if family is None:
        raise ConfigError(
            f"dl-smoke cannot stand in for '{name}': not in the Hub cache and no model "
            "family in its name",
            "run once where the Hub is reachable, or pass model.name_or_path=<folder>",
        )
    config = AutoConfig.for_model(family, vocab_size=len(SPECIAL_TOKENS) + len(WORDS), **SMALL)
    return config, f"a small {family} config ({name}'s is not available offline)"


def _write_hf_folder(config: Any, folder: Path) -> None:
    """A ``from_pretrained`` folder: random weights of ``config`` and a word-piece
    tokenizer that knows the stand-in texts' words (``stand_in.WORDS``)."""
    from transformers import AutoModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join([*SPECIAL_TOKENS, *WORDS]) + "\n")
    if config.vocab_size < len(SPECIAL_TOKENS) + len(WORDS):
        config.vocab_size = len(SPECIAL_TOKENS) + len(WORDS)
    AutoModel.from_config(config).save_pretrained(folder)
    BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True).save_pretrained(folder)
