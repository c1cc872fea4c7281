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


# Version-2 vocabulary. Every field is optional; its default is the version-1 behaviour. A version-1 document
# must not use any of these fields (nor a version-2 value of a version-1 field).
V2_INPUT_FIELDS = ("slice_order", "edge", "intensity", "locate", "box_min_voxels", "crop", "select")
V2_OUTPUT_FIELDS = ("threshold", "channel_labels", "cleanup", "ensemble", "members")
SLICE_ORDERS = ("position", "instance_number")
EDGES = ("clamp", "zeros")
INTENSITIES = ("hu_window", "slice_minmax")
RESIZES = ("bilinear", "opencv_nearest", "opencv_linear")
SEG_ACTIVATIONS = ("softmax", "sigmoid")
CLEANUPS = ("largest_component", "none")
LOCATES = ("extents", "study_box")
CROPS = ("square", "study_box")
SELECTS = ("spread", "linspace_floor")
ENSEMBLES = ("single", "mean_sigmoid")
# (locate, crop, select) combinations the engine implements
CLASSIFIER_PIPELINES = (("extents", "square", "spread"), ("study_box", "study_box", "linspace_floor"))
V1_CONTRACT_VERSION = 1
"""What cspine's own exporter writes (its models use only version-1 behaviour)."""


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
        "contract_version": V1_CONTRACT_VERSION,
        "kind": "segmentation",
        "input": make_input(offsets, size, hu_window, layout="NCHW"),
        "output": {"classes": list(classes or SEG_CLASSES), "activation": "softmax"},
    }


def classifier_contract(size=(96, 96), hu_window=(-500.0, 1300.0), offsets=(-1, 0, 1), slices_per_vertebra=24,
                        crop_margin=0.15, prior=None, min_slices=5):
    prior = list(prior) if prior is not None else [0.1] * 7
    return {
        "format": "cspine-model",
        "contract_version": V1_CONTRACT_VERSION,
        "kind": "classifier",
        "input": make_input(offsets, size, hu_window, layout="VNCHW", slices_per_vertebra=int(slices_per_vertebra),
                            crop_margin=float(crop_margin), min_slices=int(min_slices)),
        "output": {"vertebrae": list(VERTEBRAE), "activation": "sigmoid", "outputs": ["logit", "attention"],
                   "prior": [float(p) for p in prior], "patient_overall": "noisy_or"},
    }


RAWE_SEG_CLASSES = ["background"] + VERTEBRAE + ["T1-T12"]


def rawe_segmentation_contract(size):
    """The RSNA 2022 2nd-place (team RAWE) segmentation: smp.Unet efficientnet-b0, 8 sigmoid channels
    (C1..C7, T1-T12), input = previous / current / next slice, each min-max normalised, nearest resize."""
    s = int(size)
    return {
        "format": "cspine-model", "contract_version": 2, "kind": "segmentation",
        "input": {"channels": 3, "slice_offsets": [-1, 0, 1], "size": [s, s], "slice_order": "instance_number",
                  "edge": "zeros", "intensity": "slice_minmax", "resize": "opencv_nearest", "layout": "NCHW",
                  "dtype": "float32"},
        "output": {"classes": list(RAWE_SEG_CLASSES), "activation": "sigmoid", "threshold": 0.5,
                   "channel_labels": [1, 2, 3, 4, 5, 6, 7, 0], "cleanup": "none"},
        "runtime": {"numerics": "exact"},
    }


def rawe_classifier_contract(size, members):
    """The RAWE classifier ensemble: 24 single-channel slices per vertebra cropped to the study box; logits
    [V, M] of M members, p = mean of their sigmoids."""
    s = int(size)
    return {
        "format": "cspine-model", "contract_version": 2, "kind": "classifier",
        "input": {"channels": 1, "slice_offsets": [0], "size": [s, s], "slice_order": "instance_number",
                  "edge": "zeros", "intensity": "slice_minmax", "resize": "opencv_linear", "layout": "VNCHW",
                  "dtype": "float32", "slices_per_vertebra": 24, "min_slices": 5, "locate": "study_box",
                  "box_min_voxels": 10, "crop": "study_box", "select": "linspace_floor"},
        "output": {"vertebrae": list(VERTEBRAE), "activation": "sigmoid", "outputs": ["logit", "attention"],
                   "prior": [0.1] * 7, "patient_overall": "noisy_or", "ensemble": "mean_sigmoid",
                   "members": [dict(m) for m in members]},
        "runtime": {"numerics": "exact"},
    }


