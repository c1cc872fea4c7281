"""Running exported models on a study in Python: segmentation over every slice, vertebra extents from the
predicted label map, classifier on the crops. Used for held-out metrics of trained models (and as the
building block of a Python reference pipeline)."""

import numpy as np
import torch

from . import contract as ct
from . import preprocess as pp


class Models:
    def __init__(self, seg_path, cls_path, device="cpu"):
        self.device = torch.device(device)
        self.seg_contract = ct.read(seg_path)
        self.cls_contract = ct.read(cls_path)
        if self.seg_contract["kind"] != "segmentation" or self.cls_contract["kind"] != "classifier":
            raise ct.ContractError("expected a segmentation model and a classifier model")
        self.seg = torch.jit.load(str(seg_path), map_location=self.device).eval()
        self.cls = torch.jit.load(str(cls_path), map_location=self.device).eval()


def segment(models, volume, batch_size=32):
    """Label map at the model's resolution [Z, H, W] (argmax over classes)."""
    c = models.seg_contract
    i = c["input"]
    resized = pp.window_resize_slices(volume, i["size"], i["hu_window"])
    out = []
    with torch.inference_mode():
        for s in range(0, volume.shape[0], batch_size):
            x = pp.stack_triplets(resized, range(s, min(s + batch_size, volume.shape[0])), i["slice_offsets"])
            out.append(models.seg(x.to(models.device)).argmax(1).to(torch.uint8).cpu())
    return torch.cat(out).numpy()


def keep_largest_components(labels, first=1, last=7):
    """Per label in [first, last], keep only its largest 3-D connected component (face connectivity); ties go
    to the component met first in C order. Works in place on a [Z, H, W] uint8 map; returns voxels removed.
    The engine does the same with ITK (keep_largest_components in src/image/label_components.cpp)."""
    try:
        from scipy import ndimage
        label = ndimage.label  # default structure: faces only
    except ImportError:  # a PyTorch install without scipy (the GPU benchmark machine)
        label = _label_faces_torch
    removed = 0
    for lab in range(first, last + 1):
        mask = labels == lab
        if not mask.any():
            continue
        comp, n = label(mask)
        if n <= 1:
            continue
        sizes = np.bincount(comp.ravel(), minlength=n + 1)
        sizes[0] = 0
        keep = int(np.argmax(sizes))  # first maximum: components are numbered in C order of their first voxel
        drop = mask & (comp != keep)
        removed += int(drop.sum())
        labels[drop] = 0
    return removed


def _label_faces_torch(mask):
    """scipy.ndimage.label's result (face connectivity, components numbered in C order of their first voxel)
    with torch only: each voxel takes the smallest linear index among its face neighbours until nothing
    changes, then the roots are renumbered in order."""
    m = torch.as_tensor(np.ascontiguousarray(mask))
    big = m.numel()
    ids = torch.where(m, torch.arange(big).view(m.shape), torch.full(m.shape, big))
    while True:
        pad = torch.nn.functional.pad(ids[None, None].double(), (1, 1, 1, 1, 1, 1), value=float(big))[0, 0].long()
        best = ids
        for dz, dy, dx in ((0, 1, 1), (2, 1, 1), (1, 0, 1), (1, 2, 1), (1, 1, 0), (1, 1, 2)):
            best = torch.minimum(best, pad[dz:dz + m.shape[0], dy:dy + m.shape[1], dx:dx + m.shape[2]])
        best = torch.where(m, best, ids)
        if torch.equal(best, ids):
            break
        ids = best
    roots = torch.unique(ids[m])  # sorted: the order of each component's first voxel
    comp = torch.zeros(m.shape, dtype=torch.int64)
    comp[m] = torch.searchsorted(roots, ids[m]) + 1
    return comp.numpy(), int(roots.numel())


def labels_to_ct_grid(labels, rows, cols):
    """Nearest-neighbour upsampling of [Z, H, W] labels to [Z, rows, cols] (torch's 'nearest' rule)."""
    return pp.resize_labels_nearest(labels, (rows, cols)).numpy()


def classify(models, volume, extents):
    """Per-vertebra probabilities (prior where a vertebra is missing or too thin) and attention."""
    c = models.cls_contract
    prior = c["output"]["prior"]
    min_slices = c["input"].get("min_slices", 5)
    usable = [e if e is not None and e.slices >= min_slices else None for e in extents]
    x, picked = pp.classifier_input(volume, usable, c)
    with torch.inference_mode():
        logit, att = models.cls(x.to(models.device))
    p = torch.sigmoid(logit).cpu().numpy().astype(np.float64)
    found = np.array([e is not None for e in usable])
    p = np.where(found, p, np.array(prior))
    return p, att.cpu().numpy(), found, picked


def predict_volume(models, volume, cleanup=True):
    lab_small = segment(models, volume)
    if cleanup:
        keep_largest_components(lab_small)
    lab = labels_to_ct_grid(lab_small, volume.shape[1], volume.shape[2])
    extents = pp.vertebra_extents(lab)
    p, att, found, picked = classify(models, volume, extents)
    return {"p": p, "overall": float(pp.noisy_or(p)), "found": found, "labels_small": lab_small, "attention": att}


def write_label_nifti(labels, affine_lps, path):
    """A label map [Z, R, C] on the CT grid as NIfTI (uint8, RAS affine from the CT's geometry), written
    atomically; readable by dicom_io.load_labels and any header-aware viewer."""
    import os

    import nibabel as nib
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps
    img = nib.Nifti1Image(np.ascontiguousarray(np.transpose(labels, (2, 1, 0))).astype(np.uint8), ras)
    tmp = path + ".partial.nii"
    nib.save(img, tmp)
    os.replace(tmp, path)
