"""Entry points and recipes: dl-train, dl-eval, dl-predict, dl-report.

Nothing imports this layer."""
