"""The LightningModule (what is learned: loss, metrics, optimizers) and its schedules."""
