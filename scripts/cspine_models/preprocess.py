"""The preprocessing spec, in Python. The C++ engine (src/pipeline/preprocess.cpp) implements the same steps and
tests/python/test_preprocess_parity.py checks both give the same tensors on the same study. Change one side
only together with the other; docs/model-contract.md states the rules in words.

Volumes are numpy int16 arrays [slices, rows, columns] in HU, slices sorted by increasing position along the
slice normal (row cosine x column cosine), rows and columns as stored in the DICOM files.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

OUTSIDE_VALUE = 0.0  # windowed value of pixels a crop takes from outside the image


def window(hu, hu_window):
    """HU -> [0, 1]: (hu - low) / (high - low), clipped; float32 arithmetic."""
    lo, hi = np.float32(hu_window[0]), np.float32(hu_window[1])
    x = (np.asarray(hu).astype(np.float32) - lo) / (hi - lo)
    return np.clip(x, np.float32(0.0), np.float32(1.0))


def resize(images, size):
    """Bilinear resize of [..., H, W] float32 images (align_corners=False, no antialiasing)."""
    t = torch.as_tensor(images, dtype=torch.float32)
    shape = t.shape
    t = t.reshape(-1, 1, shape[-2], shape[-1])
    out = F.interpolate(t, size=(int(size[0]), int(size[1])), mode="bilinear", align_corners=False)
    return out.reshape(*shape[:-2], int(size[0]), int(size[1]))


def triplet_indices(k, offsets, n_slices):
    return [min(max(k + o, 0), n_slices - 1) for o in offsets]


def window_resize_slices(volume, size, hu_window):
    """Every slice windowed and resized to the model size: float32 tensor [Z, H, W]. Segmentation inputs are
    stacks of these (see seg_input)."""
    return resize(window(volume, hu_window), size)


def seg_input(volume, slices, contract):
    """Segmentation input for the given slice indices: float32 tensor [len(slices), C, H, W]."""
    i = contract["input"]
    z = volume.shape[0]
    out = []
    for k in slices:
        idx = triplet_indices(int(k), i["slice_offsets"], z)
        out.append(resize(window(volume[idx], i["hu_window"]), i["size"]))
    return torch.stack(out) if out else torch.zeros((0, i["channels"], *i["size"]))


def stack_triplets(resized, slices, offsets):
    """Build seg inputs [n, C, H, W] from per-slice resized images [Z, H, W] (same result as seg_input,
    since windowing and resizing act on each slice alone)."""
    z = resized.shape[0]
    idx = [triplet_indices(int(k), offsets, z) for k in slices]
    return resized[torch.as_tensor(idx, dtype=torch.long)]


class Extent:
    """Where one vertebra is in the CT grid: inclusive index ranges and how many slices hold it."""

    def __init__(self, label, z0, z1, y0, y1, x0, x1, slices, voxels):
        self.label, self.z0, self.z1, self.y0, self.y1, self.x0, self.x1 = label, z0, z1, y0, y1, x0, x1
        self.slices, self.voxels = slices, voxels

    def as_dict(self):
        return dict(label=self.label, z=[self.z0, self.z1], y=[self.y0, self.y1], x=[self.x0, self.x1],
                    slices=self.slices, voxels=self.voxels)


def vertebra_extents(labels):
    """labels: uint8 [Z, R, C] with 1..7 = C1..C7. Returns a list of 7 Extent or None (label absent)."""
    out = []
    for v in range(1, 8):
        m = labels == v
        if not m.any():
            out.append(None)
            continue
        zs = np.nonzero(m.any(axis=(1, 2)))[0]
        ys = np.nonzero(m.any(axis=(0, 2)))[0]
        xs = np.nonzero(m.any(axis=(0, 1)))[0]
        out.append(Extent(v, int(zs[0]), int(zs[-1]), int(ys[0]), int(ys[-1]), int(xs[0]), int(xs[-1]), int(len(zs)),
                          int(m.sum())))
    return out


def crop_box(e, margin):
    """Square crop around the vertebra's in-plane box: side = ceil(max(w, h) * (1 + 2 * margin)) pixels, centred
    on the box (floor when the centre falls between pixels). Returns (x0, y0, side), half-open, may extend past
    the image."""
    w, h = e.x1 - e.x0 + 1, e.y1 - e.y0 + 1
    side = int(math.ceil(max(w, h) * (1.0 + 2.0 * margin)))
    ox = (e.x0 + e.x1 + 1 - side) // 2
    oy = (e.y0 + e.y1 + 1 - side) // 2
    return ox, oy, side


def select_slices(e, n):
    """n slice indices spread evenly over [z0, z1] (both ends included), rounded half up."""
    if n == 1:
        return [int(math.floor((e.z0 + e.z1) / 2.0 + 0.5))]
    return [e.z0 + int(math.floor((e.z1 - e.z0) * j / (n - 1) + 0.5)) for j in range(n)]


def crop_windowed(img, ox, oy, side):
    """Crop [side, side] from a windowed slice [R, C] at (ox, oy); outside pixels get OUTSIDE_VALUE."""
    r, c = img.shape
    out = np.full((side, side), OUTSIDE_VALUE, dtype=np.float32)
    x0, x1 = max(ox, 0), min(ox + side, c)
    y0, y1 = max(oy, 0), min(oy + side, r)
    if x1 > x0 and y1 > y0:
        out[y0 - oy:y1 - oy, x0 - ox:x1 - ox] = img[y0:y1, x0:x1]
    return out


def vertebra_input(volume, e, contract):
    """Classifier input for one vertebra: float32 tensor [N, C, S, S]; also returns the slice indices used."""
    i = contract["input"]
    ox, oy, side = crop_box(e, i["crop_margin"])
    z = volume.shape[0]
    picked = select_slices(e, i["slices_per_vertebra"])
    crops = []
    for k in picked:
        for s in triplet_indices(k, i["slice_offsets"], z):
            crops.append(crop_windowed(window(volume[s], i["hu_window"]), ox, oy, side))
    x = resize(np.stack(crops), i["size"])
    return x.reshape(len(picked), len(i["slice_offsets"]), *i["size"]), picked


def classifier_input(volume, extents, contract):
    """All seven vertebrae: float32 tensor [7, N, C, S, S] (zeros for a vertebra without extent), the picked
    slice indices per vertebra (None when absent)."""
    i = contract["input"]
    n, c, size = i["slices_per_vertebra"], len(i["slice_offsets"]), i["size"]
    x = torch.zeros((7, n, c, size[0], size[1]), dtype=torch.float32)
    picked = []
    for v, e in enumerate(extents):
        if e is None:
            picked.append(None)
            continue
        x[v], p = vertebra_input(volume, e, contract)
        picked.append(p)
    return x, picked


def resize_labels_nearest(labels, size):
    """Label map [Z, R, C] -> [Z, H, W] with torch's 'nearest' rule (source index floor(dst * in / out)): the
    segmentation targets at model resolution."""
    t = torch.as_tensor(np.ascontiguousarray(labels)).to(torch.uint8)[:, None].float()
    return F.interpolate(t, size=(int(size[0]), int(size[1])), mode="nearest")[:, 0].to(torch.uint8)


def noisy_or(p):
    """patient_overall = 1 - prod(1 - p_Ck) over the vertebrae (last axis)."""
    p = np.asarray(p, dtype=np.float64)
    return 1.0 - np.prod(1.0 - p, axis=-1)
