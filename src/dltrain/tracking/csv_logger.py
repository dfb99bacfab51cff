"""Lightning's CSV logger, made safe to resume into the same run directory."""

from __future__ import annotations

import csv
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class ResumableWriter(ExperimentWriter):
    """Keeps an existing ``metrics.csv`` instead of deleting it.

    Lightning's writer removes the file when it starts, so a resumed run would lose
    every row logged before the stop. This one keeps the rows logged before the first
    step it writes (rows from after the checkpoint, which the resumed run logs again,
    are dropped) and appends after them.
    """

    def _check_log_dir_exists(self) -> None:
        self._kept: list[dict[str, str]] | None = None
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self._kept = list(csv.DictReader(f))

    def save(self) -> None:
        if self._kept is not None and self.metrics:
            kept, self._kept = self._kept, None
            first = min(int(m["step"]) for m in self.metrics)
            kept = [row for row in kept if row.get("step") and int(row["step"]) < first]
            self.metrics_keys = sorted({*self.metrics_keys, *(k for r in kept for k in r)})
            with self._fs.open(self.metrics_file_path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(kept)
        super().save()


class CSVLogger(LightningCSVLogger):
    """``lightning.pytorch.loggers.CSVLogger`` whose ``metrics.csv`` survives a resume."""

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ResumableWriter(log_dir=self.log_dir)
        return self._experiment
