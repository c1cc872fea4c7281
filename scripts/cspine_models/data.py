"""Kaggle-layout folders (the RSNA 2022 data or `cspine synth` output) and the training caches built from them.

A cache holds, per study, exactly the tensors the preprocessing spec gives (float32, no quantisation), so
training reads what cspine feeds the model at inference: per-slice windowed, resized images for the
segmentation (triplets are stacked at training time; windowing and resizing act per slice, so this equals
seg_input), the label map resized with torch's nearest rule, and the classifier input [7, N, C, S, S] built
from the segmentation (or from predicted masks, --masks)."""

import csv
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from . import dicom_io
from . import preprocess as pp
from .contract import VERTEBRAE


def read_labels_csv(path):
    """train.csv -> {uid: [overall, C1..C7]} (ints)."""
    out = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        r = csv.DictReader(f)
        need = ["StudyInstanceUID", "patient_overall"] + VERTEBRAE
        missing = [c for c in need if c not in (r.fieldnames or [])]
        if missing:
            raise SystemExit(f"{path}: missing columns {missing}")
        for row in r:
            out[row["StudyInstanceUID"]] = [int(row["patient_overall"])] + [int(row[c]) for c in VERTEBRAE]
    return out


def find_studies(data_dir, split="train", masks_dir=None):
    """Studies of a Kaggle-layout folder that have images and a segmentation (or a predicted mask)."""
    images = os.path.join(data_dir, f"{split}_images")
    segs = masks_dir or os.path.join(data_dir, "segmentations")
    if not os.path.isdir(images):
        raise SystemExit(f"{data_dir}: no {split}_images/ folder (expected the RSNA 2022 layout)")
    out = []
    for uid in sorted(os.listdir(images)):
        if uid.startswith("."):
            continue
        for ext in (".nii", ".nii.gz"):
            p = os.path.join(segs, uid + ext)
            if os.path.exists(p):
                out.append((uid, os.path.join(images, uid), p))
                break
    return out


def split_of(uid, val_fraction):
    """Deterministic train/validation split by UID hash (stable across runs and machines)."""
    h = int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val_fraction else "train"


def cache_key(seg_contract, cls_contract, masks_dir=None):
    """Names a cache by everything that shapes its tensors: the input specs and where the masks come from
    (crops from predicted masks must never be mistaken for crops from the ground truth)."""
    spec = {"seg": seg_contract["input"] if seg_contract else None, "cls": cls_contract["input"] if cls_contract else None,
            "masks": os.path.abspath(masks_dir) if masks_dir else "segmentations"}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def _cache_one(args):
    uid, image_dir, seg_path, out_path, seg_contract, cls_contract = args
    vol, aff, _ = dicom_io.load_study(image_dir)
    labels = dicom_io.load_labels(seg_path, aff, vol.shape)
    arrays = {}
    if seg_contract is not None:
        i = seg_contract["input"]
        arrays["seg_images"] = pp.window_resize_slices(vol, i["size"], i["hu_window"]).numpy()
        lab = labels.copy()
        lab[lab > 7] = 8  # T1..T3 -> one thoracic class
        arrays["seg_labels"] = pp.resize_labels_nearest(lab, i["size"]).numpy()
    if cls_contract is not None:
        ext = pp.vertebra_extents(labels)
        x, _ = pp.classifier_input(vol, ext, cls_contract)
        arrays["cls_input"] = x.numpy()
        arrays["cls_present"] = np.array([e is not None and e.slices >= cls_contract["input"].get("min_slices", 5) for e in ext])
    tmp = out_path + ".partial.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, out_path)
    return uid


def build_cache(studies, cache_dir, seg_contract, cls_contract, workers=1, log=print):
    """Writes <cache_dir>/<uid>.npz for the studies not cached yet; returns {uid: path}. Resumable."""
    os.makedirs(cache_dir, exist_ok=True)
    todo, paths = [], {}
    for uid, img, seg in studies:
        p = os.path.join(cache_dir, uid + ".npz")
        paths[uid] = p
        if not os.path.exists(p):
            todo.append((uid, img, seg, p, seg_contract, cls_contract))
    if todo:
        t0 = time.time()
        log(f"cache: preprocessing {len(todo)} studies into {cache_dir} ({workers} worker(s))")
        failed = []
        if workers <= 1:
            results = map(_safe(_cache_one), todo)
            for n, r in enumerate(results, 1):
                _progress(n, len(todo), r, failed, t0, log)
        else:
            with ProcessPoolExecutor(workers) as ex:
                for n, r in enumerate(ex.map(_safe(_cache_one), todo, chunksize=1), 1):
                    _progress(n, len(todo), r, failed, t0, log)
        for uid in failed:
            paths.pop(uid, None)
    return paths


class _safe:
    def __init__(self, f):
        self.f = f

    def __call__(self, a):
        try:
            return ("ok", self.f(a))
        except Exception as e:  # one bad study must not stop the cache
            return ("error", a[0], f"{type(e).__name__}: {e}")


def _progress(n, total, r, failed, t0, log):
    if r[0] == "error":
        failed.append(r[1])
        log(f"cache: study {r[1]} skipped: {r[2]}")
    if n % 20 == 0 or n == total:
        log(f"cache: {n}/{total} studies, {time.time() - t0:.0f} s")


def load_cached(paths, keys):
    out = {}
    for uid, p in paths.items():
        with np.load(p) as z:
            out[uid] = {k: z[k] for k in keys if k in z}
    return out


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
