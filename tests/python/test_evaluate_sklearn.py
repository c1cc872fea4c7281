"""Cross-check of `cspine evaluate` against independent implementations: scikit-learn for AUC, sensitivity,
specificity, precision, F1, accuracy and the ROC (Youden's threshold), numpy for the competition score and the
localization accuracy. Random labels and predictions (rounded to 2 decimals, so that ties occur).

The binary comes from $CSPINE_BINARY (scripts/test.sh sets it), else <repo>/build/cspine.
"""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="python3-sklearn is not installed (apt-get install python3-sklearn)")

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("CSPINE_BINARY", ROOT / "build" / "cspine"))
NAMES = ["patient_overall"] + [f"C{i}" for i in range(1, 8)]
TOL = 1e-9

pytestmark = pytest.mark.skipif(not BINARY.exists(), reason=f"cspine binary not found at {BINARY} (build it or set CSPINE_BINARY)")


def make_case(seed, n):
    rng = np.random.default_rng(seed)
    y = np.zeros((n, 8), dtype=int)
    y[:, 1:] = rng.random((n, 7)) < 0.15
    y[:, 0] = y[:, 1:].any(axis=1)
    p = np.clip(0.3 + 0.25 * y + rng.normal(0, 0.25, y.shape), 0, 1).round(2)
    p[rng.random(p.shape) < 0.02] = 0.0  # exact 0 and 1 exercise the clipping
    p[rng.random(p.shape) < 0.02] = 1.0
    uids = [f"1.2.826.0.1.3680043.{seed}.{i}" for i in range(n)]
    return uids, y, p


def write_inputs(tmp, uids, y, p):
    labels = tmp / "labels.csv"
    with open(labels, "w") as f:
        f.write("StudyInstanceUID," + ",".join(NAMES) + "\n")
        for u, row in zip(uids, y):
            f.write(u + "," + ",".join(str(int(v)) for v in row) + "\n")
    preds = tmp / "submission.csv"
    with open(preds, "w") as f:
        f.write("row_id,fractured\n")
        for u, row in zip(uids, p):
            for k in [1, 2, 3, 4, 5, 6, 7, 0]:
                f.write(f"{u}_{NAMES[k]},{float(row[k])!r}\n")
    return labels, preds


def run_evaluate(tmp, labels, preds, *extra):
    out = tmp / "evaluate.json"
    cmd = [str(BINARY), "-q", "evaluate", "--predictions", str(preds), "--labels", str(labels),
           "--bootstrap", "50", "--json", str(out), *extra]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def competition_score(y, p):
    """The RSNA 2022 grader: weighted log loss per study (14/7 overall, 2/1 vertebrae), normalised, averaged."""
    q = np.clip(p.astype(float), 1e-15, 1 - 1e-15)
    pos_w = np.array([14.0] + [2.0] * 7)
    neg_w = np.array([7.0] + [1.0] * 7)
    w = np.where(y == 1, pos_w, neg_w)
    loss = -(y * np.log(q) + (1 - y) * np.log(1 - q))
    return float(np.mean((w * loss).sum(axis=1) / w.sum(axis=1)))


def localization(y, p):
    credit = []
    for yi, pi in zip(y, p):
        if not yi[1:].any():
            continue
        top = np.flatnonzero(pi[1:] == pi[1:].max())
        credit.append(yi[1:][top].mean())
    return float(np.mean(credit))


def expected_figures(yk, pk, threshold):
    pred = (pk >= threshold).astype(int)
    m = sklearn_metrics
    return {
        "auc": m.roc_auc_score(yk, pk),
        "sensitivity": m.recall_score(yk, pred, zero_division=0),
        "specificity": m.recall_score(yk, pred, pos_label=0, zero_division=0),
        "precision": m.precision_score(yk, pred, zero_division=0),
        "f1": m.f1_score(yk, pred, zero_division=0),
        "accuracy": m.accuracy_score(yk, pred),
    }


def youden(yk, pk):
    fpr, tpr, thr = sklearn_metrics.roc_curve(yk, pk, drop_intermediate=False)
    j = tpr - fpr
    j[0] = -np.inf  # sklearn's first threshold predicts nothing positive
    return float(thr[int(np.argmax(j))])  # first maximum: the highest threshold


@pytest.mark.parametrize("seed,n", [(1, 60), (2, 150), (3, 400)])
@pytest.mark.parametrize("mode", ["0.5", "youden"])
def test_matches_sklearn(tmp_path, seed, n, mode):
    uids, y, p = make_case(seed, n)
    labels, preds = write_inputs(tmp_path, uids, y, p)
    got = run_evaluate(tmp_path, labels, preds, "--threshold", mode)
    assert got["studies"] == n
    macro = {key: [] for key in ["auc", "sensitivity", "specificity", "precision", "f1", "accuracy"]}
    for k, name in enumerate(NAMES):
        yk, pk = y[:, k], p[:, k]
        threshold = 0.5 if mode == "0.5" else youden(yk, pk)
        m = got["metrics"][name]
        assert m["threshold"] == pytest.approx(threshold, abs=TOL), name
        assert m["positives"] == int(yk.sum())
        for key, want in expected_figures(yk, pk, threshold).items():
            value = m[key]["value"]
            if key in ("precision", "f1") and value is None:  # undefined: sklearn's zero_division gives 0
                assert want == 0, (name, key)
                continue
            assert value == pytest.approx(want, abs=TOL), (name, key)
            if k > 0:
                macro[key].append(want)
            lo, hi = m[key]["ci95"]
            assert lo <= hi
    for key, values in macro.items():
        assert got["metrics"]["macro_vertebrae"][key]["value"] == pytest.approx(np.mean(values), abs=TOL), key
    assert got["competition_score"]["value"] == pytest.approx(competition_score(y, p), abs=TOL)
    assert got["localization"]["value"] == pytest.approx(localization(y, p), abs=TOL)
    assert got["localization"]["fractured_studies"] == int(y[:, 1:].any(axis=1).sum())
