"""Hydra sweeper plugin: ``hydra/sweeper=dltrain_optuna`` runs an Optuna study whose
trials report to it and can be pruned. The logic lives in ``dltrain.sweep``; Hydra
imports this package on every start, so it imports nothing heavy."""
