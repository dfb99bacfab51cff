"""Opening a study: storage, sampler, pruner, and the trial handle a job reopens.

Storage: a path is an Optuna journal file (appends under a file lock, so several local
processes share it safely; the default lives in the sweep directory); anything with
``://`` is an SQLAlchemy URL (``sqlite:///study.db``, ``postgresql://...``) for workers
on several machines.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dltrain.errors import ConfigError
from dltrain.sweep.space import Dimension

SAMPLERS = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "grid": "GridSampler",
    "cmaes": "CmaEsSampler",
    "qmc": "QMCSampler",
}
PRUNERS = {
    "median": "MedianPruner",
    "hyperband": "HyperbandPruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "none": "NopPruner",
}
DEFAULT_JOURNAL = "study.journal"
#: ``sampler: null``: TPE, seeded so that a study can be repeated.
DEFAULT_SAMPLER = {"name": "tpe", "seed": 42}
# The pruner is built again inside every trial's job (a separate process with the joblib
# or submitit launchers), so its settings are kept in the study itself.
PRUNER_ATTR = "dltrain:pruner"


def storage_url(storage: str | None, sweep_dir: Path) -> str:
    """The storage as one string a job can reopen: an absolute journal path or a URL."""
    if storage is None or str(storage) == "":
        return str((sweep_dir / DEFAULT_JOURNAL).resolve())
    storage = str(storage)
    return storage if "://" in storage else str(Path(storage).resolve())


def open_storage(url: str, heartbeat: tuple[Any, Any] = (None, None)) -> Any:
    """The storage at ``url``; database storages get Optuna's heartbeat settings
    (``heartbeat_interval``, ``grace_period`` in seconds), so the trials of a worker
    that dies on any machine are failed by the others (``loop.stale_trials``)."""

    if "://" in url:
        interval, grace = (int(v) if v else None for v in heartbeat)
        try:
            return _rdb_storage(url, interval, grace)
        except ImportError as ex:  # the database's driver is not installed
            raise ConfigError(
                f"cannot open {url.split('://')[0]} storage: {ex.__cause__ or ex}",
                "install the driver: pip install 'dl-train[postgres]' for postgresql://",
            ) from ex
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    Path(url).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(url))


def _rdb_storage(url: str, interval: int | None, grace: int | None, tries: int = 5) -> Any:
    """Optuna's RDB storage. Workers started together on a fresh database race to create
    its tables (PostgreSQL: "duplicate key value violates unique constraint
    pg_type_typname_nsp_index"); the losers try again and find the tables there."""
    import time

    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(tries):
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=interval, grace_period=grace)
        except (IntegrityError, ProgrammingError):
            if attempt == tries - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _spec(spec: Any, kind: str, default: str) -> tuple[str | None, dict[str, Any]]:
    """``"tpe"`` or ``{name: tpe, seed: 42}`` or ``{_target_: ..., ...}`` -> (name, kwargs)."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(spec, DictConfig):
        spec = OmegaConf.to_container(spec, resolve=True)
    if spec is None:
        return default, {}
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping):
        kwargs = dict(spec)
        if "_target_" in kwargs:
            # A class named by _target_ replaces the default; a `name` merged in from a
            # config below it (hydra.sweeper.sampler={_target_:..} over {name: tpe}) is not
            # one of its arguments.
            kwargs.pop("name", None)
            return None, kwargs
        return str(kwargs.pop("name", default)), kwargs
    raise ConfigError(f"cannot read the {kind} setting {spec!r}", f"write {kind}=name")


def _build(module: Any, table: dict[str, str], kind: str, name: str | None, kwargs: dict) -> Any:
    if name is None:  # a full _target_ spec: any Optuna class
        from hydra.utils import instantiate

        return instantiate(kwargs)
    if name not in table:
        raise ConfigError(
            f"unknown {kind} '{name}'",
            f"use hydra.sweeper.{kind}=one of {', '.join(table)}",
        )
    try:
        return getattr(module, table[name])(**kwargs)
    except TypeError as ex:
        raise ConfigError(
            f"hydra.sweeper.{kind} ({name}): {ex}",
            f"give only arguments of optuna's {table[name]}",
        ) from ex


def make_sampler(spec: Any, dims: list[Dimension]) -> Any:
    import optuna

    name, kwargs = _spec(spec, "sampler", "tpe")
    if name == "grid":
        kwargs.setdefault("search_space", {d.key: d.grid() for d in dims})
    return _build(optuna.samplers, SAMPLERS, "sampler", name, kwargs)


def continued_seed(spec: Any, study: Any) -> Any:
    """The sampler setting with its seed moved on by the trials the study already has: a
    seeded sampler restarted on a continued study would otherwise propose the same first
    points again. Still reproducible: the seed depends only on the study's state."""
    name, kwargs = _spec(spec, "sampler", "tpe")
    if kwargs.get("seed") is None or not study.trials:
        return spec
    kwargs["seed"] = int(kwargs["seed"]) + len(study.trials)
    return {"name": name, **kwargs} if name else kwargs


