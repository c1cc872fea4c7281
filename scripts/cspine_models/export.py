"""TorchScript export with the contract embedded as the extra file cspine.json."""

import datetime
import json
import os

import torch

from . import contract as ct
from . import nets


def build_model(kind, contract, args):
    if kind == "segmentation":
        return nets.UNet(classes=len(contract["output"]["classes"]), backbone=args.get("backbone", "efficientnet_b0"))
    return nets.VertebraClassifier(backbone=args.get("backbone", "efficientnet_b0"), hidden=args.get("hidden", 256),
                                   neck=args.get("neck", 256))


def example_input(contract, batch=2):
    i = contract["input"]
    if contract["kind"] == "segmentation":
        return torch.rand(batch, i["channels"], *i["size"])
    return torch.rand(7, i["slices_per_vertebra"], i["channels"], *i["size"])


def script_model(model):
    model.eval()
    try:
        return torch.jit.script(model)
    except Exception:  # a backbone that cannot be scripted (some timm models): trace instead
        return None


def save_torchscript(model, contract, path, example=None):
    """Scripts (or traces) `model`, embeds the validated contract, writes atomically, reloads to check."""
    ct.validate(contract)
    model = model.cpu().eval()
    sm = script_model(model)
    if sm is None:
        with torch.inference_mode(False), torch.no_grad():
            sm = torch.jit.trace(model, example if example is not None else example_input(contract))
    tmp = path + ".partial"
    torch.jit.save(sm, tmp, _extra_files={ct.EXTRA_FILE: json.dumps(contract, indent=1, sort_keys=True)})
    os.replace(tmp, path)
    check_export(path)
    return path


def check_export(path):
    """Loads an exported file back: the contract is present and valid, outputs have the contract's shapes."""
    c = ct.read(path)
    extra = {ct.EXTRA_FILE: ""}
    m = torch.jit.load(path, map_location="cpu", _extra_files=extra)
    x = example_input(c, batch=1)
    with torch.inference_mode():
        out = m(x)
    if c["kind"] == "segmentation":
        want = (1, ct.output_channels(c), *c["input"]["size"])
        if tuple(out.shape) != want:
            raise ct.ContractError(f"{path}: output shape {tuple(out.shape)}, contract says {want}")
    else:
        logit, att = out
        n = c["input"]["slices_per_vertebra"]
        ens = c["output"].get("ensemble", "single") != "single"
        n_members = ct.ensemble_members(c)
        ok = (tuple(logit.shape) == (7,) if not ens else
              logit.dim() == 2 and logit.shape[0] == 7 and (n_members is None or logit.shape[1] == n_members))
        if not ok or tuple(att.shape) != (7, n):
            want = "(7,)" if not ens else f"(7, {n_members if n_members is not None else 'M'})"
            raise ct.ContractError(f"{path}: outputs {tuple(logit.shape)}, {tuple(att.shape)}; want {want}, (7, {n})")
    return c


def export_checkpoint(checkpoint, path, data_name=None, note=None):
    st = torch.load(checkpoint, map_location="cpu")
    contract = dict(st["contract"])
    args = st.get("args", {})
    model = build_model(st["kind"], contract, args)
    model.load_state_dict(st["model"])
    shift = float(st.get("logit_shift", 0.0))
    if shift:
        with torch.no_grad():
            model.head.bias += shift  # the prior correction of balanced-vertebra training (see train_cls)
    hist = st.get("history", [])
    best = max(hist, key=lambda h: h.get("dice_mean_c1_c7", -h.get("loss", 1e9))) if hist else {}
    if st["kind"] == "classifier" and hist:
        best = min(hist, key=lambda h: h.get("loss", 1e9))
    contract["provenance"] = {
        "training_data": data_name or os.path.basename(os.path.normpath(args.get("data", "?"))),
        "synthetic": bool(args.get("synthetic", True)),
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "backbone": args.get("backbone"),
        "epochs_trained": len(hist),
        "validation": best,
        "training_args": {k: v for k, v in args.items() if isinstance(v, (int, float, str, bool, list)) or v is None},
    }
    if shift:
        contract["provenance"]["logit_shift"] = shift
    if note:
        contract["provenance"]["note"] = note
    return save_torchscript(model, contract, path)
