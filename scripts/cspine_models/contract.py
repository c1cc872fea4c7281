"""The model contract: a JSON document embedded in every exported TorchScript file as the extra file
`cspine.json`. It holds everything needed to feed the model and read its outputs, so the C++ engine runs any
model that honours it. The C++ side (src/model/contract.cpp) applies the same validation rules."""

import json
import zipfile

from . import CONTRACT_VERSION

VERTEBRAE = ["C1", "C2", "C3", "C4", "C5", "C6", "C7"]
SEG_CLASSES = ["background"] + VERTEBRAE + ["T1-T3"]
EXTRA_FILE = "cspine.json"
KINDS = ("segmentation", "classifier")


class ContractError(ValueError):
    pass


def make_input(channels_offsets, size, hu_window, **extra):
    spec = {
        "channels": len(channels_offsets),
        "slice_offsets": list(int(o) for o in channels_offsets),
        "size": [int(size[0]), int(size[1])],
        "hu_window": [float(hu_window[0]), float(hu_window[1])],
        "resize": "bilinear",
        "dtype": "float32",
    }
    spec.update(extra)
    return spec


def segmentation_contract(size=(128, 128), hu_window=(-500.0, 1300.0), offsets=(-1, 0, 1), classes=None):
    return {
        "format": "cspine-model",
        "contract_version": CONTRACT_VERSION,
        "kind": "segmentation",
        "input": make_input(offsets, size, hu_window, layout="NCHW"),
        "output": {"classes": list(classes or SEG_CLASSES), "activation": "softmax"},
    }


def classifier_contract(size=(96, 96), hu_window=(-500.0, 1300.0), offsets=(-1, 0, 1), slices_per_vertebra=24,
                        crop_margin=0.15, prior=None, min_slices=5):
    prior = list(prior) if prior is not None else [0.1] * 7
    return {
        "format": "cspine-model",
        "contract_version": CONTRACT_VERSION,
        "kind": "classifier",
        "input": make_input(offsets, size, hu_window, layout="VNCHW", slices_per_vertebra=int(slices_per_vertebra),
                            crop_margin=float(crop_margin), min_slices=int(min_slices)),
        "output": {"vertebrae": list(VERTEBRAE), "activation": "sigmoid", "outputs": ["logit", "attention"],
                   "prior": [float(p) for p in prior], "patient_overall": "noisy_or"},
    }


def _int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _need(cond, what):
    if not cond:
        raise ContractError(what)


def validate(c):
    """Raises ContractError naming the first problem; returns the contract."""
    _need(isinstance(c, dict), "contract is not a JSON object")
    _need(c.get("format") == "cspine-model", "'format' must be \"cspine-model\"")
    v = c.get("contract_version")
    _need(_int(v), "'contract_version' missing or not an integer")
    _need(v <= CONTRACT_VERSION, f"contract_version {v} is newer than this cspine understands ({CONTRACT_VERSION})")
    _need(v >= 1, f"contract_version {v} is not valid")
    _need(c.get("kind") in KINDS, f"'kind' must be one of {KINDS}, got {c.get('kind')!r}")
    i = c.get("input")
    _need(isinstance(i, dict), "'input' missing")
    offs = i.get("slice_offsets")
    _need(isinstance(offs, list) and 0 < len(offs) <= 64 and all(_int(o) and -1000 <= o <= 1000 for o in offs),
          "'input.slice_offsets' must be a non-empty list of at most 64 integers in -1000..1000")
    _need(i.get("channels") == len(offs), "'input.channels' must equal the number of slice offsets")
    size = i.get("size")
    _need(isinstance(size, list) and len(size) == 2 and all(_int(s) and 8 <= s <= 2048 for s in size),
          "'input.size' must be [height, width] in 8..2048")
    w = i.get("hu_window")
    _need(isinstance(w, list) and len(w) == 2 and all(isinstance(x, (int, float)) for x in w) and w[1] > w[0],
          "'input.hu_window' must be [low, high] with high > low")
    _need(i.get("resize", "bilinear") == "bilinear", "'input.resize' must be \"bilinear\"")
    seg = c["kind"] == "segmentation"
    _need(i.get("layout", "NCHW" if seg else "VNCHW") == ("NCHW" if seg else "VNCHW"),
          f"'input.layout' must be \"{'NCHW' if seg else 'VNCHW'}\"")
    _need(i.get("dtype", "float32") == "float32", "'input.dtype' must be \"float32\"")
    o = c.get("output")
    _need(isinstance(o, dict), "'output' missing")
    if seg:
        cls = o.get("classes")
        _need(isinstance(cls, list) and 8 <= len(cls) <= 255 and cls[:8] == SEG_CLASSES[:8]
              and all(isinstance(x, str) for x in cls),
              "'output.classes' must start with background, C1..C7 (at most 255 classes, all strings)")
        _need(o.get("activation", "softmax") == "softmax", "'output.activation' must be \"softmax\"")
    else:
        n = i.get("slices_per_vertebra")
        _need(_int(n) and 1 <= n <= 256, "'input.slices_per_vertebra' must be an integer in 1..256")
        m = i.get("crop_margin")
        _need(isinstance(m, (int, float)) and 0 <= m <= 2, "'input.crop_margin' must be a number in 0..2")
        ms = i.get("min_slices", 5)
        _need(_int(ms) and 1 <= ms <= 100000, "'input.min_slices' must be a positive integer")
        _need(o.get("vertebrae") == VERTEBRAE, "'output.vertebrae' must be C1..C7")
        p = o.get("prior")
        _need(isinstance(p, list) and len(p) == 7 and all(isinstance(x, (int, float)) and 0 <= x <= 1 for x in p),
              "'output.prior' must be 7 probabilities")
        _need(o.get("patient_overall", "noisy_or") == "noisy_or", "'output.patient_overall' must be \"noisy_or\"")
        _need(o.get("activation", "sigmoid") == "sigmoid", "'output.activation' must be \"sigmoid\"")
        _need(o.get("outputs", ["logit", "attention"]) == ["logit", "attention"],
              "'output.outputs' must be [\"logit\", \"attention\"]")
    return c


def read(path):
    """The contract embedded in an exported TorchScript file (a zip archive), validated."""
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("/extra/" + EXTRA_FILE)]
            if not names:
                raise ContractError(f"{path}: no {EXTRA_FILE} inside; export the model with scripts/cspine_train.py export")
            c = json.loads(z.read(names[0]).decode("utf-8"))
    except zipfile.BadZipFile as e:
        raise ContractError(f"{path}: not a TorchScript file ({e})") from e
    except json.JSONDecodeError as e:
        raise ContractError(f"{path}: {EXTRA_FILE} is not valid JSON ({e})") from e
    try:
        return validate(c)
    except ContractError as e:
        raise ContractError(f"{path}: {e}") from e
