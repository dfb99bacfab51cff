"""Value ranges of the third-party classes the built-in configs name.

The built-in nets and data modules write their ranges into their own signatures
(``dropout: Annotated[float, Interval(ge=0, lt=1)]``); torch's and Lightning's classes
cannot, so their ranges are declared here, by ``_target_`` and argument, as
annotated_types constraints that ``signatures.py`` adds to the annotation the class
already has. Only ranges live here: names, types and defaults come from the classes.
"""

from __future__ import annotations

from typing import Any

from annotated_types import Ge, Gt, Interval

_OPTIMIZER = {"lr": (Gt(0),), "weight_decay": (Ge(0),), "eps": (Gt(0),)}

LIMITS: dict[str, dict[str, tuple[Any, ...]]] = {
    "torch.optim.Adam": _OPTIMIZER,
    "torch.optim.AdamW": _OPTIMIZER,
    "torch.optim.SGD": {**_OPTIMIZER, "momentum": (Ge(0),), "dampening": (Ge(0),)},
    "torch.optim.lr_scheduler.CosineAnnealingLR": {"T_max": (Ge(1),), "eta_min": (Ge(0),)},
    "torch.optim.lr_scheduler.StepLR": {"step_size": (Ge(1),), "gamma": (Gt(0),)},
    "torch.optim.lr_scheduler.OneCycleLR": {
        "max_lr": (Gt(0),), "total_steps": (Ge(1),), "epochs": (Ge(1),),
        "steps_per_epoch": (Ge(1),), "pct_start": (Interval(gt=0, lt=1),),
        "base_momentum": (Ge(0),), "max_momentum": (Ge(0),), "div_factor": (Gt(0),),
        "final_div_factor": (Gt(0),),
    },
    "torch.optim.lr_scheduler.ReduceLROnPlateau": {
        "factor": (Interval(gt=0, lt=1),), "patience": (Ge(0),), "threshold": (Ge(0),),
        "cooldown": (Ge(0),), "eps": (Ge(0),),
    },
    "lightning.pytorch.Trainer": {
        "num_nodes": (Ge(1),), "max_epochs": (Ge(1),), "min_epochs": (Ge(0),),
        "max_steps": (Ge(-1),), "min_steps": (Ge(0),),
        "limit_train_batches": (Ge(0),), "limit_val_batches": (Ge(0),),
        "limit_test_batches": (Ge(0),), "limit_predict_batches": (Ge(0),),
        "overfit_batches": (Ge(0),), "check_val_every_n_epoch": (Ge(1),),
        "num_sanity_val_steps": (Ge(-1),), "log_every_n_steps": (Ge(1),),
        "accumulate_grad_batches": (Ge(1),), "gradient_clip_val": (Ge(0),),
        "reload_dataloaders_every_n_epochs": (Ge(0),),
    },
}  # fmt: skip
LIMITS["lightning.Trainer"] = LIMITS["lightning.pytorch.Trainer"]


#: Values the recipe turns into ones the class takes before it builds it (say,
#: ``trainer.precision=auto`` chosen from the hardware): accepted besides the annotation.
#: By ``_target_``, then argument.
RESOLVED_BY_RECIPE: dict[str, dict[str, tuple[Any, ...]]] = {
    # The hardware's best precision, chosen by runtime/precision.py before the Trainer.
    "lightning.pytorch.Trainer": {"precision": ("auto",)},
}
RESOLVED_BY_RECIPE["lightning.Trainer"] = RESOLVED_BY_RECIPE["lightning.pytorch.Trainer"]


def limits_of(target: str) -> dict[str, tuple[Any, ...]]:
    """Argument -> constraints for a ``_target_`` (empty for classes that carry their own)."""
    return LIMITS.get(target, {})


def resolved_by_recipe(target: str) -> dict[str, tuple[Any, ...]]:
    """Argument -> values the recipe replaces before the class sees them."""
    return RESOLVED_BY_RECIPE.get(target, {})
