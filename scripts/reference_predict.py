#!/usr/bin/python3
"""The cspine pipeline in Python (pydicom, numpy, PyTorch), as a competent Kaggle notebook would write it:
the reference `cspine predict` is checked against (per-vertebra probabilities within 1e-4) and the peer of
the performance benchmarks. Same defaults and model files as `cspine predict`.

    scripts/reference_predict.py INPUT -o submission.csv [--test-csv test.csv] [--wide-csv wide.csv]
        [--seg-model models/seg.pt] [--cls-model models/cls.pt] [--device auto|cpu|cuda] [--batch-size 32]
        [--threads N] [--timings timings.json]

Per study: read the CT series (pydicom; the series with most axial images, sorted along the slice normal, HU),
window + resize every slice once, segmentation on 2.5D triplets in batches (inference mode), argmax, largest
3-D connected component per vertebra (scipy.ndimage), nearest-neighbour label map on the CT grid, vertebra
extents, square crops of N slices, classifier on the seven vertebrae in one batch, sigmoid, the contract's
prior for a vertebra missing or on fewer than min_slices slices, noisy-or for patient_overall.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from cspine_models import contract as ct  # noqa: E402
from cspine_models import dicom_io, infer  # noqa: E402
from cspine_models import preprocess as pp  # noqa: E402

VERTEBRAE = [f"C{i}" for i in range(1, 8)]


def study_folders(root):
    """Folders that hold DICOM files directly: one study each (test_images/<UID>/<n>.dcm)."""
    root = Path(root)
    out = []
    for d, _, files in os.walk(root):
        if any(f.endswith(".dcm") or not Path(f).suffix for f in files if not f.startswith(".")):
            out.append(Path(d))
    return sorted(out)


def predict_study(models, folder, batch_size):
    t = {}
    t0 = time.perf_counter()
    vol, _, headers = dicom_io.load_study(folder)
    uid = str(headers[0].StudyInstanceUID)
    t["load"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    small = infer.segment(models, vol, batch_size=batch_size)
    t["segment"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    infer.keep_largest_components(small)
    labels = infer.labels_to_ct_grid(small, vol.shape[1], vol.shape[2])
    extents = pp.vertebra_extents(labels)
    t["cleanup"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    p, _, _, _ = infer.classify(models, vol, extents)
    t["classify"] = time.perf_counter() - t0
    return uid, np.asarray(p, dtype=np.float64), float(pp.noisy_or(p)), t


def read_test_rows(path):
    import csv
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r["row_id"] for r in csv.DictReader(f)]
    return rows


def split_row_id(row):
    if row.endswith("_patient_overall"):
        return row[: -len("_patient_overall")], 0
    return row[:-3], int(row[-1])


def write_atomically(path, text):
    tmp = f"{path}.partial"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--test-csv")
    ap.add_argument("--wide-csv")
    ap.add_argument("--seg-model", default=str(ROOT / "models" / "seg.pt"))
    ap.add_argument("--cls-model", default=str(ROOT / "models" / "cls.pt"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--timings", help="JSON file with seconds per study and stage")
    a = ap.parse_args(argv)

    # All cores unless told otherwise: torch's own default can be one thread (it is on the 2-core dev VM).
    torch.set_num_threads(a.threads if a.threads > 0 else len(os.sched_getaffinity(0)))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    t0 = time.perf_counter()
    models = infer.Models(a.seg_model, a.cls_model, device=device)
    load_models = time.perf_counter() - t0
    prior = np.array(models.cls_contract["output"]["prior"], dtype=np.float64)

    results, timings, failed = {}, {}, []
    folders = study_folders(a.input)
    for folder in folders:
        try:
            uid, p, overall, t = predict_study(models, folder, a.batch_size)
        except (dicom_io.StudyError, ct.ContractError, ValueError, RuntimeError) as e:
            print(f"reference_predict: {folder}: failed: {e}", file=sys.stderr)
            failed.append(str(folder))
            continue
        results[uid] = (overall, p)
        timings[uid] = t
        print(f"reference_predict: {uid}: patient {overall:.3f}, {sum(t.values()):.2f} s "
              f"({', '.join(f'{k} {v:.2f}' for k, v in t.items())})", file=sys.stderr)

    def fmt(x):
        return f"{x:.6f}"

    lines = ["row_id,fractured"]
    if a.test_csv:
        fill = (float(1 - np.prod(1 - prior)), prior)
        for row in read_test_rows(a.test_csv):
            uid, k = split_row_id(row)
            overall, p = results.get(uid, fill)
            lines.append(f"{row},{fmt(overall if k == 0 else p[k - 1])}")
    else:
        for uid in sorted(results):
            overall, p = results[uid]
            lines += [f"{uid}_{v},{fmt(p[i])}" for i, v in enumerate(VERTEBRAE)]
            lines.append(f"{uid}_patient_overall,{fmt(overall)}")
    write_atomically(a.output, "\n".join(lines) + "\n")
    if a.wide_csv:
        wide = ["StudyInstanceUID,patient_overall," + ",".join(VERTEBRAE)]
        for uid in sorted(results):
            overall, p = results[uid]
            wide.append(",".join([uid, fmt(overall)] + [fmt(x) for x in p]))
        write_atomically(a.wide_csv, "\n".join(wide) + "\n")
    if a.timings:
        write_atomically(a.timings, json.dumps({"device": device, "load_models_s": load_models,
                                                "studies": timings}, indent=1) + "\n")
    n = len(timings)
    if n:
        stages = {k: sum(t[k] for t in timings.values()) / n for k in ("load", "segment", "cleanup", "classify")}
        print(f"reference_predict: {n} studies, {len(failed)} failed; seconds per study {sum(stages.values()):.2f} ("
              + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()) + ")", file=sys.stderr)
    return 7 if failed and results else (5 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
