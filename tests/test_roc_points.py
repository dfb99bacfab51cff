"""The ROC curves a run draws (records/roc_points.py): torchmetrics' points, the same
AUROC as scikit-learn's, one curve per class that has both kinds of rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from dltrain.records.roc_points import roc_points


def test_one_vs_rest_curves_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, 4, 300)
    probs = rng.dirichlet(np.ones(4), 300)
    probs[np.arange(300), target] += 0.3  # some signal: AUROCs well above 0.5
    curves = roc_points(probs, target)
    assert [c.label for c in curves] == [0, 1, 2, 3]
    for c in curves:
        positives = target == c.label
        assert c.auroc == pytest.approx(roc_auc_score(positives, probs[:, c.label]), abs=1e-6)
        fpr, tpr, _ = roc_curve(positives, probs[:, c.label], drop_intermediate=False)
        assert (c.fpr[0], c.tpr[0], c.fpr[-1], c.tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
        # The same points, threshold by threshold.
        assert np.allclose(c.fpr, fpr) and np.allclose(c.tpr, tpr)


def test_binary_task_draws_the_positive_class_and_skips_a_class_without_both_kinds() -> None:
    target = np.array([0, 1, 1, 0, 1])
    probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4], [0.7, 0.3]])
    (curve,) = roc_points(probs, target)
    assert curve.label == 1
    assert curve.auroc == pytest.approx(roc_auc_score(target, probs[:, 1]))
    # Class 2 has no rows at all in this test split: no curve (not a flat line).
    three = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]])
    assert [c.label for c in roc_points(three, np.array([0, 1, 0]))] == [0, 1]
