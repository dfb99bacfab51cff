"""XGBoost and LightGBM behind one small interface: fit with early stopping on the
validation rows, predict, and a plain-bytes model state for checkpoints.

The config classes (``model=xgboost``, ``model=lightgbm``) are these; their arguments
are the libraries' own parameter names, so ``model.max_depth`` means what their docs say.
The libraries are the ``dl-train[tabular]`` extra: imported only when a tree is built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dltrain.errors import ConfigError

#: Kinds of boosting objective.
REGRESSION, BINARY, MULTICLASS = "regression", "binary", "multiclass"


def _need(module: str, model: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as ex:
        raise ConfigError(
            f"model={model} needs the {module} package, which is not installed",
            "pip install 'dl-train[tabular]' (or make install)",
        ) from ex


def kind_of(task: str, num_classes: int) -> str:
    if task == "regression":
        return REGRESSION
    return BINARY if num_classes == 2 else MULTICLASS


class Booster:
    """Shared shape of the two libraries' wrappers.

    Args:
        n_estimators: the most boosting rounds; early stopping usually ends sooner.
        learning_rate: shrinkage of each tree.
        early_stopping_rounds: rounds without improvement of the validation metric
            before stopping (the best round's model is kept).
        params: any further library parameters, passed through unchanged.
    """

    library = ""
    #: What the runner's `model=<name>` is; tree models take tables only.
    takes = "tables"

    def __init__(
        self,
        n_estimators: int = 1000,
        learning_rate: float = 0.05,
        early_stopping_rounds: int = 50,
        params: dict[str, Any] | None = None,
        **library_params: Any,
    ) -> None:
        self.n_estimators = int(n_estimators)
        self.learning_rate = float(learning_rate)
        self.early_stopping_rounds = int(early_stopping_rounds)
        # Named arguments of a subclass first, then `params` (anything else the library
        # takes, passed through unchanged).
        self.params = {**library_params, **dict(params or {})}
        self.model: Any = None
        self.best_round = 0
        self.kind = REGRESSION
        self.num_classes = 1

    # What a subclass provides.
    def fit(
        self,
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray] | None,
        feature_types: Sequence[str],
        kind: str,
        num_classes: int,
        threads: int | None,
        gpu: bool,
        seed: int,
        callbacks: Sequence[Any] = (),
    ) -> dict[str, dict[str, list[float]]]:
        """Train; return ``{"train"|"val": {library metric: [value per round]}}``."""
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Values ``(N,)`` (regression) or class probabilities ``(N, classes)``."""
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        raise NotImplementedError

    def load_bytes(self, raw: bytes, kind: str, num_classes: int) -> None:
        raise NotImplementedError

    def pruning_callback(self, trial: Any, metric: str) -> Any:
        raise NotImplementedError

    @staticmethod
    def eval_metrics(kind: str) -> list[str]:
        """Library metrics watched on the validation rows; early stopping and pruning
        use the first."""
        raise NotImplementedError

    def _probs(self, raw: np.ndarray) -> np.ndarray:
        if self.kind == BINARY:
            raw = raw.reshape(-1)
            return np.stack([1.0 - raw, raw], axis=1)
        return raw.reshape(len(raw), -1) if self.kind == MULTICLASS else raw.reshape(-1)


class XGBoost(Booster):
    """``xgboost.train`` with the ``hist`` tree method and native categorical splits.

    Args (beyond ``Booster``'s): ``max_depth``, ``min_child_weight``, ``subsample``,
    ``colsample_bytree``, ``reg_lambda``, ``reg_alpha``, ``max_cat_to_onehot``, ... as
    in XGBoost's parameter docs.
    """

    library = "xgboost"

    def __init__(
        self,
        n_estimators: int = 1000,
        learning_rate: float = 0.05,
        early_stopping_rounds: int = 50,
        max_depth: int = 6,
        min_child_weight: float = 1.0,
        subsample: float = 1.0,
        colsample_bytree: float = 1.0,
        reg_lambda: float = 1.0,
        reg_alpha: float = 0.0,
        gamma: float = 0.0,
        max_cat_to_onehot: int = 4,
        max_bin: int = 256,
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            n_estimators, learning_rate, early_stopping_rounds, params,
            max_depth=int(max_depth), min_child_weight=float(min_child_weight),
            subsample=float(subsample), colsample_bytree=float(colsample_bytree),
            reg_lambda=float(reg_lambda), reg_alpha=float(reg_alpha), gamma=float(gamma),
            max_cat_to_onehot=int(max_cat_to_onehot), max_bin=int(max_bin),
        )  # fmt: skip

    @staticmethod
    def eval_metrics(kind: str) -> list[str]:
        return {REGRESSION: ["rmse"], BINARY: ["auc", "logloss"], MULTICLASS: ["mlogloss"]}[kind]

    def _params(self, kind: str, num_classes: int, threads: int | None, gpu: bool, seed: int):
        objective = {
            REGRESSION: "reg:squarederror",
            BINARY: "binary:logistic",
            MULTICLASS: "multi:softprob",
        }[kind]
        params: dict[str, Any] = {
            "objective": objective,
            "eta": self.learning_rate,
            "tree_method": "hist",
            "device": "cuda" if gpu else "cpu",
            # XGBoost stops early on the last metric listed: the first of eval_metrics.
            "eval_metric": self.eval_metrics(kind)[::-1],
            "seed": seed,
            **self.params,
        }
        if kind == MULTICLASS:
            params["num_class"] = num_classes
        if threads:
            params["nthread"] = int(threads)
        return params

    def fit(self, train, val, feature_types, kind, num_classes, threads, gpu, seed, callbacks=()):
        xgb = _need("xgboost", "xgboost")
        if gpu and not xgb.build_info().get("USE_CUDA"):
            raise ConfigError(
                "trainer=gpu, but this XGBoost build has no CUDA support",
                "pip install a CUDA build of xgboost (the PyPI wheel for Linux x86_64 has it), "
                "or use trainer=cpu",
            )
        self.kind, self.num_classes = kind, num_classes
        types = list(feature_types)
        dtrain = xgb.DMatrix(train[0], train[1], feature_types=types, enable_categorical=True)
        evals = [(dtrain, "train")]
        if val is not None:
            evals.append(
                (xgb.DMatrix(val[0], val[1], feature_types=types, enable_categorical=True), "val")
            )
        history: dict[str, dict[str, list[float]]] = {}
        self.model = xgb.train(
            self._params(kind, num_classes, threads, gpu, seed),
            dtrain,
            num_boost_round=self.n_estimators,
            evals=evals,
            early_stopping_rounds=self.early_stopping_rounds if val is not None else None,
            evals_result=history,
            verbose_eval=False,
            callbacks=list(callbacks),
        )
        best = getattr(self.model, "best_iteration", None)
        self.best_round = int(best) + 1 if best is not None else self.model.num_boosted_rounds()
        self.model = self.model[: self.best_round]  # keep the best round's trees only
        return history

    def predict(self, x: np.ndarray) -> np.ndarray:
        xgb = _need("xgboost", "xgboost")
        types = ["c" if t == "c" else "q" for t in self._types]
        raw = self.model.predict(xgb.DMatrix(x, feature_types=types, enable_categorical=True))
        return self._probs(np.asarray(raw, dtype=np.float64))

    @property
    def _types(self) -> list[str]:
        return list(self.model.feature_types)

    def to_bytes(self) -> bytes:
        return bytes(self.model.save_raw("ubj"))

    def load_bytes(self, raw: bytes, kind: str, num_classes: int) -> None:
        xgb = _need("xgboost", "xgboost")
        self.model = xgb.Booster(model_file=bytearray(raw))
        self.kind, self.num_classes = kind, num_classes

    def pruning_callback(self, trial: Any, metric: str) -> Any:
        from optuna_integration import XGBoostPruningCallback

        return XGBoostPruningCallback(trial, f"val-{metric}")


class LightGBM(Booster):
    """``lightgbm.train`` with categorical columns declared as such.

    Args (beyond ``Booster``'s): ``num_leaves``, ``max_depth``, ``min_child_samples``,
    ``subsample`` (with ``subsample_freq``), ``colsample_bytree``, ``reg_lambda``, ... as in
    LightGBM's parameter docs.
    """

    library = "lightgbm"

    def __init__(
        self,
        n_estimators: int = 1000,
        learning_rate: float = 0.05,
        early_stopping_rounds: int = 50,
        num_leaves: int = 31,
        max_depth: int = -1,
        min_child_samples: int = 20,
        subsample: float = 1.0,
        subsample_freq: int = 0,
        colsample_bytree: float = 1.0,
        reg_lambda: float = 0.0,
        reg_alpha: float = 0.0,
        max_bin: int = 255,
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            n_estimators, learning_rate, early_stopping_rounds, params,
            num_leaves=int(num_leaves), max_depth=int(max_depth),
            min_child_samples=int(min_child_samples), subsample=float(subsample),
            subsample_freq=int(subsample_freq), colsample_bytree=float(colsample_bytree),
            reg_lambda=float(reg_lambda), reg_alpha=float(reg_alpha), max_bin=int(max_bin),
        )  # fmt: skip

    @staticmethod
    def eval_metrics(kind: str) -> list[str]:
        return {REGRESSION: ["rmse"], BINARY: ["auc", "binary_logloss"],
                MULTICLASS: ["multi_logloss"]}[kind]  # fmt: skip

    def fit(self, train, val, feature_types, kind, num_classes, threads, gpu, seed, callbacks=()):
        lgb = _need("lightgbm", "lightgbm")
        self.kind, self.num_classes = kind, num_classes
        categorical = [i for i, t in enumerate(feature_types) if t == "c"]
        objective = {REGRESSION: "regression", BINARY: "binary", MULTICLASS: "multiclass"}[kind]
        params: dict[str, Any] = {
            "objective": objective,
            "learning_rate": self.learning_rate,
            "metric": self.eval_metrics(kind),
            "verbosity": -1,
            "seed": seed,
            "deterministic": True,
            **self.params,
        }
        if kind == MULTICLASS:
            params["num_class"] = num_classes
        if threads:
            params["num_threads"] = int(threads)
        if gpu:
            params["device_type"] = "cuda"
        dtrain = lgb.Dataset(
            train[0], train[1], categorical_feature=categorical, free_raw_data=False
        )
        sets, names = [dtrain], ["train"]
        if val is not None:
            sets.append(
                lgb.Dataset(val[0], val[1], reference=dtrain, categorical_feature=categorical)
            )
            names.append("val")
        history: dict[str, dict[str, list[float]]] = {}
        extra: list[Callable[..., Any]] = [lgb.record_evaluation(history), *callbacks]
        if val is not None:
            extra.append(
                lgb.early_stopping(
                    self.early_stopping_rounds, first_metric_only=True, verbose=False
                )
            )
        try:
            self.model = lgb.train(
                params, dtrain, num_boost_round=self.n_estimators, valid_sets=sets,
                valid_names=names, callbacks=extra,
            )  # fmt: skip
        except lgb.basic.LightGBMError as ex:
            if gpu:
                raise ConfigError(
                    f"trainer=gpu, but LightGBM could not use CUDA ({ex})",
                    "install a CUDA build of lightgbm, or use trainer=cpu",
                ) from ex
            raise
        self.best_round = int(self.model.best_iteration or self.model.current_iteration())
        return history

    def predict(self, x: np.ndarray) -> np.ndarray:
        raw = self.model.predict(x, num_iteration=self.best_round or None)
        return self._probs(np.asarray(raw, dtype=np.float64))

    def to_bytes(self) -> bytes:
        return self.model.model_to_string(num_iteration=self.best_round or None).encode()

    def load_bytes(self, raw: bytes, kind: str, num_classes: int) -> None:
        lgb = _need("lightgbm", "lightgbm")
        self.model = lgb.Booster(model_str=raw.decode())
        self.best_round = 0
        self.kind, self.num_classes = kind, num_classes

    def pruning_callback(self, trial: Any, metric: str) -> Any:
        from optuna_integration import LightGBMPruningCallback

        return LightGBMPruningCallback(trial, metric, valid_name="val")


def is_booster(target: str | None) -> bool:
    """Whether a ``model._target_`` names a boosted-tree model (checked without importing
    the boosting libraries)."""
    if not target:
        return False
    try:
        from hydra.utils import get_class

        return issubclass(get_class(str(target)), Booster)
    except Exception:  # noqa: BLE001 - a bad _target_ is reported when it is built
        return False


def device_is_gpu(accelerator: str | None) -> bool:
    """``trainer=gpu`` (accelerator gpu/cuda) asks for the libraries' CUDA builds."""
    return str(accelerator or "cpu") in ("gpu", "cuda")
