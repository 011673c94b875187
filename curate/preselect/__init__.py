"""PreSelect (Shum et al. 2025): predictive-strength labels and fastText quality scorers.

The recipe (the README section "Quality scoring (PreSelect)"), each step a function here and
a ``curate preselect`` command:

1. :func:`compute_losses` — bits per character of every document under N models;
2. :func:`label_documents` — predictive strength per document, balanced positives/negatives;
3. :func:`train_classifier` — fastText supervised with the paper's defaults, plus a
   held-out validation report.

Scoring is the ``fasttext_score`` stage and selection the ``select_top`` stage.
"""

from curate.preselect.label import (
    LabelError,
    LabelResult,
    check_loss_matrix,
    label_documents,
    predictive_strength,
    predictive_strength_counts,
)
from curate.preselect.losses import HFCausalLoss, KenLMLoss, ModelSpec, compute_losses
from curate.preselect.metrics import accuracy, roc_auc
from curate.preselect.train import FastTextTrainConfig, train_classifier

__all__ = [
    "FastTextTrainConfig",
    "HFCausalLoss",
    "KenLMLoss",
    "LabelError",
    "LabelResult",
    "ModelSpec",
    "accuracy",
    "check_loss_matrix",
    "compute_losses",
    "label_documents",
    "predictive_strength",
    "predictive_strength_counts",
    "roc_auc",
    "train_classifier",
]
