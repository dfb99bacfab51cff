"""Optuna studies driven by Hydra: search spaces, storage, the ask/launch/tell loop and
the end-of-sweep report. The Hydra plugin in ``hydra_plugins.dltrain_optuna`` is a thin
adapter around these modules, so Hydra's plugin scan (run on every ``dl-train`` start)
imports nothing heavy."""
