"""Held-out metrics of exported models through the whole Python pipeline (predicted masks, not ground-truth
ones): Dice of the segmentation where a ground truth exists, AUC per vertebra and for patient_overall."""

import os
import time

import numpy as np
import torch

from . import contract as ct
from . import data, dicom_io, infer, metrics
from . import preprocess as pp
from .data import log


def evaluate(a):
    if a.threads:
        torch.set_num_threads(a.threads)
    models = infer.Models(a.seg, a.cls, a.device)
    if a.split == "val":
        labels = data.read_labels_csv(os.path.join(a.data, "train.csv"))
        studies = [(u, img, seg) for u, img, seg in data.find_studies(a.data)
                   if data.split_of(u, a.val_fraction) == "val" and u in labels]
    else:
        labels = data.read_labels_csv(os.path.join(a.data, "test_labels.csv"))
        root = os.path.join(a.data, "test_images")
        studies = [(u, os.path.join(root, u), None) for u in sorted(os.listdir(root)) if u in labels]
    if a.max_studies:
        studies = studies[:a.max_studies]
    if not studies:
        raise SystemExit(f"{a.data}: no {a.split} studies with labels")
    classes = len(models.seg_contract["output"]["classes"])
    inter, total = np.zeros(classes), np.zeros(classes)
    probs, truth, found_all = [], [], []
    t0 = time.time()
    for n, (uid, img, seg) in enumerate(studies, 1):
        vol, aff, _ = dicom_io.load_study(img)
        r = infer.predict_volume(models, vol)
        if seg is not None:
            gt = dicom_io.load_labels(seg, aff, vol.shape)
            gt[gt > 7] = 8
            gt_small = pp.resize_labels_nearest(gt, models.seg_contract["input"]["size"]).numpy()
            for c in range(1, classes):
                x, y = r["labels_small"] == c, gt_small == c
                inter[c] += (x & y).sum()
                total[c] += x.sum() + y.sum()
        probs.append(np.concatenate([[r["overall"]], r["p"]]))
        truth.append(labels[uid])
        found_all.append(r["found"])
        if n % 10 == 0 or n == len(studies):
            log(f"evaluate: {n}/{len(studies)} studies, {(time.time() - t0) / n:.1f} s/study")
    p, y, found = np.array(probs), np.array(truth), np.array(found_all)
    if getattr(a, "predictions_csv", None):
        # wide layout, readable by `cspine evaluate --predictions` (bootstrap confidence intervals)
        tmp = a.predictions_csv + ".partial"
        with open(tmp, "w") as f:
            f.write("StudyInstanceUID,patient_overall," + ",".join(ct.VERTEBRAE) + "\n")
            for (uid, _, _), row in zip(studies, p):
                f.write(uid + "," + ",".join(f"{v:.6f}" for v in row) + "\n")
        os.replace(tmp, a.predictions_csv)
    out = {
        "split": a.split,
        "studies": len(studies),
        "positives_patient": int(y[:, 0].sum()),
        "auc_patient": metrics.auc(y[:, 0], p[:, 0]),
        "auc": {ct.VERTEBRAE[v]: metrics.auc(y[:, v + 1], p[:, v + 1]) for v in range(7)},
        "auc_vertebrae_pooled": metrics.auc(y[:, 1:].ravel(), p[:, 1:].ravel()),
        "vertebrae_found": float(found.mean()),
        "competition_loss": float(metrics.competition_loss(
            torch.logit(torch.tensor(p[:, 1:]).clamp(1e-6, 1 - 1e-6)), torch.tensor(y), torch.ones(len(y), 7)).item()),
        "seconds_per_study": (time.time() - t0) / len(studies),
        "device": a.device,
    }
    if total[1:].sum():
        names = models.seg_contract["output"]["classes"][1:]
        dice = [float(2 * inter[c] / total[c]) if total[c] else float("nan") for c in range(1, classes)]
        out["dice"] = dict(zip(names, dice))
        out["dice_mean_c1_c7"] = float(np.nanmean(dice[:7]))
    return out


def write_masks(a):
    """Predicted label maps (upsampled to the CT grid) for every study of a split, as NIfTI: training the
    classifier on crops from predicted masks matches what it gets at inference."""
    if a.threads:
        torch.set_num_threads(a.threads)
    c = ct.read(a.seg)
    if c["kind"] != "segmentation":
        raise SystemExit(f"{a.seg}: not a segmentation model")
    seg = torch.jit.load(str(a.seg), map_location=a.device).eval()
    models = type("M", (), {"seg": seg, "seg_contract": c, "device": torch.device(a.device)})()
    root = os.path.join(a.data, f"{a.split}_images")
    os.makedirs(a.out, exist_ok=True)
    n, t0 = 0, time.time()
    uids = sorted(u for u in os.listdir(root) if not u.startswith("."))
    for i, uid in enumerate(uids, 1):
        path = os.path.join(a.out, uid + ".nii")
        if os.path.exists(path):
            continue
        try:
            vol, aff, _ = dicom_io.load_study(os.path.join(root, uid))
        except Exception as e:  # one unreadable study must not stop the others
            log(f"masks: {uid} skipped: {e}")
            continue
        small = infer.segment(models, vol)
        infer.write_label_nifti(infer.labels_to_ct_grid(small, vol.shape[1], vol.shape[2]), aff, path)
        n += 1
        if i % 20 == 0 or i == len(uids):
            log(f"masks: {i}/{len(uids)} studies, {(time.time() - t0) / max(n, 1):.1f} s/study")
    return n
