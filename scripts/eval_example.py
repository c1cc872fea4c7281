#!/usr/bin/python3
"""Writes the random inputs behind the example `cspine evaluate` table in docs/evaluate.md: NOT model results.

200 studies, about 45% fractured; prediction = clip(0.25 + 0.45 * label + N(0, 0.22)), rounded to 4 decimals;
a report whose key slices fall near made-up boxes. Usage: scripts/eval_example.py OUT_DIR
"""
import json
import pathlib
import sys

import numpy as np

out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "data/generated/eval-example")
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(1)
n = 200
uids = [f"1.2.826.0.1.3680043.{1000 + i}" for i in range(n)]
names = ["patient_overall"] + [f"C{i}" for i in range(1, 8)]
y = np.zeros((n, 8), int)
for i in range(n):
    if rng.random() < 0.45:
        y[i, rng.integers(1, 8)] = 1
        for j in range(1, 8):
            if rng.random() < 0.12:
                y[i, j] = 1
    y[i, 0] = int(y[i, 1:].any())
p = np.clip(0.25 + 0.45 * y + rng.normal(0, 0.22, y.shape), 0, 1).round(4)
with open(out / "train.csv", "w") as f:
    f.write("StudyInstanceUID," + ",".join(names) + "\n")
    for u, row in zip(uids, y):
        f.write(u + "," + ",".join(map(str, row)) + "\n")
with open(out / "submission.csv", "w") as f:
    f.write("row_id,fractured\n")
    for u, row in zip(uids, p):
        for k in [1, 2, 3, 4, 5, 6, 7, 0]:
            f.write(f"{u}_{names[k]},{float(row[k])!r}\n")
report = {"studies": []}
boxes = ["StudyInstanceUID,x,y,width,height,slice_number"]
for i, u in enumerate(uids):
    vertebrae = {}
    for k in range(1, 8):
        lo = 20 + (k - 1) * 25
        key = lo + 6 + int(rng.integers(-10, 10))
        vertebrae[f"C{k}"] = {"probability": float(p[i, k]),
                              "key_slice": {"index": key - 1, "slice_number": key, "z_mm": -2.5 * key},
                              "slice_range": [lo, lo + 24]}
        if y[i, k]:
            boxes += [f"{u},10,10,5,5,{s}" for s in range(lo + 4, lo + 12)]
    report["studies"].append({"study_uid": u, "vertebrae": vertebrae})
(out / "report.json").write_text(json.dumps(report))
(out / "train_bounding_boxes.csv").write_text("\n".join(boxes) + "\n")
print(out)
