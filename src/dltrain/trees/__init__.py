"""Gradient-boosted trees (XGBoost, LightGBM) on the same preprocessed tables as the
nets. No Lightning: the boosting libraries run their own loop; ``trees/recipe.py``
gives them the runner's data, metrics, records and sweeps."""
