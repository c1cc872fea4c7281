"""Import of the RSNA 2022 Cervical Spine Fracture Detection 2nd-place models (team RAWE,
https://github.com/ryanyuerong/RSNA2022RAWE, MIT) into cspine TorchScript files with a version-2 contract.

The networks are built with the libraries the team used (segmentation_models_pytorch 0.3.0 with
efficientnet_pytorch 0.7.1, timm 0.6.x), taken from the user's installation or from `--lib DIR`; none of that
code is part of cspine. The classifier wrapper (RSNA classifier structure: timm backbone with in_chans=1 ->
2-layer bidirectional GRU(256) -> MLP attention -> logits MLP) is cspine's own code; its module names follow the
team's checkpoints (`model.*`, `gru.*`, `mlp_attention_layer.*`, `logits.*`) so their state dicts load strictly.

Entry point: scripts/cspine_import.py rawe (see docs/model-contract.md, "Importing the RSNA 2022 second-place
models").
"""

import datetime
import hashlib
import json
import os
import sys
import tempfile
import warnings

import torch
from torch import nn

from . import contract as ct

REPOSITORY = "https://github.com/ryanyuerong/RSNA2022RAWE"
ARCHITECTURE = ("RSNA 2022 Cervical Spine Fracture Detection, 2nd place (team RAWE), "
                "https://github.com/ryanyuerong/RSNA2022RAWE (MIT)")
WEIGHTS_NOTE = "weights trained on RSNA 2022 competition data: non-commercial use only (competition rules)"
IMPORTED_BY = "scripts/cspine_import.py rawe"
SEG_ARCH = "smp.Unet(encoder_name='efficientnet-b0', in_channels=3, classes=8)"
SEQ_LEN = 24
HIDDEN = 256
TOLERANCE = 1e-5
TESTED = {"segmentation_models_pytorch": "0.3.0", "efficientnet_pytorch": "0.7.1", "timm": "0.6.13"}


class ImportFailure(Exception):
    """A user-facing error: one line, naming the file or argument at fault (exit code 2)."""


# ---- libraries -------------------------------------------------------------------------------------------------

class Libraries:
    def __init__(self, smp, timm, efficientnet_pytorch):
        self.smp, self.timm, self.efficientnet_pytorch = smp, timm, efficientnet_pytorch

    def versions(self):
        return {"segmentation_models_pytorch": getattr(self.smp, "__version__", "?"),
                "timm": getattr(self.timm, "__version__", "?"),
                "efficientnet_pytorch": getattr(self.efficientnet_pytorch, "__version__", "?"),
                "torch": torch.__version__}


def import_libraries(lib=None):
    """smp, timm and efficientnet_pytorch from `lib` (prepended to sys.path) or the installation. No bytecode is
    written (the --lib folder may be read-only or shared)."""
    sys.dont_write_bytecode = True
    # pretrainedmodels 0.7.4 (imported by smp) has `is` with literals: harmless SyntaxWarnings at compile time
    warnings.filterwarnings("ignore", category=SyntaxWarning, module=r".*pretrainedmodels")
    if lib is not None:
        if not os.path.isdir(lib):
            raise ImportFailure(f"--lib {lib}: not a folder")
        lib = os.path.abspath(lib)
        while lib in sys.path:
            sys.path.remove(lib)
        sys.path.insert(0, lib)
    hint = ("pass --lib DIR, a folder holding segmentation_models_pytorch 0.3.0, efficientnet_pytorch 0.7.1, "
            "pretrainedmodels 0.7.4 and timm 0.6.x (pretrainedmodels needs the package six)")
    try:
        import segmentation_models_pytorch as smp
        import timm
        import efficientnet_pytorch
    except ImportError as e:
        name = getattr(e, "name", None) or str(e)
        where = f" (searched --lib {lib} first)" if lib else ""
        raise ImportFailure(f"cannot import {name}{where}: {e}; {hint}") from e
    libs = Libraries(smp, timm, efficientnet_pytorch)
    for name, want in TESTED.items():
        have = libs.versions()[name]
        if have != want and not (name == "timm" and have.startswith("0.6.")):
            print(f"note: {name} {have} (this importer was checked with {want})", file=sys.stderr)
    return libs


