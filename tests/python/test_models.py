"""The Python model package: network shapes, the loss, the contract, TorchScript export round trips and a few
training steps that lower the loss on a tiny synthetic set."""
import json
import math
import zipfile

import numpy as np
import pytest
import torch

from cspine_models import contract as ct
from cspine_models import export, metrics, nets, testmodels
from cspine_models import preprocess as pp

from conftest import ROOT


def test_unet_shapes_any_size():
    torch.manual_seed(0)
    m = nets.UNet(classes=9).eval()
    with torch.inference_mode():
        assert m(torch.rand(2, 3, 64, 64)).shape == (2, 9, 64, 64)
        assert m(torch.rand(1, 3, 72, 40)).shape == (1, 9, 72, 40)  # not multiples of 32


@pytest.mark.parametrize("backbone", ["efficientnet_b0", "resnet50", "efficientnet_v2_s"])
def test_classifier_shapes_and_attention(backbone):
    torch.manual_seed(0)
    m = nets.VertebraClassifier(backbone=backbone, hidden=32, neck=16).eval()
    with torch.inference_mode():
        logit, att = m(torch.rand(7, 6, 3, 32, 32))
    assert logit.shape == (7,) and att.shape == (7, 6)
    assert torch.allclose(att.sum(dim=1), torch.ones(7), atol=1e-5)
    assert (att >= 0).all()


def test_default_classifier_matches_the_design():
    m = nets.VertebraClassifier()
    assert m.gru.num_layers == 2 and m.gru.bidirectional and m.gru.hidden_size == 256
    # the default files must stay under 30 MB (float32 parameters)
    assert sum(p.numel() for p in m.parameters()) * 4 < 30e6
    assert sum(p.numel() for p in nets.UNet().parameters()) * 4 < 30e6


def test_seg_encoder_initialises_the_classifier():
    torch.manual_seed(0)
    seg, cls = nets.UNet(), nets.VertebraClassifier()
    assert nets.load_seg_encoder_into_classifier(cls, seg) > 100
    a = seg.encoder.s3.state_dict()
    b = cls.cnn[0][3].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_competition_loss_by_hand():
    # one study: C1 positive (p = 0.8), the rest negative (p = 0.1), C7 absent; patient positive
    logits = torch.tensor([[math.log(0.8 / 0.2)] + [math.log(0.1 / 0.9)] * 6])
    present = torch.tensor([[1, 1, 1, 1, 1, 1, 0]])
    target = torch.tensor([[1, 1, 0, 0, 0, 0, 0, 0]])
    got = metrics.competition_loss(logits, target, present).item()
    overall = 1 - 0.2 * 0.9 ** 5
    num = 2 * -math.log(0.8) + 5 * -math.log(0.9) + 14 * -math.log(overall)
    assert got == pytest.approx(num / (2 + 5 + 14), rel=1e-5)


def test_auc_matches_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    p = np.round(rng.random(200), 1)  # ties
    assert metrics.auc(y, p) == pytest.approx(sk.roc_auc_score(y, p), abs=1e-12)


def test_noisy_or():
    assert pp.noisy_or([0.5, 0.5]) == pytest.approx(0.75)
    assert pp.noisy_or([0.0] * 7) == 0.0


def test_contract_validation_names_the_field():
    good = ct.classifier_contract()
    ct.validate(good)
    for mutate, field in [(lambda c: c.update(contract_version=3), "contract_version"),
                          (lambda c: c.update(kind="detector"), "kind"),
                          (lambda c: c["input"].update(channels=2), "channels"),
                          (lambda c: c["input"].update(hu_window=[100, 0]), "hu_window"),
                          (lambda c: c["input"].update(slices_per_vertebra=0), "slices_per_vertebra"),
                          (lambda c: c["output"].update(prior=[0.1] * 6), "prior")]:
        c = json.loads(json.dumps(good))
        mutate(c)
        with pytest.raises(ct.ContractError, match=field):
            ct.validate(c)


def test_export_round_trip(tmp_path):
    torch.manual_seed(0)
    c = ct.classifier_contract(size=(32, 32), slices_per_vertebra=6)
    c["provenance"] = {"training_data": "none", "synthetic": True}
    m = nets.VertebraClassifier(hidden=16, neck=8).eval()
    path = export.save_torchscript(m, c, str(tmp_path / "cls.pt"))
    assert ct.read(path) == c
    loaded = torch.jit.load(path)
    x = torch.rand(7, 6, 3, 32, 32)
    with torch.inference_mode():
        a, b = m(x), loaded(x)
    assert torch.allclose(a[0], b[0], atol=1e-5) and torch.allclose(a[1], b[1], atol=1e-6)
    with zipfile.ZipFile(path) as z:  # stored where LibTorch's reader looks for extra files
        assert any(n.endswith("/extra/cspine.json") for n in z.namelist())


def test_export_refuses_a_model_that_breaks_its_contract(tmp_path):
    c = ct.segmentation_contract(size=(32, 32))
    with pytest.raises(ct.ContractError, match="output shape"):
        export.save_torchscript(testmodels.TinySeg(classes=4), c, str(tmp_path / "bad.pt"))


def test_broken_test_models_fail_clearly():
    folder = ROOT / "models" / "test"
    with pytest.raises(ct.ContractError, match="no cspine.json"):
        ct.read(folder / "broken-no-contract.pt")
    with pytest.raises(ct.ContractError, match="newer"):
        ct.read(folder / "broken-future-contract.pt")
    with pytest.raises(ct.ContractError, match="not a TorchScript"):
        ct.read(folder / "broken-not-a-model.pt")
    c = ct.read(folder / "broken-wrong-output.pt")  # the contract is fine, the network is not
    out = torch.jit.load(str(folder / "broken-wrong-output.pt"))(torch.rand(1, 3, *c["input"]["size"]))
    assert out.shape[1] != len(c["output"]["classes"])


def test_checked_in_test_models_are_reproducible(tmp_path):
    """models/test/ is what `cspine_train.py test-models` writes (same contracts; weights seeded)."""
    testmodels.write_all(str(tmp_path))
    for name in ("tiny-seg.pt", "tiny-cls.pt"):
        assert ct.read(tmp_path / name) == ct.read(ROOT / "models" / "test" / name)


def test_export_folds_the_prior_correction_into_the_bias(tmp_path):
    """--loss vertebra trains on balanced vertebrae; the exported model must output calibrated logits, i.e. the
    trained logits plus log(pi / (1 - pi))."""
    torch.manual_seed(0)
    m = nets.VertebraClassifier(hidden=16, neck=8).eval()
    c = ct.classifier_contract(size=(32, 32), slices_per_vertebra=4)
    ckpt = tmp_path / "ckpt.pt"
    torch.save(dict(model=m.state_dict(), contract=c, kind="classifier", history=[], logit_shift=-2.0,
                    args={"hidden": 16, "neck": 8, "backbone": "efficientnet_b0", "data": "x"}), ckpt)
    path = export.export_checkpoint(str(ckpt), str(tmp_path / "cls.pt"))
    x = torch.rand(7, 4, 3, 32, 32)
    with torch.inference_mode():
        want = m(x)[0] - 2.0
        got = torch.jit.load(path)(x)[0]
    assert torch.allclose(got, want, atol=1e-5)
    assert ct.read(path)["provenance"]["logit_shift"] == -2.0
