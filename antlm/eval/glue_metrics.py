"""GLUE metrics and best-epoch selection.

Metrics come as fractions (the pipelines' units, which early stopping's threshold is in) and as
0-100 (what antlm prints). They follow sklearn's conventions: F1 of the positive class is 0 when
it has no true positives, and the Matthews correlation is 0 when its denominator is.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional


def accuracy_fraction(preds: Iterable[int], labels: Iterable[int]) -> float:
    pairs = list(zip(preds, labels))
    return sum(p == y for p, y in pairs) / len(pairs) if pairs else 0.0


def f1_fraction(preds: Iterable[int], labels: Iterable[int], positive: int = 1) -> float:
    tp = fp = fn = 0
    for p, y in zip(preds, labels):
        tp += p == positive and y == positive
        fp += p == positive and y != positive
        fn += p != positive and y == positive
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def matthews_fraction(preds: Iterable[int], labels: Iterable[int]) -> float:
    """Matthews correlation for any number of classes (Gorodkin's R_K; for two classes it is
    (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)))."""
    pairs = list(zip(preds, labels))
    n = len(pairs)
    classes = {c for pair in pairs for c in pair}
    correct = sum(p == y for p, y in pairs)
    pred_counts = {c: sum(p == c for p, _ in pairs) for c in classes}
    true_counts = {c: sum(y == c for _, y in pairs) for c in classes}
    covariance = correct * n - sum(pred_counts[c] * true_counts[c] for c in classes)
    pred_var = n * n - sum(v * v for v in pred_counts.values())
    true_var = n * n - sum(v * v for v in true_counts.values())
    return covariance / math.sqrt(pred_var * true_var) if pred_var and true_var else 0.0


def accuracy(preds: Iterable[int], labels: Iterable[int]) -> float:
    return 100.0 * accuracy_fraction(preds, labels)


def binary_f1(preds: Iterable[int], labels: Iterable[int], positive: int = 1) -> float:
    """F1 of the positive class, 0-100."""
    return 100.0 * f1_fraction(preds, labels, positive)


def matthews(preds: Iterable[int], labels: Iterable[int]) -> float:
    """Matthews correlation x 100 (-100..100)."""
    return 100.0 * matthews_fraction(preds, labels)


def metric_fractions(preds: list[int], labels: list[int], num_labels: int) -> dict[str, float]:
    """accuracy always; f1 and mcc for two-label tasks (what either pipeline computes)."""
    out = {"accuracy": accuracy_fraction(preds, labels)}
    if num_labels == 2:
        out["f1"] = f1_fraction(preds, labels)
        out["mcc"] = matthews_fraction(preds, labels)
    return out


class EarlyStopping:
    """Best-epoch tracking and early stopping as a Hugging Face Trainer with EarlyStoppingCallback:

    - the best epoch is the one with the strictly highest value (ties keep the earlier one), as
      Trainer's best-checkpoint tracking (np.greater) and the 2025 trainer (`current > best`);
    - patience resets only when a value beats the best so far by MORE than `threshold`; a smaller
      gain still becomes the best epoch but counts as an epoch without improvement
      (EarlyStoppingCallback.check_metric_value compares with state.best_metric, which Trainer
      updates on every strict gain);
    - training stops once `patience` epochs in a row did not reset it; patience None never stops.
    """

    def __init__(self, patience: Optional[int], threshold: float = 0.0):
        self.patience, self.threshold = patience, threshold
        self.best: Optional[float] = None
        self.best_epoch, self.bad_epochs = 0, 0

    def update(self, value: float, epoch: int) -> bool:
        """Record one epoch's value; True when it is the new best epoch."""
        if self.best is None or (value > self.best and value - self.best > self.threshold):
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        if self.best is None or value > self.best:
            self.best, self.best_epoch = value, epoch
            return True
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_epochs >= self.patience


def select_epoch(history: list[dict], metric: str, patience: Optional[int], threshold: float = 0.0,
                 max_epochs: Optional[int] = None) -> tuple[int, int]:
    """(best epoch, epochs run) when the per-epoch validation metrics (fractions, `history[i]` for
    epoch i+1) are seen one by one under `EarlyStopping(patience, threshold)`: what fine-tuning
    would have kept and where it would have stopped."""
    stopper = EarlyStopping(patience, threshold)
    epochs = 0
    for epochs, metrics in enumerate(history[:max_epochs] if max_epochs else history, start=1):
        stopper.update(metrics[metric], epochs)
        if stopper.should_stop:
            break
    return stopper.best_epoch, epochs