def _int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _need(cond, what):
    if not cond:
        raise ContractError(what)


def _choice(d, where, field, choices, default):
    v = d.get(field, default)
    _need(v in choices, f"'{where}.{field}' must be one of {', '.join(choices)} (got {v!r})")
    return v


def _refuse_v2(i, o, seg):
    """A version-1 document must not use version-2 fields or values."""
    for where, d, fields in (("input", i, V2_INPUT_FIELDS), ("output", o, V2_OUTPUT_FIELDS)):
        for f in fields:
            _need(f not in d, f"'{where}.{f}' is a version-2 field: set contract_version 2")
    r = i.get("resize", "bilinear")
    _need(r == "bilinear" or r not in RESIZES, f"'input.resize' {r!r} is a version-2 value: set contract_version 2")
    _need(not seg or o.get("activation") != "sigmoid",
          "'output.activation' \"sigmoid\" for segmentation is a version-2 value: set contract_version 2")


def effective(c):
    """The contract's input and output with every version-2 default filled in (call after validate)."""
    i, o = dict(c["input"]), dict(c["output"])
    for k, v in (("slice_order", "position"), ("edge", "clamp"), ("intensity", "hu_window"), ("resize", "bilinear"),
                 ("dtype", "float32")):
        i.setdefault(k, v)
    if c["kind"] == "segmentation":
        i.setdefault("layout", "NCHW")
        o.setdefault("activation", "softmax")
        o.setdefault("channel_labels", list(range(len(o["classes"]))))
        o.setdefault("cleanup", "largest_component")
    else:
        i.setdefault("layout", "VNCHW")
        i.setdefault("min_slices", 5)
        i.setdefault("locate", "extents")
        i.setdefault("crop", "square")
        i.setdefault("select", "spread")
        if i["locate"] == "study_box":
            i.setdefault("box_min_voxels", 10)
        o.setdefault("ensemble", "single")
        o.setdefault("activation", "sigmoid")
        o.setdefault("outputs", ["logit", "attention"])
        o.setdefault("patient_overall", "noisy_or")
    return i, o


def output_channels(c):
    """Segmentation: the model's channel count (len(channel_labels), else the number of classes)."""
    o = c["output"]
    return len(o["channel_labels"]) if "channel_labels" in o else len(o["classes"])


