"""``module=distill teacher=<ckpt>``: knowledge distillation (Hinton et al., 2015).

The student (``model=...``) learns from a trained teacher's softened class
probabilities plus the labels: ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha)
* cross_entropy``, where ``_T`` is softmax at temperature ``T``. Validation, test and
checkpoints are the student's alone, as with the Classifier.

The teacher is any dl-train checkpoint of a net (any family) that reads the same inputs
as the student: it is rebuilt from the config stored in it, frozen, kept in eval mode
and never handed to the optimizer. It is not a submodule, so it is in no checkpoint of
the student, and ``dl-eval``/``dl-predict`` of the student never need it; it is loaded
when fitting starts and moved to the student's device there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dltrain.errors import ConfigError
from dltrain.module.classifier import Classifier


class Distiller(Classifier):
    """A ``Classifier`` whose training loss adds the teacher's soft targets.

    Args:
        teacher: a dl-train checkpoint (``.ckpt``) of the teacher.
        temperature: softmax temperature of both sides' soft targets (> 0).
        alpha: weight of the soft-target loss; ``1 - alpha`` goes to the labels'.
        student_data: the student's data config; what it feeds a net
            (``teacher_inputs``) must be what the teacher's fed it, since both see the
            same batch.
        Others: the ``Classifier``'s.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: Any,
        teacher: str | None,
        temperature: float = 4.0,
        alpha: float = 0.5,
        student_data: Any = None,
        **classifier: Any,
    ) -> None:
        super().__init__(net, num_classes, optimizer, **classifier)
        if not teacher:
            raise ConfigError("module=distill needs a teacher",
                              "pass teacher=<run dir>/checkpoints/<file>.ckpt")  # fmt: skip
        if not float(temperature) > 0:
            raise ConfigError(f"module.temperature={temperature} is not > 0", "use e.g. 4.0")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ConfigError(f"module.alpha={alpha} is outside [0, 1]", "use e.g. 0.5")
        self.teacher_path = str(teacher)
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.inputs = teacher_inputs(student_data) if student_data is not None else None
        self._teacher: list[nn.Module] = []  # a list: not a submodule (module docstring)

    @property
    def teacher(self) -> nn.Module:
        if not self._teacher:
            self._teacher.append(load_teacher(Path(self.teacher_path), self.inputs))
        return self._teacher[0]

    def on_fit_start(self) -> None:
        self.teacher.to(self.device)

    def _step(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        logits = self.net(x)
        hard = F.cross_entropy(logits, y)
        if self.alpha == 0.0:
            return hard, logits, y
        with torch.no_grad():
            # Hand-written: four lines of Hinton's loss, no library needed for them.
            soft_targets = (self.teacher(x).float() / self.temperature).softmax(-1)
        log_student = F.log_softmax(logits.float() / self.temperature, -1)
        soft = F.kl_div(log_student, soft_targets, reduction="batchmean") * self.temperature**2
        return self.alpha * soft + (1.0 - self.alpha) * hard, logits, y


def load_teacher(path: Path, inputs: Any) -> nn.Module:
    """The teacher net from a dl-train checkpoint, frozen and in eval mode.

    Rebuilt as ``checkpointing/run_record.rebuild_net`` does (the stored config's
    ``model``, then its ``net.`` weights); repeated here because modules sit below the
    checkpointing layer."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    if not path.is_file():
        raise ConfigError(f"teacher {path} does not exist",
                          "pass teacher=<run dir>/checkpoints/<file>.ckpt")  # fmt: skip
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    stored = checkpoint.get("dltrain_config") if isinstance(checkpoint, dict) else None
    if not stored:
        raise ConfigError(f"teacher {path} has no dl-train config inside",
                          "pass a checkpoint written by dl-train")  # fmt: skip
    cfg = OmegaConf.create(stored)
    theirs = teacher_inputs(cfg.data)
    if inputs is not None and inputs != theirs:
        differ = sorted(k for k in {*inputs, *theirs} if inputs.get(k) != theirs.get(k))
        raise ConfigError(
            f"teacher {path} reads other inputs than the student (data "
            f"{', '.join(differ)} differ), and both see the same batch",
            "distil from a teacher trained on the same data and tokenizer as the student",
        )
    net = instantiate(cfg.model)
    net.load_state_dict({k[4:]: v for k, v in checkpoint["state_dict"].items()
                         if k.startswith("net.")})  # fmt: skip
    net.requires_grad_(False)
    return net.eval()


def teacher_inputs(data: Any) -> dict[str, Any]:
    """What a data config feeds a net: its shape, or its tokenizer with the split it is
    fitted on (a word-level vocabulary comes from the training split: same settings,
    another seed, other token ids)."""
    from omegaconf import OmegaConf

    if not OmegaConf.is_config(data):
        data = OmegaConf.create(data)
    keys = ("tokenizer", "max_length", "seed", "val_fraction", "test_fraction")
    if OmegaConf.select(data, "tokenizer") is None:
        keys = ("shape",)
    return {k: _plain(OmegaConf.select(data, k)) for k in keys}


def _plain(node: Any) -> Any:
    from omegaconf import OmegaConf

    if not OmegaConf.is_config(node):
        return node
    try:
        return OmegaConf.to_container(node, resolve=True)
    except Exception:  # noqa: BLE001 - an interpolation only the stored run resolves
        return OmegaConf.to_container(node, resolve=False)
