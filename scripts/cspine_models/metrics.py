"""Validation metrics: ROC AUC (rank formula, ties averaged), Dice per class, the competition loss."""

import numpy as np
import torch
import torch.nn.functional as F

VERTEBRA_WEIGHTS = (1.0, 2.0)  # negative, positive
OVERALL_WEIGHTS = (7.0, 14.0)


def auc(y, p):
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=np.float64)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    sp = p[order]
    i = 0
    while i < len(sp):
        j = i
        while j + 1 < len(sp) and sp[j + 1] == sp[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def dice_per_class(pred, target, classes):
    """pred, target: integer arrays of the same shape. Dice for classes 1..classes-1 (nan when absent in both)."""
    out = []
    for c in range(1, classes):
        a, b = pred == c, target == c
        s = a.sum() + b.sum()
        out.append(float(2.0 * (a & b).sum() / s) if s else float("nan"))
    return out


def log_noisy_or(logits, present):
    """log P(overall) and log(1 - P(overall)) for P = 1 - prod(1 - p_k) over present vertebrae; stable."""
    log_not = -(F.softplus(logits) * present).sum(dim=-1)  # log prod(1 - p_k)
    log_p = torch.log((-torch.expm1(log_not)).clamp(min=1e-12))
    return log_p, log_not


def competition_loss(logits, targets, present):
    """The RSNA 2022 metric as a loss, per study: weighted binary cross-entropy over C1..C7 (weights 2 for a
    positive, 1 for a negative) and patient_overall (14/7) taken as the noisy-or of the vertebrae, normalised by
    the weights of the study, averaged over studies.

    logits [B, 7], targets [B, 8] (overall, C1..C7), present [B, 7] (vertebrae with a crop; others left out)."""
    yv = targets[:, 1:].float()
    yo = targets[:, 0].float()
    pres = present.float()
    wv = torch.where(yv > 0.5, VERTEBRA_WEIGHTS[1], VERTEBRA_WEIGHTS[0]) * pres
    lv = F.binary_cross_entropy_with_logits(logits, yv, reduction="none")
    log_p, log_not = log_noisy_or(logits, pres)
    lo = -(yo * log_p + (1 - yo) * log_not)
    wo = torch.where(yo > 0.5, OVERALL_WEIGHTS[1], OVERALL_WEIGHTS[0])
    per_study = ((wv * lv).sum(dim=1) + wo * lo) / (wv.sum(dim=1) + wo)
    return per_study.mean()
