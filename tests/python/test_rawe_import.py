"""scripts/cspine_import.py rawe: the RSNA 2022 2nd-place (team RAWE) importer, and contract version 2.

Uses the RAWE oracle beside the checkout (../shared/oracles/rawe): its libraries (--lib), its checkpoint maker and,
in a subprocess, the notebook's own RSNAClassifier as the reference. Tiny sizes (64) and small backbones
(tf_efficientnetv2_b0, resnet18d) keep the whole file under a minute."""
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cspine_models import contract as ct
from cspine_models import export

from conftest import ROOT

PY = "/usr/bin/python3"
ORACLE = Path(ROOT).parent / "shared" / "oracles" / "rawe"
LIB = ORACLE / "lib"
IMPORTER = ROOT / "scripts" / "cspine_import.py"
ARCHS = ("tf_efficientnetv2_b0", "resnet18d")
SIZE = 64

# The notebook's own classifier: its cells 35 and 36 (SpatialDropout / MLPAttentionNetwork, RSNAClassifier; indices
# count markdown cells), exec'd unchanged by the oracle's cell runner (which checks the notebook's sha256) with
# the oracle's lib/ and CFG.dropout of cell 30; run on a saved input in a subprocess.
ORACLE_CLS = r'''
import sys, types
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[1] + "/lib")
import rawe_notebook as rn
import timm, torch
cells = dict(rn.load_code_cells())
ns = rn.new_namespace()
ns.update(timm=timm, CFG=types.SimpleNamespace(dropout=0.1))
for i in (35, 36):
    rn.run_cell(ns, i, cells[i])
x = torch.load(sys.argv[2])                                   # [V, 24, 1, H, W]
logits, atts = [], []
for item in sys.argv[4:]:
    arch, _, path = item.partition("=")
    m = ns["RSNAClassifier"](arch, hidden_dim=256, seq_len=24, pretrained=False)
    m.load_state_dict(torch.load(path, map_location="cpu")["model"])
    m.eval()
    cap = {}
    h = m.mlp_attention_layer.proj_v.register_forward_hook(lambda mod, i, o: cap.update(v=o))
    with torch.no_grad():
        logits.append(m(x[:, :, 0]).squeeze(1))              # the notebook's (B, 24, H, W) input, (B, 1) output
    h.remove()
    atts.append(torch.softmax(cap["v"], axis=1).squeeze(2))   # MLPAttentionNetwork's att_scores
torch.save({"logits": torch.stack(logits, 1), "attention": torch.stack(atts, 0).mean(0)}, sys.argv[3])
'''


def need_oracle():
    if not (ORACLE / "make_checkpoints.py").exists() or not LIB.is_dir():
        pytest.skip(f"RAWE oracle not found at {ORACLE}: these tests need ../shared/oracles/rawe beside the checkout")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    need_oracle()
    import time
    started = time.time()
    d = tmp_path_factory.mktemp("rawe-ckpt")
    cmd = [PY, str(ORACLE / "make_checkpoints.py"), "--out", str(d), "--vertebra-like"]
    for a in ARCHS:
        cmd += ["--cls", a]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return {"dir": d, "started": started, "seg": d / "seg.pth", **{a: d / f"cls_{a}_0.pth" for a in ARCHS},
            "manifest": json.loads((d / "checkpoints.json").read_text())}


def cls_args(ckpt, archs=ARCHS):
    out = []
    for a in archs:
        out += ["--cls", f"{a}={ckpt[a]}"]
    return out


