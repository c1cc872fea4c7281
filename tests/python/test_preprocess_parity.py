"""Train/serve parity: the tensors the Python training code builds (scripts/cspine_models/preprocess.py, reading
the study with pydicom and the segmentation with nibabel) equal the ones cspine's C++ pipeline builds
(`cspine preprocess`, DCMTK + ITK) on the same study, for the segmentation and the classifier input."""
import json
import subprocess

import numpy as np
import pytest

from cspine_models import contract as ct
from cspine_models import dicom_io
from cspine_models import preprocess as pp

from conftest import ROOT, synth

TOL = 1e-5  # float32 rounding of the same operations; a real skew (one pixel, one slice) is > 1e-2


@pytest.fixture(scope="module")
def study(cspine_binary, tmp_path_factory):
    # 128 x 128 with 0.5-1 mm slices: big enough for non-trivial resize ratios in both directions; the
    # transfer syntax, storage convention and slice numbering vary between the three studies.
    d = synth(cspine_binary, tmp_path_factory.mktemp("parity"), "-n", 3, "--seed", 8, "--matrix", 128,
              "--test-fraction", 0, "--fracture-rate", 1)
    uids = sorted(p.name for p in (d / "train_images").iterdir())
    manifest = json.loads((d / "synth.json").read_text())["studies"]
    assert {m["numbering"] for m in manifest} == {"head-first", "feet-first"}  # both slice orders are covered
    assert len({m["transfer_syntax"] for m in manifest}) >= 2
    return d, uids


def contracts(tmp_path):
    """The contracts of the shipped test models plus unusual ones (wider offsets, non-square, large margin),
    as plain .json files which `cspine preprocess` also accepts."""
    out = []
    for c in (ct.segmentation_contract(size=(64, 64)), ct.segmentation_contract(size=(80, 48), offsets=(-2, 0, 3), hu_window=(-1000, 400)),
              ct.classifier_contract(size=(32, 32), slices_per_vertebra=8),
              ct.classifier_contract(size=(40, 24), slices_per_vertebra=5, crop_margin=0.6, offsets=(-3, -1, 0, 2, 4))):
        p = tmp_path / f"c{len(out)}.json"
        p.write_text(json.dumps(c))
        out.append((c, p))
    return out


def run_cpp(binary, study_dir, model, out, labels=None):
    cmd = [str(binary), "-q", "preprocess", str(study_dir), "-m", str(model), "-o", str(out)]
    if labels:
        cmd += ["--labels", str(labels)]
    subprocess.run(cmd, check=True)
    return json.loads((out / "preprocess.json").read_text())


def test_segmentation_input_parity(cspine_binary, study, tmp_path):
    d, uids = study
    for uid in uids:
        vol, aff, _ = dicom_io.load_study(d / "train_images" / uid)
        for c, path in contracts(tmp_path):
            if c["kind"] != "segmentation":
                continue
            rep = run_cpp(cspine_binary, d / "train_images" / uid, path, tmp_path / f"seg-{uid}")
            cpp = np.load(tmp_path / f"seg-{uid}" / "seg_input.npy")
            assert rep["volume"]["slices"] == vol.shape[0]
            py = pp.seg_input(vol, range(vol.shape[0]), c).numpy()
            assert cpp.shape == py.shape
            diff = np.abs(cpp - py)
            assert diff.max() <= TOL, f"{uid}: max difference {diff.max()} at {np.unravel_index(diff.argmax(), diff.shape)}"
            assert py.std() > 0.05  # not a trivially blank input


def test_classifier_input_parity(cspine_binary, study, tmp_path):
    d, uids = study
    for uid in uids:
        seg = d / "segmentations" / f"{uid}.nii"
        vol, aff, _ = dicom_io.load_study(d / "train_images" / uid)
        labels = dicom_io.load_labels(str(seg), aff, vol.shape)
        extents = pp.vertebra_extents(labels)
        assert sum(e is not None for e in extents) == 7
        for c, path in contracts(tmp_path):
            if c["kind"] != "classifier":
                continue
            out = tmp_path / f"cls-{uid}-{path.stem}"
            rep = run_cpp(cspine_binary, d / "train_images" / uid, path, out, labels=seg)
            cpp = np.load(out / "cls_input.npy")
            py, picked = pp.classifier_input(vol, extents, c)
            for v, (e, r) in enumerate(zip(extents, rep["vertebrae"])):
                assert [r["z"], r["y"], r["x"], r["slices"]] == [[e.z0, e.z1], [e.y0, e.y1], [e.x0, e.x1], e.slices]
                assert r["crop"] == list(pp.crop_box(e, c["input"]["crop_margin"]))
                assert r["picked"] == picked[v]
            diff = np.abs(cpp - py.numpy())
            assert diff.max() <= TOL, f"{uid}: max difference {diff.max()} at {np.unravel_index(diff.argmax(), diff.shape)}"
            assert py.numpy().std() > 0.05


def test_parity_would_catch_a_skew(cspine_binary, study, tmp_path):
    """The tolerance is meaningful: shifting the slice choice by one, or the window by 10 HU, is caught."""
    d, uids = study
    uid = uids[0]
    vol, aff, _ = dicom_io.load_study(d / "train_images" / uid)
    c = ct.segmentation_contract(size=(64, 64))
    ref = pp.seg_input(vol, [vol.shape[0] // 2], c).numpy()
    shifted = pp.seg_input(vol, [vol.shape[0] // 2 + 1], c).numpy()
    c2 = ct.segmentation_contract(size=(64, 64), hu_window=(-490, 1310))
    rewindowed = pp.seg_input(vol, [vol.shape[0] // 2], c2).numpy()
    assert np.abs(ref - shifted).max() > 100 * TOL
    assert np.abs(ref - rewindowed).max() > 100 * TOL


def test_shipped_test_models_have_contracts():
    for name in ("tiny-seg.pt", "tiny-cls.pt"):
        c = ct.read(ROOT / "models" / "test" / name)
        assert c["kind"] in ct.KINDS


def test_masks_written_for_training_are_read_the_same_by_both_sides(cspine_binary, study, tmp_path):
    """`cspine_train.py masks` writes predicted label maps for `cls --masks`; the format must land on the CT
    grid in Python and in cspine alike (here with the ground truth written through the same writer)."""
    from cspine_models import infer
    d, uids = study
    uid = uids[-1]
    vol, aff, _ = dicom_io.load_study(d / "train_images" / uid)
    labels = dicom_io.load_labels(str(d / "segmentations" / f"{uid}.nii"), aff, vol.shape)
    path = tmp_path / f"{uid}.nii"
    infer.write_label_nifti(labels, aff, str(path))
    assert np.array_equal(dicom_io.load_labels(str(path), aff, vol.shape), labels)
    c, model = contracts(tmp_path)[2]
    a = run_cpp(cspine_binary, d / "train_images" / uid, model, tmp_path / "orig", labels=d / "segmentations" / f"{uid}.nii")
    b = run_cpp(cspine_binary, d / "train_images" / uid, model, tmp_path / "rewritten", labels=path)
    assert a["vertebrae"] == b["vertebrae"]
    assert np.array_equal(np.load(tmp_path / "orig" / "cls_input.npy"), np.load(tmp_path / "rewritten" / "cls_input.npy"))
