#!/usr/bin/python3
"""Import third-party cervical-spine models into cspine TorchScript files (model contract version 2).

  cspine_import.py rawe --seg SEG.pth --cls ARCH=CLS.pth [--cls ARCH=CLS.pth ...]
                        [--seg-size 512] [--cls-size 384] [--lib DIR] [--threads N] [--trust-pickle] -o OUTDIR

rawe: the RSNA 2022 Cervical Spine Fracture Detection 2nd-place solution (team RAWE,
https://github.com/ryanyuerong/RSNA2022RAWE, MIT). Checkpoints in the team's format {'model': state_dict} (or a
bare state dict; a 'module.' prefix is removed). Writes OUTDIR/seg.pt (smp.Unet efficientnet-b0, 8 sigmoid
channels) and OUTDIR/cls.pt (the classifier ensemble, --cls order), each traced at the given size and checked
against the eager model (max |difference| <= 1e-5). Needs segmentation_models_pytorch 0.3.0,
efficientnet_pytorch 0.7.1, pretrainedmodels 0.7.4 (+ six) and timm 0.6.x: installed, or in --lib DIR.

Exit codes: 0 written; 2 bad arguments, unreadable or mismatching checkpoint, missing library, failed check.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def build_parser():
    p = argparse.ArgumentParser(prog="cspine_import.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    r = sub.add_parser("rawe", help="RSNA 2022 2nd place (team RAWE): smp.Unet segmentation + RSNA classifier ensemble",
                       description="Import the RSNA 2022 2nd-place (team RAWE) models: writes OUTDIR/seg.pt and "
                                   "OUTDIR/cls.pt with version-2 contracts.")
    r.add_argument("--seg", required=True, metavar="SEG.pth",
                   help="segmentation checkpoint: smp.Unet('efficientnet-b0', classes=8)")
    r.add_argument("--cls", action="append", default=[], required=True, metavar="ARCH=CLS.pth",
                   help="classifier checkpoint with its timm architecture (must contain 'efficientnet' or 'res'), "
                        "e.g. tf_efficientnetv2_s=fold0.pth; repeat for an ensemble (order kept)")
    r.add_argument("--seg-size", type=int, default=512, metavar="S", help="segmentation input size S x S (512)")
    r.add_argument("--cls-size", type=int, default=384, metavar="C", help="classifier input size C x C (384)")
    r.add_argument("--lib", metavar="DIR", help="folder with smp / efficientnet_pytorch / pretrainedmodels / timm, "
                                               "searched before the installed packages")
    r.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    r.add_argument("--trust-pickle", action="store_true",
                   help="load checkpoints that hold Python objects besides tensors (full unpickling can run code; "
                        "by default only tensors, containers and numbers are accepted)")
    r.add_argument("-o", "--out", required=True, metavar="OUTDIR", help="output folder (created)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from cspine_models import rawe
    try:
        import torch
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        cls = rawe.parse_cls(args.cls)
        rawe.import_rawe(args.seg, cls, args.out, seg_size=args.seg_size, cls_size=args.cls_size, lib=args.lib,
                          trust_pickle=args.trust_pickle)
    except rawe.ImportFailure as e:
        print(f"cspine_import: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