# ---- checkpoints -----------------------------------------------------------------------------------------------

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_state_dict(path, trust_pickle=False):
    """The state dict of a checkpoint in the team's format {'model': state_dict} or a bare state dict, with any
    `module.` prefix (DataParallel) removed. Loaded with torch.load(weights_only=True) (tensors, containers and
    numbers only: unpickling anything else can run code) unless trust_pickle."""
    if not os.path.exists(path):
        raise ImportFailure(f"{path}: file not found")
    if not os.path.isfile(path):
        raise ImportFailure(f"{path}: not a file")
    try:
        obj = torch.load(path, map_location="cpu", **({} if trust_pickle else {"weights_only": True}))
    except Exception as e:  # pickle / zip errors of every kind
        if not trust_pickle and "Weights only load failed" in str(e) and "Unsupported class" in str(e):
            what = str(e).rsplit("error:", 1)[-1].strip().splitlines()[0][:120]
            raise ImportFailure(f"{path}: holds Python objects other than tensors ({what}); refused because "
                                "unpickling them can run code: re-save it as torch.save({'model': state_dict}) "
                                "or pass --trust-pickle if the file comes from a trusted source") from e
        msg = str(e).strip()
        if "WeightsUnpickler error:" in msg:
            msg = "unpickling: " + msg.rsplit("WeightsUnpickler error:", 1)[1].strip()
        msg = msg.splitlines()[0] if msg else type(e).__name__
        raise ImportFailure(f"{path}: not a PyTorch checkpoint ({type(e).__name__}: {msg[:200]})") from e
    sd = obj
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        sd = obj["model"]
    if not isinstance(sd, dict) or not sd or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                     for k, v in sd.items()):
        raise ImportFailure(f"{path}: not a checkpoint: expected {{'model': state_dict}} or a state_dict of tensors")
    out = {}
    for k, v in sd.items():
        k2 = k[len("module."):] if k.startswith("module.") else k
        if k2 in out:
            raise ImportFailure(f"{path}: key {k2!r} occurs both with and without the 'module.' prefix")
        out[k2] = v
    return out


def _few(keys, n=4):
    keys = list(keys)
    s = ", ".join(keys[:n])
    return s + (", ..." if len(keys) > n else "")


def _backbone_family(keys):
    keys = set(keys)
    if any(k.startswith("model.conv_stem.") for k in keys):
        return "an EfficientNet backbone (model.conv_stem, model.blocks)"
    if any(k.startswith("model.conv1.") for k in keys) and any(k.startswith("model.layer1.") for k in keys):
        return "a ResNet-family backbone (model.conv1, model.layer1..4)"
    if any(k.startswith("encoder.") for k in keys) and any(k.startswith("decoder.") for k in keys):
        return "a segmentation network (encoder, decoder)"
    if any(k.startswith("gru.") for k in keys):
        return "an RSNA classifier"
    return None