@pytest.fixture(scope="module")
def notebook_reference(ckpt, tmp_path_factory):
    """Started before the import (runs beside it), collected by the test that compares."""
    d = tmp_path_factory.mktemp("rawe-ref")
    x = torch.rand(4, 24, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(7))
    torch.save(x, d / "x.pt")
    job = subprocess.Popen([PY, "-c", ORACLE_CLS, str(ORACLE), str(d / "x.pt"), str(d / "ref.pt"),
                            *[f"{a}={ckpt[a]}" for a in ARCHS]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def collect():
        _, err = job.communicate()
        assert job.returncode == 0, err.decode()
        return x, torch.load(d / "ref.pt")
    yield collect
    if job.poll() is None:
        job.kill()
        job.wait()


@pytest.fixture(scope="module")
def imported(ckpt, notebook_reference, tmp_path_factory):
    """One import of both classifiers (in this process: the libraries are imported once for the whole file;
    test_exit_code_of_the_executable runs the executable itself)."""
    import contextlib
    import io
    import cspine_import
    out = tmp_path_factory.mktemp("rawe-out")
    log, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(err):
        rc = cspine_import.main(["rawe", "--seg", str(ckpt["seg"]), *cls_args(ckpt), "--seg-size", str(SIZE),
                                 "--cls-size", str(SIZE), "--lib", str(LIB), "-o", str(out)])
    assert rc == 0, err.getvalue()
    return {"out": out, "log": log.getvalue()}


def run_main(argv, capsys):
    import cspine_import
    rc = cspine_import.main(argv)
    return rc, capsys.readouterr()


def fails(argv, capsys):
    rc, cap = run_main(argv, capsys)
    assert rc == 2, cap.err
    lines = [ln for ln in cap.err.splitlines() if ln.startswith("cspine_import: error:")]
    assert len(lines) == 1, cap.err
    return lines[0]


# ---- the import ------------------------------------------------------------------------------------------------

def test_import_writes_v2_contracts_with_fingerprints(ckpt, imported):
    out = imported["out"]
    seg, cls = ct.read(out / "seg.pt"), ct.read(out / "cls.pt")   # read() validates
    sha = {c["arch"]: c["sha256"] for c in ckpt["manifest"]["classifiers"]}
    assert seg == {**ct.rawe_segmentation_contract(SIZE), "provenance": seg["provenance"]}
    assert seg["contract_version"] == 2 and seg["input"]["size"] == [SIZE, SIZE]
    assert seg["output"]["channel_labels"] == [1, 2, 3, 4, 5, 6, 7, 0] and seg["output"]["threshold"] == 0.5
    assert seg["output"]["classes"][-1] == "T1-T12"
    members = [{"arch": a, "checkpoint": ckpt[a].name, "sha256": sha[a]} for a in ARCHS]
    assert cls == {**ct.rawe_classifier_contract(SIZE, members), "provenance": cls["provenance"]}
    assert cls["output"]["members"] == members
    for c, sources in ((seg, [("segmentation", "seg.pth", ckpt["manifest"]["segmentation"]["sha256"])]),
                       (cls, [("classifier", ckpt[a].name, sha[a]) for a in ARCHS])):
        p = c["provenance"]
        assert [(s["role"], s["file"], s["sha256"]) for s in p["sources"]] == sources
        assert "RAWE" in p["architecture"] and "ryanyuerong/RSNA2022RAWE" in p["architecture"]
        assert p["libraries"]["segmentation_models_pytorch"] == "0.3.0" and p["libraries"]["timm"] == "0.6.13"
        assert p["libraries"]["efficientnet_pytorch"] == "0.7.1" and p["libraries"]["torch"] == torch.__version__
        assert p["imported_by"] == "scripts/cspine_import.py rawe" and "non-commercial" in p["note"]
        assert len(p["date"]) == 10
    # the figures the importer printed: all zero here (bitwise equal)
    assert "max |traced - eager| logit = 0" in imported["log"]
    assert cls["provenance"]["trace_check"]["max_abs_logit_vs_eager"] <= 1e-5
    assert not list(out.glob(".*partial"))
    assert not [p for p in LIB.rglob("*.pyc") if p.stat().st_mtime >= ckpt["started"]]   # nothing written into --lib


def test_exported_files_pass_the_generic_export_check(imported):
    for name in ("seg.pt", "cls.pt"):
        export.check_export(str(imported["out"] / name))


def test_traces_hold_no_device_constants(imported):
    """The engine moves the files to CUDA: a tensor the trace creates on a fixed device (nn.GRU's default
    initial state is one) would break there. No GPU is needed to see it in the graph code."""
    for name in ("seg.pt", "cls.pt"):
        m = torch.jit.load(str(imported["out"] / name))
        for sub_name, sub in [("", m)] + list(m.named_modules()):
            try:
                code = sub.code
            except (RuntimeError, AttributeError):
                continue
            assert "torch.device(" not in code, f"{name} {sub_name}: " + next(
                ln for ln in code.splitlines() if "torch.device(" in ln)


def test_segmentation_trace_equals_eager_at_another_batch(ckpt, imported):
    from cspine_models import rawe
    libs = rawe.import_libraries(str(LIB))
    model = libs.smp.Unet(encoder_name="efficientnet-b0", encoder_weights=None, in_channels=3, classes=8,
                          activation=None)
    model.load_state_dict(torch.load(ckpt["seg"], map_location="cpu")["model"])
    model.eval()   # the untouched smp model with efficientnet_pytorch's MemoryEfficientSwish, as the notebook runs it
    traced = torch.jit.load(str(imported["out"] / "seg.pt"))
    x = torch.rand(5, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        a, b = model(x), traced(x)
    assert b.shape == (5, 8, SIZE, SIZE)
    assert float((a - b).abs().max()) <= 1e-5


def test_classifier_matches_the_notebooks_own_class(imported, notebook_reference):
    """cls.pt at V=4 (traced at V=2) vs the notebook's RSNAClassifier (exec'd from the notebook) per member, and
    the attention = mean over members of MLPAttentionNetwork's softmax scores."""
    x, ref = notebook_reference()
    m = torch.jit.load(str(imported["out"] / "cls.pt"))
    with torch.no_grad():
        logits, att = m(x)
        one = m(x[2:3])
    assert logits.shape == (4, 2) and att.shape == (4, 24)
    assert float((logits - ref["logits"]).abs().max()) <= 1e-5
    assert float((att - ref["attention"]).abs().max()) <= 1e-5
    assert torch.allclose(att.sum(1), torch.ones(4), atol=1e-5)
    assert float((one[0][0] - logits[2]).abs().max()) <= 1e-5     # V = 1 works too


def test_module_prefix_and_bare_state_dict_import_identically(ckpt, imported, tmp_path, capsys):
    def prefixed(src, dst, wrap):
        sd = {"module." + k: v for k, v in torch.load(src, map_location="cpu")["model"].items()}
        torch.save({"model": sd} if wrap else sd, dst)
        return dst
    seg = prefixed(ckpt["seg"], tmp_path / "seg_dp.pth", False)        # bare state dict
    r18 = prefixed(ckpt["resnet18d"], tmp_path / "r18_dp.pth", True)   # {'model': ...}
    rc, cap = run_main(["rawe", "--seg", str(seg), "--cls", f"resnet18d={r18}", "--seg-size", str(SIZE),
                        "--cls-size", str(SIZE), "--lib", str(LIB), "-o", str(tmp_path / "out")], capsys)
    assert rc == 0, cap.err
    a, b = torch.jit.load(str(imported["out"] / "seg.pt")), torch.jit.load(str(tmp_path / "out" / "seg.pt"))
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    a, b = torch.jit.load(str(imported["out"] / "cls.pt")), torch.jit.load(str(tmp_path / "out" / "cls.pt"))
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa["members.1." + k[len("members.0."):]], v) for k, v in sb.items())
    x = torch.rand(2, 24, 1, SIZE, SIZE)
    with torch.no_grad():
        (la, _), (lb, _) = a(x), b(x)
    assert lb.shape == (2, 1) and torch.equal(la[:, 1:], lb)
    cb = ct.read(tmp_path / "out" / "cls.pt")
    assert cb["output"]["members"] == [{"arch": "resnet18d", "checkpoint": "r18_dp.pth",
                                        "sha256": cb["provenance"]["sources"][0]["sha256"]}]


# ---- errors: exit code 2, one line naming the file and the problem --------------------------------------------

def _edited(src, dst, edit):
    sd = torch.load(src, map_location="cpu")["model"]
    edit(sd)
    torch.save({"model": sd}, dst)
    return dst


def _base(ckpt, tmp_path, cls):
    return ["rawe", "--seg", str(ckpt["seg"]), *cls, "--seg-size", str(SIZE), "--cls-size", str(SIZE),
            "--lib", str(LIB), "-o", str(tmp_path / "out")]


def test_missing_key(ckpt, tmp_path, capsys):
    p = _edited(ckpt["tf_efficientnetv2_b0"], tmp_path / "missing.pth", lambda sd: sd.pop("logits.3.bias"))
    msg = fails(_base(ckpt, tmp_path, ["--cls", f"tf_efficientnetv2_b0={p}"]), capsys)
    assert str(p) in msg and "1 missing key (logits.3.bias)" in msg and "unexpected" not in msg
    assert not (tmp_path / "out" / "seg.pt").exists()


def test_unexpected_key(ckpt, tmp_path, capsys):
    p = _edited(ckpt["seg"], tmp_path / "extra.pth", lambda sd: sd.update({"extra.weight": torch.zeros(3)}))
    msg = fails(["rawe", "--seg", str(p), "--cls", f"resnet18d={ckpt['resnet18d']}", "--lib", str(LIB),
                 "-o", str(tmp_path / "out")], capsys)
    assert str(p) in msg and "1 unexpected key (extra.weight)" in msg and "smp.Unet" in msg


def test_wrong_architecture_for_the_checkpoint(ckpt, tmp_path, capsys):
    """The notebook's committed-list quirk: resnest50d paired with an EfficientNet checkpoint."""
    p = ckpt["tf_efficientnetv2_b0"]
    msg = fails(_base(ckpt, tmp_path, ["--cls", f"resnest50d={p}"]), capsys)
    assert str(p) in msg and "'resnest50d'" in msg and "wrong architecture name?" in msg
    assert "missing keys" in msg and "unexpected keys" in msg and "EfficientNet" in msg


def test_unknown_architecture_and_bad_names(ckpt, tmp_path, capsys):
    p = ckpt["resnet18d"]
    msg = fails(_base(ckpt, tmp_path, ["--cls", f"resnet_does_not_exist={p}"]), capsys)
    assert str(p) in msg and "unknown architecture 'resnet_does_not_exist'" in msg
    msg = fails(_base(ckpt, tmp_path, ["--cls", f"vit_tiny_patch16_224={p}"]), capsys)
    assert "'efficientnet' or 'res'" in msg
    msg = fails(_base(ckpt, tmp_path, ["--cls", str(p)]), capsys)
    assert "expected ARCH=CHECKPOINT" in msg


def test_unreadable_checkpoints(ckpt, tmp_path, capsys):
    missing = tmp_path / "nope.pth"
    msg = fails(_base(ckpt, tmp_path, ["--cls", f"resnet18d={missing}"]), capsys)
    assert f"{missing}: file not found" in msg
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint\n")
    msg = fails(["rawe", "--seg", str(junk), "--cls", f"resnet18d={ckpt['resnet18d']}", "-o", str(tmp_path)], capsys)
    assert f"{junk}: not a PyTorch checkpoint" in msg
    odd = tmp_path / "odd.pth"
    torch.save({"epoch": 3}, odd)
    msg = fails(["rawe", "--seg", str(odd), "--cls", f"resnet18d={ckpt['resnet18d']}", "-o", str(tmp_path)], capsys)
    assert f"{odd}: not a checkpoint" in msg


def test_pickled_objects_need_trust(ckpt, tmp_path, capsys):
    import numpy as np
    from cspine_models import rawe
    sd = torch.load(ckpt["resnet18d"], map_location="cpu")["model"]
    p = tmp_path / "with_numpy.pth"
    torch.save({"model": sd, "best_score": np.float64(0.3)}, p)
    msg = fails(["rawe", "--seg", str(ckpt["seg"]), "--cls", f"resnet18d={p}", "-o", str(tmp_path)], capsys)
    assert str(p) in msg and "--trust-pickle" in msg and "numpy" in msg
    got = rawe.load_state_dict(str(p), trust_pickle=True)
    assert list(got) == list(sd) and all(torch.equal(got[k], sd[k]) for k in sd)


def test_exit_code_of_the_executable(ckpt, tmp_path):
    r = subprocess.run([str(IMPORTER), "rawe", "--seg", str(tmp_path / "none.pth"), "--cls",
                        f"resnet18d={ckpt['resnet18d']}", "-o", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == f"cspine_import: error: {tmp_path / 'none.pth'}: file not found"


def test_missing_libraries_say_pass_lib(tmp_path):
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from cspine_models import rawe\n"
            "try:\n    rawe.import_libraries(%r)\nexcept rawe.ImportFailure as e:\n    print(e)\n"
            % (str(ROOT / "scripts"), str(tmp_path)))
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True)
    assert "cannot import" in r.stdout and "pass --lib DIR" in r.stdout


# ---- contract version 2 ----------------------------------------------------------------------------------------

def _v2_cls():
    return ct.rawe_classifier_contract(64, [{"arch": "a", "checkpoint": "a.pth", "sha256": "0" * 64}])


def _mut(c, where, **kv):
    c = copy.deepcopy(c)
    c[where].update(kv)
    return c


def _drop(c, where, key):
    c = copy.deepcopy(c)
    del c[where][key]
    return c


def test_v2_accepts_the_importer_contracts_and_defaults():
    ct.validate(ct.rawe_segmentation_contract(512))
    ct.validate(_v2_cls())
    # version 2 with no new field = version 1's meaning
    for c in (ct.segmentation_contract(), ct.classifier_contract()):
        c2 = dict(copy.deepcopy(c), contract_version=2)
        ct.validate(c2)
        assert ct.effective(c2) == ct.effective(c)
    i, o = ct.effective(ct.classifier_contract())
    assert (i["slice_order"], i["edge"], i["intensity"], i["resize"]) == ("position", "clamp", "hu_window", "bilinear")
    assert (i["locate"], i["crop"], i["select"], o["ensemble"]) == ("extents", "square", "spread", "single")
    i, o = ct.effective(ct.segmentation_contract())
    assert o["channel_labels"] == list(range(9)) and o["cleanup"] == "largest_component" and o["activation"] == "softmax"
    assert ct.output_channels(ct.rawe_segmentation_contract(64)) == 8
    assert ct.output_channels(ct.segmentation_contract()) == 9
    assert ct.ensemble_members(_v2_cls()) == 1 and ct.ensemble_members(ct.classifier_contract()) is None
    # optional fields that the mode does not use are tolerated (and ignored)
    ct.validate(_mut(_v2_cls(), "input", crop_margin=0.1, hu_window=[-500, 1300]))
    ct.validate(_drop(ct.rawe_segmentation_contract(64), "output", "channel_labels"))


@pytest.mark.parametrize("mutate, words", [
    (lambda: _mut(_v2_cls(), "input", crop="square", crop_margin=0.1), "unsupported combination"),
    (lambda: _mut(_v2_cls(), "input", select="spread"), "unsupported combination"),
    (lambda: _mut(_v2_cls(), "input", locate="extents", crop="square", select="spread", crop_margin=0.1),
     "box_min_voxels"),
    (lambda: _mut(dict(ct.classifier_contract(), contract_version=2), "input", locate="study_box"),
     "unsupported combination"),
    (lambda: _mut(_v2_cls(), "input", box_min_voxels=0), "box_min_voxels"),
    (lambda: _mut(_v2_cls(), "input", intensity="hu_window"), "hu_window"),
    (lambda: _mut(_v2_cls(), "input", slice_order="file_name"), "slice_order"),
    (lambda: _mut(_v2_cls(), "input", edge="mirror"), "edge"),
    (lambda: _mut(_v2_cls(), "input", resize="bicubic"), "resize"),
    (lambda: _mut(_v2_cls(), "output", ensemble="max"), "ensemble"),
    (lambda: _mut(_v2_cls(), "output", ensemble="single", members=[{}, {}]), "members"),
    (lambda: _mut(_v2_cls(), "output", members=["a"]), "members"),
    (lambda: _drop(_mut(_v2_cls(), "input", crop="square", locate="extents", select="spread"), "input",
                   "box_min_voxels"), "crop_margin"),
    (lambda: _drop(ct.rawe_segmentation_contract(64), "output", "threshold"), "threshold"),
    (lambda: _mut(ct.rawe_segmentation_contract(64), "output", threshold=1.0), "threshold"),
    (lambda: _mut(ct.rawe_segmentation_contract(64), "output", activation="softmax"), "threshold"),
    (lambda: _mut(ct.rawe_segmentation_contract(64), "output", channel_labels=[1, 9]), "channel_labels"),
    (lambda: _mut(ct.rawe_segmentation_contract(64), "output", channel_labels=[]), "channel_labels"),
    (lambda: _mut(ct.rawe_segmentation_contract(64), "output", cleanup="all"), "cleanup"),
    (lambda: _mut(ct.rawe_segmentation_contract(64), "output", activation="relu"), "activation"),
])
def test_v2_rejects(mutate, words):
    with pytest.raises(ct.ContractError, match=words):
        ct.validate(mutate())


@pytest.mark.parametrize("where, field, value", [
    ("input", "slice_order", "position"), ("input", "edge", "clamp"), ("input", "intensity", "hu_window"),
    ("input", "locate", "extents"), ("input", "crop", "square"), ("input", "select", "spread"),
    ("input", "box_min_voxels", 10), ("input", "resize", "opencv_linear"), ("output", "ensemble", "single"),
    ("output", "members", [{}]), ("output", "threshold", 0.5), ("output", "channel_labels", [0]),
    ("output", "cleanup", "none"), ("output", "activation", "sigmoid"),
])
def test_v1_documents_refuse_v2_fields(where, field, value):
    seg = field in ("threshold", "channel_labels", "cleanup", "activation")
    c = ct.segmentation_contract() if seg else ct.classifier_contract()
    assert c["contract_version"] == 1
    with pytest.raises(ct.ContractError, match="set contract_version 2"):
        ct.validate(_mut(c, where, **{field: value}))