def make_pruner(spec: Any) -> Any:
    import optuna

    name, kwargs = _spec(spec, "pruner", "median")
    return _build(optuna.pruners, PRUNERS, "pruner", name, kwargs)


def pruner_spec(spec: Any) -> dict[str, Any]:
    """The pruner setting as plain values (checked by building it once)."""
    make_pruner(spec)
    name, kwargs = _spec(spec, "pruner", "median")
    return {"name": name, **kwargs} if name else kwargs


def directions(setting: Any) -> list[str]:
    """``direction``: one name, or a list with one per optimized metric (as in
    hydra-optuna-sweeper)."""
    names = [str(d) for d in setting] if isinstance(setting, (list, tuple)) else [str(setting)]
    for name in names:
        if name not in ("minimize", "maximize"):
            raise ConfigError(
                f"unknown direction '{name}'",
                "use hydra.sweeper.direction=maximize|minimize, or a list of them "
                "(one per optimized metric)",
            )
    return names


def custom_space(path: Any) -> Any:
    """``custom_search_space``: the dotted path of a function ``(cfg, trial) -> None``
    that suggests more parameters, e.g. ones that exist only for some values of others
    (a conditional space). Its suggestions become overrides like the others."""
    if not path:
        return None
    from hydra.utils import get_method

    try:
        return get_method(str(path))
    except Exception as ex:  # noqa: BLE001 - Hydra wraps the import error
        raise ConfigError(
            f"hydra.sweeper.custom_search_space: cannot import '{path}' ({ex.__cause__ or ex})",
            "give module.function of a function (cfg, trial) importable from where you run",
        ) from ex


def open_study(
    name: str,
    url: str,
    direction: str | list[str],
    sampler: Any = None,
    load_if_exists: bool = True,
    heartbeat: tuple[Any, Any] = (None, None),
) -> Any:
    import optuna

    names = directions(direction)
    try:
        return optuna.create_study(
            study_name=name,
            storage=open_storage(url, heartbeat),
            sampler=sampler,
            directions=names,
            load_if_exists=load_if_exists,
        )
    except optuna.exceptions.DuplicatedStudyError as ex:
        raise ConfigError(
            f"study '{name}' already exists in {url}",
            "set hydra.sweeper.load_if_exists=true to continue it, or choose another study_name",
        ) from ex
    except ValueError as ex:  # e.g. the stored study optimises the other direction
        raise ConfigError(
            f"cannot open study '{name}' in {url}: {ex}", "check hydra.sweeper.direction"
        ) from ex


def load_trial(trial_cfg: Mapping[str, Any]) -> Any:
    """Inside a job: the running trial the sweeper asked for (``cfg.trial``)."""
    import optuna

    storage = open_storage(str(trial_cfg["storage"]))
    study = optuna.load_study(study_name=str(trial_cfg["study_name"]), storage=storage)
    study.pruner = make_pruner(study.user_attrs.get(PRUNER_ATTR))
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, int(trial_cfg["number"]))
    return optuna.trial.Trial(study, trial_id)