def strict_load(module, sd, path, what):
    """load_state_dict(strict=True) with a one-line error listing the first missing / unexpected / misshapen
    keys and their counts."""
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key{'s' if len(missing) > 1 else ''} ({_few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key{'s' if len(unexpected) > 1 else ''} "
                         f"({_few(unexpected)})")
        if shapes:
            parts.append(f"{len(shapes)} key{'s' if len(shapes) > 1 else ''} with another shape "
                         f"(checkpoint vs {what}: {_few(shapes, 3)})")
        family = _backbone_family(unexpected) if unexpected else None
        guess = ""
        if len(missing) + len(unexpected) + len(shapes) > 2:
            guess = " (wrong architecture name?" + (f" its keys look like {family}" if family else "") + ")"
        raise ImportFailure(f"{path}: does not fit {what}{guess}: " + "; ".join(parts))
    module.load_state_dict(sd, strict=True)


# ---- segmentation ----------------------------------------------------------------------------------------------

class MulSigmoidSwish(nn.Module):
    """x * sigmoid(x): the ops of efficientnet_pytorch's MemoryEfficientSwish (whose custom autograd Function
    cannot be traced), so the trace computes exactly what the eager model does."""

    def forward(self, x):
        return x * torch.sigmoid(x)


def use_traceable_swish(encoder):
    encoder._swish = MulSigmoidSwish()
    for block in encoder._blocks:
        block._swish = MulSigmoidSwish()


def build_segmentation(libs, sd, path):
    def make():
        return libs.smp.Unet(encoder_name="efficientnet-b0", encoder_weights=None, in_channels=3, classes=8,
                             activation=None)
    reference = make()
    strict_load(reference, sd, path, SEG_ARCH)
    reference.eval()
    model = make()
    model.load_state_dict(sd, strict=True)
    use_traceable_swish(model.encoder)
    model.eval()
    return reference, model


# ---- classifier ------------------------------------------------------------------------------------------------

class MLPAttention(nn.Module):
    """tanh(W x + b) -> v^T -> softmax over the sequence; returns the weighted sum and the weights."""

    def __init__(self, hidden_dim):
        super().__init__()
        self.proj_w = nn.Linear(hidden_dim, hidden_dim, bias=True)
        self.proj_v = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, x):                                     # x: (B, seq_len, hidden)
        h = torch.tanh(self.proj_w(x))
        att = torch.softmax(self.proj_v(h), dim=1)            # (B, seq_len, 1)
        return (x * att).sum(1), att


def arch_kind(arch):
    """The RSNA classifier's rule: 'efficientnet' in the name -> timm's pooled features (classifier removed);
    otherwise 'res' -> unpooled features (global_pool and fc removed) + AdaptiveAvgPool2d(1)."""
    if "efficientnet" in arch:
        return "efficientnet"
    if "res" in arch:
        return "res"
    return None


class RaweClassifier(nn.Module):
    """One ensemble member, structured like the team's RSNAClassifier (module names = checkpoint keys). Eval
    only: the team's SpatialDropout and Dropout are identities in eval mode (nn.Dropout keeps the key layout)."""

    def __init__(self, timm, arch, hidden_dim=HIDDEN, seq_len=SEQ_LEN):
        super().__init__()
        kind = arch_kind(arch)
        if kind is None:
            raise ValueError(f"architecture {arch!r}: the RSNA classifier needs 'efficientnet' or 'res' in the name")
        self.seq_len = seq_len
        self.model_arch = arch
        self.model = timm.create_model(arch, in_chans=1, pretrained=False)
        if kind == "efficientnet":
            if not isinstance(getattr(self.model, "classifier", None), nn.Linear):
                raise ValueError(f"architecture {arch!r}: timm model has no Linear 'classifier'")
            cnn_feature = self.model.classifier.in_features
            self.model.classifier = nn.Identity()
        else:
            if not isinstance(getattr(self.model, "fc", None), nn.Linear) or not hasattr(self.model, "global_pool"):
                raise ValueError(f"architecture {arch!r}: timm model has no 'global_pool' and Linear 'fc'")
            cnn_feature = self.model.fc.in_features
            self.model.global_pool = nn.Identity()
            self.model.fc = nn.Identity()
            self.pooling = nn.AdaptiveAvgPool2d(1)
        self.pool = kind == "res"
        self.gru = nn.GRU(cnn_feature, hidden_dim, 2, batch_first=True, bidirectional=True)
        # The GRU's initial state (zeros, as nn.GRU's default). Passed explicitly from a buffer because nn.GRU
        # creates its default on a device that torch.jit.trace records as a constant (CPU), which would break
        # the traced file on CUDA; a buffer moves with the module. Not persistent: the checkpoint keys stay.
        self.register_buffer("h0", torch.zeros(2 * 2, 1, hidden_dim), persistent=False)
        self.mlp_attention_layer = MLPAttention(2 * hidden_dim)
        self.logits = nn.Sequential(nn.Linear(hidden_dim * 2, 128), nn.ReLU(), nn.Dropout(), nn.Linear(128, 1))

    def cnn_features(self, images):                           # images: (N, 1, H, W) -> (N, cnn_feature)
        features = self.model(images)
        if self.pool:
            features = self.pooling(features)
        return features.reshape(images.size(0), -1)

    def forward_with_attention(self, x):                      # x: (B, seq_len, H, W), the notebook's input
        bs = x.size(0)
        features = self.cnn_features(x.reshape(bs * self.seq_len, 1, x.size(2), x.size(3)))
        return self.head(features.reshape(bs, self.seq_len, -1))

    def head(self, features):                                 # (B, seq_len, cnn_feature) -> logits, attention
        bs = features.size(0)
        h0 = self.h0.expand(self.h0.size(0), bs, self.h0.size(2)).contiguous()
        features, _ = self.gru(features, h0)
        att_out, att = self.mlp_attention_layer(features)
        pred = self.logits(att_out).view(bs, -1)             # (B, 1)
        return pred, att.reshape(bs, self.seq_len)

    def forward(self, x):
        """The notebook's forward: (B, 24, H, W) -> logits (B, 1)."""
        return self.forward_with_attention(x)[0]


