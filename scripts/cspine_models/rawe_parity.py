"""Stage-by-stage comparison of cspine's run of the RSNA 2022 second-place (RAWE) models with the team's own
notebook run by the oracle (../shared/oracles/rawe/run_rawe.py --dump): slice order, segmentation labels, study
box, per-slice classes, picked slices and fallbacks (all equal), classifier inputs (max |difference|), per-member
probabilities and the submission (max |difference|).

  /usr/bin/python3 -m cspine_models.rawe_parity ORACLE_DUMP CSPINE_DUMP ORACLE_CSV CSPINE_CSV [--json OUT]

(run from scripts/, or with scripts/ on PYTHONPATH). CSPINE_DUMP is `cspine predict --dump-stages DIR`. Prints one
line per study and stage; exits 1 when an exact stage differs or a tolerance (--input-tol 1e-5, --prob-tol 1e-4)
is exceeded.
"""
import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

INPUT_TOL = 1e-5
PROB_TOL = 1e-4


def _csv(path):
    with open(path, newline="") as f:
        return {row["row_id"]: float(row["fractured"]) for row in csv.DictReader(f)}


def compare_study(odir, cdir):
    """One study: a dict of figures and a list of exact-stage differences (empty when equal)."""
    o = json.loads((odir / "study.json").read_text())
    c = json.loads((cdir / "stages.json").read_text())
    diffs, fig = [], {}
    if o["slices"]["slice_num"] != c["slice_numbers"]:
        diffs.append("slice order differs")
    ol = np.load(odir / "seg_labels.npz")["labels"]
    cl = np.load(cdir / "labels.npy")
    if ol.shape != cl.shape:
        diffs.append(f"label volume shape {cl.shape} != oracle {ol.shape}")
    else:
        fig["label_pixels_differing"] = int((ol != cl).sum())
        if fig["label_pixels_differing"]:
            diffs.append(f"{fig['label_pixels_differing']} label pixels differ")
    ob = o["box"]
    cb = c.get("box") or {}
    box_o = [ob["x0"], ob["x1"], ob["y0"], ob["y1"], ob["z0"], ob["z1"]]
    box_c = [cb.get(k) for k in ("slice0", "slice1", "row0", "row1", "col0", "col1")]
    fig["box"] = box_c
    if box_o != box_c:
        diffs.append(f"study box {box_c} != oracle {box_o}")
    if [int(x) for x in o["slice_class"]["vertebra_class"]] != c.get("slice_class"):
        diffs.append("per-slice classes differ")
    kept = {v["cid"]: v["slice_num_list"] for v in o["vertebrae"]}
    for v in c["vertebrae"]:
        cid = v["cid"]
        if cid in kept:
            if v["fallback"] or v["picked_slice_numbers"] != kept[cid]:
                diffs.append(f"C{cid}: picked {v['picked_slice_numbers']} ({v['fallback'] or 'classified'}) != oracle {kept[cid]}")
        elif not v["fallback"]:
            diffs.append(f"C{cid} classified by cspine, skipped by the oracle")
    if sorted(o["skipped_cids"]) != sorted(v["cid"] for v in c["vertebrae"] if v["fallback"]):
        diffs.append(f"skipped vertebrae differ: oracle {o['skipped_cids']}")
    # classifier inputs, per classified vertebra
    fig["cls_input_max_abs"] = 0.0
    if (odir / "cls_input.npz").exists() and c["classified"]:
        oi = np.load(odir / "cls_input.npz")
        ci = np.load(cdir / "cls_input.npy")
        for item, k in enumerate(c["classified"]):
            name = f"C{k + 1}"
            if name not in oi:
                diffs.append(f"{name}: no oracle classifier input")
                continue
            a, b = oi[name], ci[item].reshape(oi[name].shape) if ci[item].size == oi[name].size else None
            if b is None:
                diffs.append(f"{name}: classifier input shape {ci[item].shape} != oracle {a.shape}")
                continue
            fig["cls_input_max_abs"] = max(fig["cls_input_max_abs"], float(np.abs(a.astype(np.float64) - b).max()))
    # per-member probabilities
    fig["member_prob_max_abs"] = 0.0
    if c["classified"]:
        op = np.load(odir / "probs.npz")
        cids = [int(x) for x in op["cids"]]
        m = c["members"]
        logits = np.asarray(c["member_logits"], dtype=np.float64).reshape(len(c["classified"]), m)
        cp = 1.0 / (1.0 + np.exp(-logits))
        for item, k in enumerate(c["classified"]):
            if k + 1 in cids:
                j = cids.index(k + 1)
                fig["member_prob_max_abs"] = max(fig["member_prob_max_abs"],
                                                 float(np.abs(op["probs"][:, j].astype(np.float64) - cp[item]).max()))
    return fig, diffs


