"""dl-train: Hydra configs composed into a Lightning run."""

__version__ = "0.1.0"