class RaweEnsemble(nn.Module):
    """x [V, 24, 1, H, W] -> (logits [V, M] of each member in order, attention [V, 24] = mean over members of
    their softmax attention weights)."""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x):
        v, n, h, w = x.size(0), x.size(1), x.size(3), x.size(4)
        flat = x.reshape(v * n, h, w)
        # Every all-zero slice (the zero padding after a vertebra's last slice, or a constant slice) has the same CNN
        # features: each member's CNN runs on the other slices and on one zero slice, whose features fill the rest.
        # The notebook runs the CNN on every slice; the result is the same (the CNN treats each slice on its own:
        # batch norms in eval mode), and a vertebra on 8 slices costs a third of the CNN time.
        idx = torch.nonzero(flat.reshape(v * n, h * w).abs().amax(1) > 0).reshape(-1)
        images = torch.cat([flat.index_select(0, idx), flat[:1].clone().zero_()], 0).unsqueeze(1)  # no device constant
        logits = []
        atts = []
        for m in self.members:
            f = m.cnn_features(images)
            full = f[-1:].expand(v * n, f.size(1)).contiguous().index_copy(0, idx, f[:-1])
            p, a = m.head(full.reshape(v, n, -1))
            logits.append(p)
            atts.append(a)
        return torch.cat(logits, 1), torch.stack(atts, 0).mean(0)


def parse_cls(items):
    out = []
    for item in items:
        arch, sep, path = item.partition("=")
        if not sep or not arch.strip() or not path or any(c.isspace() for c in arch):
            raise ImportFailure(f"--cls {item!r}: expected ARCH=CHECKPOINT, e.g. tf_efficientnetv2_s=fold0.pth")
        out.append((arch.strip(), path))
    if not out:
        raise ImportFailure("--cls: at least one ARCH=CHECKPOINT is needed")
    return out


def build_member(libs, arch, sd, path):
    if not libs.timm.is_model(arch):
        raise ImportFailure(f"{path}: unknown architecture {arch!r}: timm {libs.timm.__version__} has no such model")
    if arch_kind(arch) is None:
        raise ImportFailure(f"{path}: architecture {arch!r} cannot be used: the RSNA classifier needs "
                            "'efficientnet' or 'res' in the architecture name")
    try:
        m = RaweClassifier(libs.timm, arch)
    except ValueError as e:
        raise ImportFailure(f"{path}: {e}") from e
    strict_load(m, sd, path, f"the RSNA classifier with timm {arch!r}")
    return m.eval()


