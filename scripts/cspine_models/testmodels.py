"""Tiny random-weight models that honour the contract (fast tests of the engine) and deliberately broken ones
(the failure paths). Seeded, so the same files come out every time on the same torch."""

import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import contract as ct
from .export import save_torchscript


class TinySeg(nn.Module):
    def __init__(self, classes: int = 9, channels: int = 3):
        super().__init__()
        self.a = nn.Conv2d(channels, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1, stride=2)
        self.head = nn.Conv2d(8, classes, 1)

    def forward(self, x):
        size = x.shape[-2:]
        y = F.relu(self.b(F.relu(self.a(x))))
        return F.interpolate(self.head(y), size=size, mode="bilinear", align_corners=False)


class TinyClassifier(nn.Module):
    def __init__(self, channels: int = 3, hidden: int = 8):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(channels, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten())
        self.gru = nn.GRU(8, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.attention = nn.Sequential(nn.Linear(2 * hidden, 8), nn.Tanh(), nn.Linear(8, 1))
        self.head = nn.Linear(2 * hidden, 1)

    def forward(self, x):
        v, n, c, h, w = x.shape
        f = self.cnn(x.reshape(v * n, c, h, w)).reshape(v, n, -1)
        seq, _ = self.gru(f)
        a = torch.softmax(self.attention(seq).squeeze(-1), dim=1)
        return self.head((seq * a.unsqueeze(-1)).sum(dim=1)).squeeze(-1), a


def _prov():
    return {"training_data": "none (random weights, for tests)", "synthetic": True, "note": "not a trained model"}


def write_all(folder):
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(1234)
    out = []
    seg_c = ct.segmentation_contract(size=(64, 64))
    seg_c["provenance"] = _prov()
    out.append(save_torchscript(TinySeg(), seg_c, os.path.join(folder, "tiny-seg.pt")))
    cls_c = ct.classifier_contract(size=(32, 32), slices_per_vertebra=8, prior=[0.07, 0.14, 0.04, 0.05, 0.08, 0.14, 0.2])
    cls_c["provenance"] = _prov()
    out.append(save_torchscript(TinyClassifier(), cls_c, os.path.join(folder, "tiny-cls.pt")))

    # Broken 1: valid TorchScript, no contract inside.
    p = os.path.join(folder, "broken-no-contract.pt")
    torch.jit.save(torch.jit.script(TinySeg().eval()), p)
    out.append(p)
    # Broken 2: a contract from a future cspine.
    fut = dict(seg_c, contract_version=99)
    p = os.path.join(folder, "broken-future-contract.pt")
    torch.jit.save(torch.jit.script(TinySeg().eval()), p, _extra_files={ct.EXTRA_FILE: json.dumps(fut)})
    out.append(p)
    # Broken 3: the contract promises 9 classes, the network gives 4 (caught at the first forward pass).
    p = os.path.join(folder, "broken-wrong-output.pt")
    torch.jit.save(torch.jit.script(TinySeg(classes=4).eval()), p, _extra_files={ct.EXTRA_FILE: json.dumps(seg_c)})
    out.append(p)
    # Broken 4: not a model at all.
    p = os.path.join(folder, "broken-not-a-model.pt")
    with open(p, "w") as f:
        f.write("this is not a TorchScript archive\n")
    out.append(p)
    return out
