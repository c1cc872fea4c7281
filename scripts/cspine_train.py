#!/usr/bin/env python3
"""Train and export cspine's models on a Kaggle-layout folder (RSNA 2022 data or `cspine synth` output).

  /usr/bin/python3 scripts/cspine_train.py seg    --data DIR --out runs/seg
  /usr/bin/python3 scripts/cspine_train.py cls    --data DIR --out runs/cls [--init-from-seg runs/seg/best.pt]
  /usr/bin/python3 scripts/cspine_train.py export runs/seg/best.pt models/seg.pt
  /usr/bin/python3 scripts/cspine_train.py test-models models/test
  /usr/bin/python3 scripts/cspine_train.py contract models/seg.pt

See models/README.md for the recipe of the default models and docs/model-contract.md for the contract."""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cspine_models import contract as ct  # noqa: E402


def _nan_to_none(x):
    """AUC is undefined (NaN) when a label has one class only; JSON has no NaN, so it becomes null."""
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return x


def window_arg(s):
    lo, hi = (float(v) for v in s.split(","))
    return [lo, hi]


def common(p):
    p.add_argument("--data", required=True, help="Kaggle-layout folder: train_images/, segmentations/, train.csv")
    p.add_argument("--out", required=True, help="run folder: cache/, last.pt, best.pt")
    p.add_argument("--masks", help="folder of <UID>.nii label maps to use instead of segmentations/ (e.g. predicted)")
    p.add_argument("--cache", help="cache folder (default <out>/cache); shared between runs with the same spec")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps-per-epoch", type=int, default=0, help="0: one pass over the training set")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--val-fraction", type=float, default=0.15, help="share of studies held out (by UID hash)")
    p.add_argument("--hu-window", type=window_arg, default=[-500.0, 1300.0], help="low,high in HU")
    p.add_argument("--backbone", default="efficientnet_b0")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1)), help="processes building the cache")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    p.add_argument("--time-limit", type=float, default=0, help="minutes; stop after the epoch that crosses it")
    p.add_argument("--max-studies", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seg", help="train the 2.5D U-Net (vertebrae C1-C7)")
    common(s)
    s.add_argument("--size", type=int, default=128, help="model input height and width")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--val-stride", type=int, default=3, help="validate on every n-th slice")
    s.add_argument("--init", help="start from the weights of this checkpoint (a new schedule, unlike --resume)")
    s.add_argument("--dice-weight", type=float, default=1.0, help="loss = cross-entropy + w * soft Dice")
    c = sub.add_parser("cls", help="train the per-vertebra fracture classifier")
    common(c)
    c.add_argument("--size", type=int, default=96, help="crop height and width")
    c.add_argument("--slices", type=int, default=24, help="slices per vertebra")
    c.add_argument("--crop-margin", type=float, default=0.15)
    c.add_argument("--hidden", type=int, default=256)
    c.add_argument("--neck", type=int, default=256, help="projection before the GRU (0: none)")
    c.add_argument("--loss", choices=["competition", "vertebra"], default="competition",
                   help="competition: whole studies, weighted BCE incl. patient_overall; vertebra: balanced vertebrae")
    c.add_argument("--batch-size", type=int, default=8, help="vertebrae per step with --loss vertebra")
    c.add_argument("--init-from-seg", help="segmentation checkpoint whose encoder initialises the CNN")
    c.add_argument("--init", help="start from the weights of this classifier checkpoint (fine-tuning, e.g. on --masks)")
    e = sub.add_parser("export", help="checkpoint -> TorchScript with the embedded contract")
    e.add_argument("checkpoint")
    e.add_argument("output")
    e.add_argument("--data-name", help="training data named in the provenance")
    e.add_argument("--note")
    t = sub.add_parser("test-models", help="write tiny random-weight models and broken ones for tests")
    t.add_argument("folder")
    v = sub.add_parser("evaluate", help="held-out metrics of exported models: Dice, AUC per vertebra and patient")
    v.add_argument("--data", required=True, help="Kaggle-layout folder")
    v.add_argument("--seg", required=True, help="exported segmentation model")
    v.add_argument("--cls", required=True, help="exported classifier model")
    v.add_argument("--split", choices=["val", "test"], default="val",
                   help="val: training studies held out by UID hash (have segmentations: Dice too); "
                        "test: test_images/ with test_labels.csv (a cspine synth data set)")
    v.add_argument("--val-fraction", type=float, default=0.15)
    v.add_argument("--device", default="cpu")
    v.add_argument("--threads", type=int, default=0)
    v.add_argument("--max-studies", type=int, default=0)
    v.add_argument("--json", help="write the metrics here too")
    v.add_argument("--predictions-csv", help="write the predictions (wide CSV) for `cspine evaluate`")
    mk = sub.add_parser("masks", help="predicted vertebra masks for training studies (for cls --masks)")
    mk.add_argument("--data", required=True, help="Kaggle-layout folder")
    mk.add_argument("--seg", required=True, help="exported segmentation model")
    mk.add_argument("--out", required=True, help="folder for <UID>.nii label maps (existing ones are kept)")
    mk.add_argument("--split", default="train", help="train or test (which <split>_images/ folder)")
    mk.add_argument("--device", default="cpu")
    mk.add_argument("--threads", type=int, default=0)
    k = sub.add_parser("contract", help="print the contract of an exported model")
    k.add_argument("model")
    a = ap.parse_args(argv)

    if a.cmd in ("seg", "cls"):
        from cspine_models import train
        a.synthetic = os.path.exists(os.path.join(a.data, "synth.json"))
        hist = train.train_seg(a) if a.cmd == "seg" else train.train_cls(a)
        print(json.dumps(_nan_to_none(hist[-1] if hist else {}), indent=1))
    elif a.cmd == "export":
        from cspine_models import export
        path = export.export_checkpoint(a.checkpoint, a.output, a.data_name, a.note)
        print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")
    elif a.cmd == "test-models":
        from cspine_models import testmodels
        for p in testmodels.write_all(a.folder):
            print(p)
    elif a.cmd == "evaluate":
        from cspine_models import heldout
        res = heldout.evaluate(a)
        text = json.dumps(_nan_to_none(res), indent=1)
        print(text)
        if a.json:
            with open(a.json, "w") as f:
                f.write(text + "\n")
    elif a.cmd == "masks":
        from cspine_models import heldout
        print(f"wrote {heldout.write_masks(a)} masks to {a.out}")
    elif a.cmd == "contract":
        try:
            print(json.dumps(ct.read(a.model), indent=1))
        except ct.ContractError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