def ensemble_members(c):
    """Classifier: None for a single model (logits [V]), else M, the number of logit columns ([V, M])."""
    o = c["output"]
    if o.get("ensemble", "single") == "single":
        return None
    return len(o["members"]) if "members" in o else None


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
    o = c.get("output")
    _need(isinstance(o, dict), "'output' missing")
    seg = c["kind"] == "segmentation"
    if v == 1:
        _refuse_v2(i, o, seg)
        _need("runtime" not in c, "'runtime' is a version-2 field: set contract_version 2")
    if "runtime" in c:
        _need(isinstance(c["runtime"], dict), "'runtime' must be an object")
        _choice(c["runtime"], "runtime", "numerics", ("fast", "exact"), "fast")
    offs = i.get("slice_offsets")
    _need(isinstance(offs, list) and 0 < len(offs) <= 64 and all(_int(o_) and -1000 <= o_ <= 1000 for o_ in offs),
          "'input.slice_offsets' must be a non-empty list of at most 64 integers in -1000..1000")
    _need(i.get("channels") == len(offs), "'input.channels' must equal the number of slice offsets")
    size = i.get("size")
    _need(isinstance(size, list) and len(size) == 2 and all(_int(s) and 8 <= s <= 2048 for s in size),
          "'input.size' must be [height, width] in 8..2048")
    _choice(i, "input", "slice_order", SLICE_ORDERS, "position")
    _choice(i, "input", "edge", EDGES, "clamp")
    intensity = _choice(i, "input", "intensity", INTENSITIES, "hu_window")
    if intensity == "hu_window" or "hu_window" in i:
        w = i.get("hu_window")
        _need(isinstance(w, list) and len(w) == 2 and all(_num(x) for x in w) and w[1] > w[0],
              "'input.hu_window' must be [low, high] with high > low")
    if v == 1:
        _need(i.get("resize", "bilinear") == "bilinear", "'input.resize' must be \"bilinear\"")
    else:
        _choice(i, "input", "resize", RESIZES, "bilinear")
    _need(i.get("layout", "NCHW" if seg else "VNCHW") == ("NCHW" if seg else "VNCHW"),
          f"'input.layout' must be \"{'NCHW' if seg else 'VNCHW'}\"")
    _need(i.get("dtype", "float32") == "float32", "'input.dtype' must be \"float32\"")
    if seg:
        cls = o.get("classes")
        _need(isinstance(cls, list) and 8 <= len(cls) <= 255 and cls[:8] == SEG_CLASSES[:8]
              and all(isinstance(x, str) for x in cls),
              "'output.classes' must start with background, C1..C7 (at most 255 classes, all strings)")
        if v == 1:
            _need(o.get("activation", "softmax") == "softmax", "'output.activation' must be \"softmax\"")
        act = _choice(o, "output", "activation", SEG_ACTIVATIONS, "softmax")
        if act == "sigmoid":
            t = o.get("threshold")
            _need(_num(t) and 0 < t < 1, "'output.threshold' must be a number in (0, 1) (required with sigmoid)")
        else:
            _need("threshold" not in o, "'output.threshold' applies only to activation \"sigmoid\"")
        if "channel_labels" in o:
            cl = o["channel_labels"]
            _need(isinstance(cl, list) and 1 <= len(cl) <= 255 and all(_int(x) and 0 <= x < len(cls) for x in cl),
                  f"'output.channel_labels' must be a non-empty list of at most 255 integers in 0..{len(cls) - 1}")
        _choice(o, "output", "cleanup", CLEANUPS, "largest_component")
    else:
        n = i.get("slices_per_vertebra")
        _need(_int(n) and 1 <= n <= 256, "'input.slices_per_vertebra' must be an integer in 1..256")
        ms = i.get("min_slices", 5)
        _need(_int(ms) and 1 <= ms <= 100000, "'input.min_slices' must be a positive integer")
        locate = _choice(i, "input", "locate", LOCATES, "extents")
        crop = _choice(i, "input", "crop", CROPS, "square")
        select = _choice(i, "input", "select", SELECTS, "spread")
        _need((locate, crop, select) in CLASSIFIER_PIPELINES,
              f"unsupported combination 'input.locate' {locate!r}, 'input.crop' {crop!r}, 'input.select' "
              f"{select!r}: use (extents, square, spread) or (study_box, study_box, linspace_floor)")
        if locate == "study_box":
            bm = i.get("box_min_voxels", 10)
            _need(_int(bm) and 1 <= bm <= 1000000000, "'input.box_min_voxels' must be an integer in 1..1000000000")
        else:
            _need("box_min_voxels" not in i, "'input.box_min_voxels' applies only to locate \"study_box\"")
        if crop == "square" or "crop_margin" in i:
            m = i.get("crop_margin")
            _need(_num(m) and 0 <= m <= 2, "'input.crop_margin' must be a number in 0..2")
        _need(o.get("vertebrae") == VERTEBRAE, "'output.vertebrae' must be C1..C7")
        p = o.get("prior")
        _need(isinstance(p, list) and len(p) == 7 and all(_num(x) and 0 <= x <= 1 for x in p),
              "'output.prior' must be 7 probabilities")
        _need(o.get("patient_overall", "noisy_or") == "noisy_or", "'output.patient_overall' must be \"noisy_or\"")
        _need(o.get("activation", "sigmoid") == "sigmoid", "'output.activation' must be \"sigmoid\"")
        _need(o.get("outputs", ["logit", "attention"]) == ["logit", "attention"],
              "'output.outputs' must be [\"logit\", \"attention\"]")
        ens = _choice(o, "output", "ensemble", ENSEMBLES, "single")
        if "members" in o:
            mem = o["members"]
            _need(isinstance(mem, list) and 1 <= len(mem) <= 64 and all(isinstance(x, dict) for x in mem),
                  "'output.members' must be a list of 1..64 objects")
            _need(ens != "single" or len(mem) == 1, "'output.members' must have one entry with ensemble \"single\"")
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
