"""`cspine predict` against scripts/reference_predict.py (pydicom, numpy, PyTorch): the same studies and
models must give the same per-vertebra probabilities within 1e-4. This checks the C++ loader, preprocessing,
connected-component cleanup, label resize, crops and model calls all at once."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, synth

REFERENCE = ROOT / "scripts" / "reference_predict.py"
TOLERANCE = 1e-4


def read_wide(path):
    rows = {}
    lines = path.read_text().splitlines()
    assert lines[0] == "StudyInstanceUID,patient_overall,C1,C2,C3,C4,C5,C6,C7"
    for line in lines[1:]:
        f = line.split(",")
        rows[f[0]] = np.array([float(x) for x in f[1:]])
    return rows


@pytest.fixture(scope="module")
def parity_studies(cspine_binary, tmp_path_factory):
    # Both slice numberings and several transfer syntaxes (synth's default mix); 128 x 128 keeps it quick.
    return synth(cspine_binary, tmp_path_factory.mktemp("parity"), "-n", 3, "--seed", 77, "--matrix", 128,
                 "--slices", 90, "--test-fraction", 0, "--fracture-rate", 0.6)


@pytest.mark.parametrize("models,preprocess", [("default", "host"), ("tiny", "host"), ("default", "device")])
def test_cpp_and_python_pipelines_agree(cspine_binary, parity_studies, tmp_path, models, preprocess):
    """preprocess=device builds the segmentation input with LibTorch ops on the model's device (here the CPU),
    the path CUDA runs take."""
    if models == "default":
        seg, cls = ROOT / "models" / "seg.pt", ROOT / "models" / "cls.pt"
    else:
        seg, cls = ROOT / "models" / "test" / "tiny-seg.pt", ROOT / "models" / "test" / "tiny-cls.pt"
    images = parity_studies / "train_images"
    subprocess.run([str(cspine_binary), "-q", "predict", str(images), "-o", str(tmp_path / "cpp.csv"),
                    "--wide-csv", str(tmp_path / "cpp-wide.csv"), "--report", str(tmp_path / "report.json"),
                    "--seg-model", str(seg), "--cls-model", str(cls), "--device", "cpu", "--preprocess", preprocess],
                   check=True)
    subprocess.run([sys.executable, str(REFERENCE), str(images), "-o", str(tmp_path / "py.csv"),
                    "--wide-csv", str(tmp_path / "py-wide.csv"), "--seg-model", str(seg), "--cls-model", str(cls),
                    "--device", "cpu"], check=True)
    cpp, py = read_wide(tmp_path / "cpp-wide.csv"), read_wide(tmp_path / "py-wide.csv")
    assert sorted(cpp) == sorted(py) and len(cpp) == 3
    worst = max(float(np.abs(cpp[u] - py[u]).max()) for u in cpp)
    print(f"{models} models, {preprocess} preprocessing: max |C++ - Python| = {worst:.2e} over {len(cpp)} studies x 8 values")
    assert worst <= TOLERANCE

    # The Kaggle files list the same rows in the same order.
    assert [l.split(",")[0] for l in (tmp_path / "cpp.csv").read_text().splitlines()] == \
        [l.split(",")[0] for l in (tmp_path / "py.csv").read_text().splitlines()]

    # Not a vacuous comparison: with the default models most vertebrae are found and classified.
    if models == "default":
        report = json.loads((tmp_path / "report.json").read_text())
        predicted = sum(v["predicted"] for s in report["studies"] for v in s["vertebrae"].values())
        assert predicted >= 0.8 * 21, f"only {predicted} of 21 vertebrae were classified"


def test_parity_check_would_catch_a_preprocessing_change(cspine_binary, parity_studies, tmp_path):
    """A reference run with the classifier window shifted by 50 HU must disagree by more than the tolerance,
    so the comparison above is sensitive enough to catch a preprocessing mismatch."""
    images = parity_studies / "train_images"
    seg, cls = ROOT / "models" / "seg.pt", ROOT / "models" / "cls.pt"
    subprocess.run([str(cspine_binary), "-q", "predict", str(images), "-o", str(tmp_path / "cpp.csv"),
                    "--wide-csv", str(tmp_path / "cpp-wide.csv"), "--seg-model", str(seg), "--cls-model", str(cls),
                    "--device", "cpu"], check=True)
    sys.path.insert(0, str(ROOT / "scripts"))
    import reference_predict
    from cspine_models import infer

    real_init = infer.Models.__init__

    def shifted(self, *a, **k):
        real_init(self, *a, **k)
        w = self.cls_contract["input"]["hu_window"]
        self.cls_contract["input"]["hu_window"] = [w[0] + 50, w[1] + 50]

    infer.Models.__init__ = shifted
    try:
        reference_predict.main([str(images), "-o", str(tmp_path / "py.csv"), "--wide-csv", str(tmp_path / "py-wide.csv"),
                                "--seg-model", str(seg), "--cls-model", str(cls), "--device", "cpu"])
    finally:
        infer.Models.__init__ = real_init
    cpp, py = read_wide(tmp_path / "cpp-wide.csv"), read_wide(tmp_path / "py-wide.csv")
    assert max(float(np.abs(cpp[u] - py[u]).max()) for u in cpp) > 10 * TOLERANCE


def test_torch_component_labelling_equals_scipy():
    """The Python peer's fallback when scipy is missing (a pip PyTorch install on a GPU machine) must label
    exactly as scipy.ndimage.label does, numbering included, or the peer would crop differently there."""
    from scipy import ndimage

    from cspine_models.infer import _label_faces_torch
    rng = np.random.default_rng(7)
    for shape in [(5, 7, 9), (12, 16, 16), (3, 30, 4), (1, 1, 1)]:
        m = rng.random(shape) < 0.35
        want, n_want = ndimage.label(m)
        got, n_got = _label_faces_torch(m)
        assert n_got == n_want and (got == want).all(), shape