def compare(oracle_dump, cspine_dump, oracle_csv, cspine_csv, input_tol=INPUT_TOL, prob_tol=PROB_TOL):
    oracle_dump, cspine_dump = Path(oracle_dump), Path(cspine_dump)
    studies = sorted(p.name for p in oracle_dump.iterdir() if (p / "study.json").exists())
    report = {"studies": {}, "failures": []}
    for uid in studies:
        if not (cspine_dump / uid / "stages.json").exists():
            report["failures"].append(f"{uid}: no cspine dump")
            continue
        fig, diffs = compare_study(oracle_dump / uid, cspine_dump / uid)
        report["studies"][uid] = fig
        report["failures"] += [f"{uid}: {d}" for d in diffs]
        if fig["cls_input_max_abs"] > input_tol:
            report["failures"].append(f"{uid}: classifier input differs by {fig['cls_input_max_abs']:.3g} > {input_tol}")
        if fig["member_prob_max_abs"] > prob_tol:
            report["failures"].append(f"{uid}: member probability differs by {fig['member_prob_max_abs']:.3g} > {prob_tol}")
    o, c = _csv(oracle_csv), _csv(cspine_csv)
    missing = sorted(set(o) - set(c))
    if missing:
        report["failures"].append(f"{len(missing)} oracle rows missing from cspine's CSV, e.g. {missing[0]}")
    worst = max((abs(o[r] - c[r]) for r in o if r in c), default=math.nan)
    report["csv_rows"] = len(o)
    report["csv_max_abs"] = worst
    if not worst <= prob_tol:
        report["failures"].append(f"submission values differ by {worst:.3g} > {prob_tol}")
    report["max"] = {
        "label_pixels_differing": max((f.get("label_pixels_differing", 0) for f in report["studies"].values()), default=0),
        "cls_input_max_abs": max((f["cls_input_max_abs"] for f in report["studies"].values()), default=0.0),
        "member_prob_max_abs": max((f["member_prob_max_abs"] for f in report["studies"].values()), default=0.0),
        "csv_max_abs": worst,
    }
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("oracle_dump")
    ap.add_argument("cspine_dump")
    ap.add_argument("oracle_csv")
    ap.add_argument("cspine_csv")
    ap.add_argument("--input-tol", type=float, default=INPUT_TOL)
    ap.add_argument("--prob-tol", type=float, default=PROB_TOL)
    ap.add_argument("--json", help="also write the figures as JSON")
    a = ap.parse_args(argv)
    r = compare(a.oracle_dump, a.cspine_dump, a.oracle_csv, a.cspine_csv, a.input_tol, a.prob_tol)
    for uid, fig in r["studies"].items():
        print(f"{uid}: labels differing {fig.get('label_pixels_differing')}, box {fig['box']}, "
              f"classifier input max |d| {fig['cls_input_max_abs']:.3g}, member p max |d| {fig['member_prob_max_abs']:.3g}")
    print(f"submission: {r['csv_rows']} rows, max |d| {r['csv_max_abs']:.3g}")
    for f in r["failures"]:
        print("DIFFERS:", f)
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=1))
    return 1 if r["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