# ---- contracts -------------------------------------------------------------------------------------------------

def provenance(libs, sources):
    return {"architecture": ARCHITECTURE, "sources": sources, "libraries": libs.versions(),
            "imported_by": IMPORTED_BY,
            "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(), "note": WEIGHTS_NOTE}


# ---- tracing and checks ----------------------------------------------------------------------------------------

def _trace(module, example):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        return torch.jit.trace(module, example, check_trace=False)


def _maxdiff(a, b):
    return float((a.double() - b.double()).abs().max())


def _fail_if(value, label, where):
    if not value <= TOLERANCE:  # also catches NaN
        raise ImportFailure(f"{where}: {label} = {value:.3g} exceeds {TOLERANCE:g}")


def trace_segmentation(reference, model, size, seed=0, log=print):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        traced = _trace(model, torch.rand(2, 3, size, size, generator=g))
        x = torch.rand(3, 3, size, size, generator=g)
        want = reference(x)
        got = traced(x)
    if tuple(got.shape) != (3, 8, size, size):
        raise ImportFailure(f"segmentation: traced output shape {tuple(got.shape)}, want (3, 8, {size}, {size})")
    d = _maxdiff(got, want)
    log(f"segmentation: traced at [2, 3, {size}, {size}]; at batch 3 max |traced - eager| logit = {d:.3g}")
    _fail_if(d, "max |traced - eager| logit", "segmentation")
    return traced, {"example": [2, 3, size, size], "checked_batch": 3, "max_abs_logit_vs_eager": d}


def trace_classifier(ensemble, size, seed=0, log=print):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        example = torch.rand(2, SEQ_LEN, 1, size, size, generator=g)
        example[0, 20:] = 0                                   # zero padding, as a vertebra on 20 slices gets
        traced = _trace(ensemble, (example,))
        x = torch.rand(3, SEQ_LEN, 1, size, size, generator=g)
        x[0, 9:] = 0                                          # vertebrae on 9 and 17 slices, and one on 24
        x[1, 17:] = 0
        e_logit, e_att = ensemble(x)
        t_logit, t_att = traced(x)
        notebook = [m(x[:, :, 0]).squeeze(1) for m in ensemble.members]   # (B, 24, H, W) -> (B, 1), as cell 39
    n = len(ensemble.members)
    if tuple(t_logit.shape) != (3, n) or tuple(t_att.shape) != (3, SEQ_LEN):
        raise ImportFailure(f"classifier: traced outputs {tuple(t_logit.shape)}, {tuple(t_att.shape)}; "
                            f"want (3, {n}), (3, {SEQ_LEN})")
    d_logit, d_att = _maxdiff(t_logit, e_logit), _maxdiff(t_att, e_att)
    log(f"classifier: traced at [2, {SEQ_LEN}, 1, {size}, {size}]; at V=3 max |traced - eager| logit = "
        f"{d_logit:.3g}, attention = {d_att:.3g}")
    _fail_if(d_logit, "max |traced - eager| logit", "classifier")
    _fail_if(d_att, "max |traced - eager| attention", "classifier")
    members = []
    for k, (m, ref) in enumerate(zip(ensemble.members, notebook)):
        d = _maxdiff(t_logit[:, k], ref)
        log(f"classifier member {k} ({m.model_arch}): max |traced - notebook-style eager| logit = {d:.3g}")
        _fail_if(d, f"member {k} ({m.model_arch}) max |traced - notebook-style eager| logit", "classifier")
        members.append(d)
    return traced, {"example": [2, SEQ_LEN, 1, size, size], "checked_vertebrae": 3,
                    "max_abs_logit_vs_eager": d_logit, "max_abs_attention_vs_eager": d_att,
                    "max_abs_logit_vs_notebook_style_per_member": members}


def write_torchscript(traced, contract, path, check_input):
    """Temp file in the destination folder, reload + compare, then os.replace."""
    ct.validate(contract)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".partial", dir=folder)
    os.close(fd)
    try:
        torch.jit.save(traced, tmp, _extra_files={ct.EXTRA_FILE: json.dumps(contract, indent=1)})
        if ct.read(tmp) != contract:
            raise ImportFailure(f"{path}: the contract read back differs from the one written")
        loaded = torch.jit.load(tmp, map_location="cpu")
        with torch.no_grad():
            a, b = traced(check_input), loaded(check_input)
        a = a if isinstance(a, tuple) else (a,)
        b = b if isinstance(b, tuple) else (b,)
        if any(not torch.equal(x, y) for x, y in zip(a, b)):
            raise ImportFailure(f"{path}: the reloaded file computes something else than the trace")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)                         # mkstemp's 0600 -> what open() would give
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# ---- the whole import -------------------------------------------------------------------------------------------

