"""The two networks: a 2.5D U-Net with an EfficientNet-B0 encoder for the vertebrae, and a per-vertebra
classifier (CNN per slice, 2-layer bidirectional GRU, MLP attention, one fracture logit). torchvision's
backbones are built without pretrained weights (none can be downloaded here); a `timm:<name>` backbone is
used when the timm package is installed."""

from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def _timm():
    try:
        import timm  # noqa: F401
        return timm
    except ImportError as e:
        raise SystemExit("backbone 'timm:...' needs the timm package, which is not installed") from e


class ConvBlock(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class EfficientNetB0Encoder(nn.Module):
    """torchvision EfficientNet-B0 features without the last 1x1 conv; returns the maps at strides 2..32."""

    skip_channels = [16, 24, 40, 112, 320]

    def __init__(self, in_channels: int = 3):
        super().__init__()
        f = torchvision.models.efficientnet_b0(weights=None).features
        if in_channels != 3:
            f[0][0] = nn.Conv2d(in_channels, 32, 3, stride=2, padding=1, bias=False)
        self.stem = f[0]
        self.s1, self.s2, self.s3 = f[1], f[2], f[3]
        self.s4 = nn.Sequential(f[4], f[5])
        self.s5 = nn.Sequential(f[6], f[7])

    def forward(self, x) -> List[torch.Tensor]:
        x1 = self.s1(self.stem(x))
        x2 = self.s2(x1)
        x3 = self.s3(x2)
        x4 = self.s4(x3)
        x5 = self.s5(x4)
        return [x1, x2, x3, x4, x5]


class TimmEncoder(nn.Module):
    def __init__(self, name: str, in_channels: int = 3):
        super().__init__()
        self.m = _timm().create_model(name, pretrained=False, features_only=True, in_chans=in_channels)
        self.skip_channels = list(self.m.feature_info.channels())

    def forward(self, x) -> List[torch.Tensor]:
        return self.m(x)


class UNet(nn.Module):
    """Input [B, C, H, W] (C = slice triplet), output logits [B, classes, H, W]; any H, W. The decoder stops at
    half resolution (one block per skip) and the logits are upsampled bilinearly: a full-resolution block
    doubled the training cost for no visible gain on vertebra boundaries."""

    def __init__(self, classes: int = 9, in_channels: int = 3, backbone: str = "efficientnet_b0",
                 decoder: Tuple[int, ...] = (128, 64, 32, 24)):
        super().__init__()
        if backbone == "efficientnet_b0":
            self.encoder = EfficientNetB0Encoder(in_channels)
        elif backbone.startswith("timm:"):
            self.encoder = TimmEncoder(backbone[5:], in_channels)
        else:
            raise ValueError(f"unknown segmentation backbone {backbone!r}")
        skips = list(self.encoder.skip_channels)
        enc = skips[::-1]  # deepest first
        blocks = []
        cin = enc[0]
        for i, cout in enumerate(decoder):
            skip = enc[i + 1] if i + 1 < len(enc) else 0
            blocks.append(ConvBlock(cin + skip, cout))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(cin, classes, 3, padding=1)

    def forward(self, x):
        size = x.shape[-2:]
        feats = self.encoder(x)
        feats = feats[::-1]
        y = feats[0]
        i = 0
        for block in self.blocks:
            if i + 1 < len(feats):
                skip = feats[i + 1]
                y = F.interpolate(y, size=skip.shape[-2:], mode="nearest")
                y = torch.cat([y, skip], dim=1)
            else:
                y = F.interpolate(y, size=size, mode="nearest")
            y = block(y)
            i += 1
        y = self.head(y)
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


def slice_backbone(name: str, in_channels: int = 3):
    """A CNN mapping [B, C, S, S] to pooled features [B, F]; returns (module, F)."""
    if name == "efficientnet_b0":
        m = torchvision.models.efficientnet_b0(weights=None)
        feats = 1280
    elif name == "efficientnet_v2_s":
        m = torchvision.models.efficientnet_v2_s(weights=None)
        feats = 1280
    elif name == "resnet50":
        m = torchvision.models.resnet50(weights=None)
        feats = 2048
    elif name.startswith("timm:"):
        m = _timm().create_model(name[5:], pretrained=False, num_classes=0, in_chans=in_channels)
        return m, m.num_features
    else:
        raise ValueError(f"unknown classifier backbone {name!r}")
    if name == "resnet50":
        if in_channels != 3:
            m.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        m.fc = nn.Identity()
        return m, feats
    if in_channels != 3:
        c = m.features[0][0]
        m.features[0][0] = nn.Conv2d(in_channels, c.out_channels, 3, stride=2, padding=1, bias=False)
    return nn.Sequential(m.features, nn.AdaptiveAvgPool2d(1), nn.Flatten()), feats


class VertebraClassifier(nn.Module):
    """Input [V, N, C, S, S] (V vertebrae, N slices each, C = slice triplet); outputs (logit [V], attention
    [V, N]). The optional neck projects the CNN features before the GRU (it keeps the default model under
    30 MB)."""

    def __init__(self, backbone: str = "efficientnet_b0", in_channels: int = 3, hidden: int = 256, neck: int = 256,
                 dropout: float = 0.2):
        super().__init__()
        self.cnn, feats = slice_backbone(backbone, in_channels)
        if neck > 0:
            self.neck = nn.Sequential(nn.Linear(feats, neck), nn.ReLU(inplace=True), nn.Dropout(dropout))
            feats = neck
        else:
            self.neck = nn.Dropout(dropout)
        self.gru = nn.GRU(feats, hidden, num_layers=2, batch_first=True, bidirectional=True, dropout=dropout)
        self.attention = nn.Sequential(nn.Linear(2 * hidden, 128), nn.Tanh(), nn.Linear(128, 1))
        self.head = nn.Linear(2 * hidden, 1)

    def forward(self, x) -> Tuple[torch.Tensor, torch.Tensor]:
        v, n, c, h, w = x.shape
        f = self.cnn(x.reshape(v * n, c, h, w))
        f = self.neck(f).reshape(v, n, -1)
        seq, _ = self.gru(f)
        a = torch.softmax(self.attention(seq).squeeze(-1), dim=1)
        ctx = (seq * a.unsqueeze(-1)).sum(dim=1)
        return self.head(ctx).squeeze(-1), a


def load_seg_encoder_into_classifier(cls: VertebraClassifier, seg: UNet) -> int:
    """Initialise an EfficientNet-B0 classifier's CNN from a trained segmentation encoder (same layers): the
    synthetic data has no pretrained weights to start from, and the encoder has already learnt bone. Returns
    the number of tensors copied."""
    enc = seg.encoder
    if not isinstance(enc, EfficientNetB0Encoder) or not isinstance(cls.cnn, nn.Sequential):
        return 0
    src = [enc.stem, enc.s1, enc.s2, enc.s3, enc.s4[0], enc.s4[1], enc.s5[0], enc.s5[1]]
    feats = cls.cnn[0]
    n = 0
    for i, m in enumerate(src):
        tgt = feats[i]
        sd = m.state_dict()
        if all(k in tgt.state_dict() and tgt.state_dict()[k].shape == t.shape for k, t in sd.items()):
            tgt.load_state_dict(sd)
            n += len(sd)
    return n
