"""Training on a tiny Kaggle-layout set written by `cspine synth`: a few steps lower the loss, checkpoints
resume, and the exported files carry their contract and provenance."""
import subprocess
import sys

import torch

from cspine_models import contract as ct

from conftest import ROOT

TRAIN = [sys.executable if sys.executable.startswith("/usr/bin/") else "/usr/bin/python3", str(ROOT / "scripts" / "cspine_train.py")]


def run(*args):
    r = subprocess.run([*TRAIN, *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def history(out):
    return torch.load(out / "last.pt", map_location="cpu")["history"]


def test_segmentation_steps_lower_the_loss_and_export(tiny_synth, tmp_path):
    out = tmp_path / "seg"
    common = ["--data", tiny_synth, "--out", out, "--size", 64, "--batch-size", 8, "--steps-per-epoch", 12,
              "--lr", 3e-3, "--val-fraction", 0.2, "--val-stride", 4, "--workers", 1, "--threads", 2, "--log-every", 0]
    run("seg", *common, "--epochs", 2)
    h = history(out)
    assert len(h) == 2
    assert h[1]["train_loss"] < h[0]["train_loss"]
    run("seg", *common, "--epochs", 3, "--resume")
    h = history(out)
    assert [r["epoch"] for r in h] == [1, 2, 3]
    assert h[2]["train_loss"] < h[0]["train_loss"]
    model = tmp_path / "seg.pt"
    run("export", out / "best.pt", model, "--data-name", "tiny synth set")
    c = ct.read(model)
    assert c["kind"] == "segmentation" and c["input"]["size"] == [64, 64]
    assert c["provenance"]["training_data"] == "tiny synth set" and c["provenance"]["synthetic"] is True
    assert "dice_mean_c1_c7" in c["provenance"]["validation"]


def test_classifier_steps_lower_the_loss_and_export(tiny_synth, tmp_path):
    out = tmp_path / "cls"
    run("cls", "--data", tiny_synth, "--out", out, "--size", 32, "--slices", 6, "--hidden", 16, "--neck", 16,
        "--epochs", 1, "--steps-per-epoch", 1, "--lr", 1e-3, "--val-fraction", 0.0, "--workers", 1, "--threads", 2,
        "--log-every", 0)
    # the same batch before and after a few more steps on it: the loss must go down
    from cspine_models import data, metrics, nets
    st = torch.load(out / "last.pt", map_location="cpu")
    c = st["contract"]
    assert c["input"]["slices_per_vertebra"] == 6
    labels = data.read_labels_csv(tiny_synth / "train.csv")
    cache = next((out / "cache").iterdir())
    paths = {p.stem: str(p) for p in cache.glob("*.npz")}
    cached = data.load_cached(paths, ["cls_input", "cls_present"])
    uid = next(u for u in cached if labels[u][0] == 1)
    x = torch.from_numpy(cached[uid]["cls_input"])
    present = torch.from_numpy(cached[uid]["cls_present"])[None]
    y = torch.tensor(labels[uid])[None]
    m = nets.VertebraClassifier(hidden=16, neck=16)
    m.load_state_dict(st["model"])
    m.train()
    torch.manual_seed(0)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss = metrics.competition_loss(m(x)[0][None], y, present)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model = tmp_path / "cls.pt"
    run("export", out / "last.pt", model)
    c = ct.read(model)
    assert c["kind"] == "classifier" and len(c["output"]["prior"]) == 7
    assert all(0 < p < 1 for p in c["output"]["prior"])


def test_classifier_fine_tunes_on_other_masks(tiny_synth, tmp_path):
    """--masks takes label maps from another folder (predicted ones in practice; here the segmentations
    rewritten through the masks writer), --init starts from an earlier classifier."""
    import shutil
    masks = tmp_path / "masks"
    masks.mkdir()
    for p in list((tiny_synth / "segmentations").glob("*.nii"))[:3]:
        shutil.copy(p, masks / p.name)
    args = ["--data", tiny_synth, "--size", 32, "--slices", 4, "--hidden", 8, "--neck", 8, "--epochs", 1,
            "--steps-per-epoch", 1, "--val-fraction", 0.0, "--workers", 1, "--threads", 2, "--log-every", 0,
            "--loss", "vertebra", "--batch-size", 4]
    run("cls", *args, "--out", tmp_path / "a")
    r = run("cls", *args, "--out", tmp_path / "b", "--masks", masks, "--init", tmp_path / "a" / "last.pt")
    assert "weights initialised from" in r.stderr
    assert "3 studies" in r.stderr  # only the studies with a mask in --masks are used
    assert torch.load(tmp_path / "b" / "last.pt", map_location="cpu")["logit_shift"] < 0


def test_training_refuses_a_folder_without_the_layout(tmp_path):
    r = subprocess.run([*TRAIN, "seg", "--data", tmp_path, "--out", tmp_path / "o"], capture_output=True, text=True)
    assert r.returncode != 0 and "train_images" in r.stderr