def import_rawe(seg, cls, out, seg_size=512, cls_size=384, lib=None, log=print, trust_pickle=False):
    """seg: checkpoint path; cls: [(arch, path)]; writes out/seg.pt and out/cls.pt. Returns their contracts."""
    if not 32 <= seg_size <= 2048 or seg_size % 32:
        raise ImportFailure(f"--seg-size {seg_size}: must be a multiple of 32 in 32..2048 (smp.Unet's rule)")
    if not 32 <= cls_size <= 2048:
        raise ImportFailure(f"--cls-size {cls_size}: must be in 32..2048")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise ImportFailure(f"{out}: cannot create the output folder ({e.strerror or e})") from e
    if not os.access(out, os.W_OK):
        raise ImportFailure(f"{out}: output folder is not writable")
    seg_sd = load_state_dict(seg, trust_pickle)
    cls_sds = [(arch, path, load_state_dict(path, trust_pickle)) for arch, path in cls]
    libs = import_libraries(lib)

    reference, seg_model = build_segmentation(libs, seg_sd, seg)
    members = [build_member(libs, arch, sd, path) for arch, path, sd in cls_sds]
    del seg_sd, cls_sds

    seg_traced, seg_check = trace_segmentation(reference, seg_model, seg_size, log=log)
    del reference
    ensemble = RaweEnsemble(members).eval()
    cls_traced, cls_check = trace_classifier(ensemble, cls_size, log=log)

    seg_sources = [{"role": "segmentation", "arch": "smp.Unet efficientnet-b0 classes=8",
                    "file": os.path.basename(seg), "sha256": sha256_file(seg)}]
    cls_sources = [{"role": "classifier", "arch": arch, "file": os.path.basename(path), "sha256": sha256_file(path)}
                   for arch, path in cls]
    seg_c = ct.rawe_segmentation_contract(seg_size)
    seg_c["provenance"] = dict(provenance(libs, seg_sources), trace_check=seg_check)
    cls_c = ct.rawe_classifier_contract(cls_size, [{"arch": s["arch"], "checkpoint": s["file"], "sha256": s["sha256"]}
                                                   for s in cls_sources])
    cls_c["provenance"] = dict(provenance(libs, cls_sources), trace_check=cls_check)

    g = torch.Generator().manual_seed(1)
    try:
        write_torchscript(seg_traced, seg_c, os.path.join(out, "seg.pt"),
                          torch.rand(1, 3, seg_size, seg_size, generator=g))
        write_torchscript(cls_traced, cls_c, os.path.join(out, "cls.pt"),
                          torch.rand(1, SEQ_LEN, 1, cls_size, cls_size, generator=g))
    except OSError as e:
        raise ImportFailure(f"{e.filename or out}: cannot write ({e.strerror or e})") from e
    log(f"wrote {os.path.join(out, 'seg.pt')} and {os.path.join(out, 'cls.pt')} (contract version "
        f"{seg_c['contract_version']}, {len(members)} classifier member{'s' if len(members) > 1 else ''})")
    return seg_c, cls_c
