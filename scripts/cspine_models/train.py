"""Training loops for the two models. Same code on CPU and CUDA (--device); checkpoints after every epoch
(last.pt, best.pt) hold model, optimiser, epoch, the contract and the validation metrics, so --resume continues
an interrupted run."""

import json
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn.functional as F

from . import contract as ct
from . import data, metrics, nets
from .data import log


def pick_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = torch.device(name)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available to this PyTorch")
    return d


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def save_checkpoint(path, **state):
    tmp = path + ".partial"
    torch.save(state, tmp)
    os.replace(tmp, path)


def _time_left(deadline):
    return deadline is None or time.time() < deadline


class Run:
    """Optimiser, OneCycle schedule, checkpoints and --resume, shared by both trainings."""

    def __init__(self, tag, model, args, steps_per_epoch, device, contract, kind, clip=None):
        self.tag, self.model, self.args, self.contract, self.kind, self.clip = tag, model, args, contract, kind, clip
        self.opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
        self.total = steps_per_epoch * args.epochs
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=args.lr, total_steps=self.total, pct_start=0.1)
        self.start_epoch, self.best, self.history = 0, None, []
        self.extra = {}
        os.makedirs(args.out, exist_ok=True)
        self.last = os.path.join(args.out, "last.pt")
        if args.resume and os.path.exists(self.last):
            st = torch.load(self.last, map_location=device)
            model.load_state_dict(st["model"])
            self.opt.load_state_dict(st["optimizer"])
            self.sched.load_state_dict(st["scheduler"])
            self.sched.total_steps = self.total  # resuming with more epochs stretches the schedule
            self.start_epoch, self.best, self.history = st["epoch"] + 1, st.get("best"), st.get("history", [])
            log(f"{tag}: resumed from {self.last} at epoch {self.start_epoch}")
        self.deadline = time.time() + args.time_limit * 60 if args.time_limit else None
        self.t0 = time.time()

    def step(self, loss):
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.opt.step()
        if self.sched.last_epoch + 1 < self.total:
            self.sched.step()

    def time_left(self):
        return _time_left(self.deadline)

    def end_epoch(self, epoch, train_loss, val, score):
        """Logs the epoch, writes last.pt and (when `score` is the highest so far) best.pt; False when the
        time limit says stop."""
        rec = {"epoch": epoch + 1, "train_loss": train_loss, **val, "seconds": round(time.time() - self.t0, 1)}
        self.history.append(rec)
        log(f"{self.tag}: " + json.dumps(rec))
        state = dict(model=self.model.state_dict(), optimizer=self.opt.state_dict(), scheduler=self.sched.state_dict(),
                     epoch=epoch, contract=self.contract, history=self.history, args=vars(self.args), kind=self.kind,
                     best=self.best, **self.extra)
        if self.best is None or score > self.best:
            self.best = state["best"] = score
            save_checkpoint(os.path.join(self.args.out, "best.pt"), **state)
        save_checkpoint(self.last, **state)
        if not self.time_left():
            log(f"{self.tag}: time limit of {self.args.time_limit} min reached after epoch {epoch + 1}")
            return False
        return True


# ------------------------------------------------------------------------------------------ segmentation


class SegSlices:
    """Random 2.5D triplets from cached studies, with their nearest-resized labels."""

    def __init__(self, cached, offsets, stride=1):
        self.cached, self.offsets = cached, offsets
        self.index = [(uid, k) for uid, c in cached.items() for k in range(0, c["seg_images"].shape[0], stride)]

    def batch(self, items, flip=False):
        xs, ys = [], []
        for uid, k in items:
            img = self.cached[uid]["seg_images"]
            z = img.shape[0]
            idx = [min(max(k + o, 0), z - 1) for o in self.offsets]
            x, y = img[idx], self.cached[uid]["seg_labels"][k]
            if flip and random.random() < 0.5:  # left-right mirror: vertebra labels do not change
                x, y = x[:, :, ::-1], y[:, ::-1]
            xs.append(np.ascontiguousarray(x))
            ys.append(np.ascontiguousarray(y))
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)).long()


def soft_dice_loss(logits, target, classes):
    """1 - mean soft Dice over the foreground classes present in the batch (vertebrae are a few percent of
    the pixels, so cross-entropy alone learns the background first)."""
    p = torch.softmax(logits, dim=1)
    onehot = F.one_hot(target, classes).permute(0, 3, 1, 2).to(p.dtype)
    dims = (0, 2, 3)
    inter = (p * onehot).sum(dims)
    denom = p.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + 1.0) / (denom + 1.0)
    present = onehot.sum(dims)[1:] > 0
    if not present.any():
        return logits.sum() * 0
    return 1 - dice[1:][present].mean()


def evaluate_seg(model, ds, device, classes, batch_size):
    model.eval()
    inter = np.zeros(classes)
    total = np.zeros(classes)
    loss_sum, n = 0.0, 0
    with torch.inference_mode():
        for i in range(0, len(ds.index), batch_size):
            x, y = ds.batch(ds.index[i:i + batch_size])
            out = model(x.to(device))
            loss_sum += F.cross_entropy(out, y.to(device), reduction="sum").item() / (y.shape[1] * y.shape[2])
            n += x.shape[0]
            pred = out.argmax(1).cpu().numpy()
            yt = y.numpy()
            for c in range(1, classes):
                a, b = pred == c, yt == c
                inter[c] += (a & b).sum()
                total[c] += a.sum() + b.sum()
    dice = [float(2 * inter[c] / total[c]) if total[c] else float("nan") for c in range(1, classes)]
    names = ct.SEG_CLASSES[1:classes]
    return {"loss": loss_sum / max(n, 1), "dice": dict(zip(names, dice)),
            "dice_mean_c1_c7": float(np.nanmean(dice[:7]))}


def train_seg(args):
    seed_all(args.seed)
    device = pick_device(args.device)
    torch.set_num_threads(args.threads) if args.threads else None
    contract = ct.segmentation_contract(size=(args.size, args.size), hu_window=args.hu_window)
    studies = data.find_studies(args.data, masks_dir=args.masks)
    if args.max_studies:
        studies = studies[:args.max_studies]
    if not studies:
        raise SystemExit(f"{args.data}: no study has both images and a segmentation")
    cache_dir = os.path.join(args.cache or os.path.join(args.out, "cache"), "seg-" + data.cache_key(contract, None, args.masks))
    paths = data.build_cache(studies, cache_dir, contract, None, args.workers, log)
    cached = data.load_cached(paths, ["seg_images", "seg_labels"])
    tr = {u: c for u, c in cached.items() if data.split_of(u, args.val_fraction) == "train"}
    va = {u: c for u, c in cached.items() if data.split_of(u, args.val_fraction) == "val"}
    if not tr:
        raise SystemExit("no training studies left after the validation split")
    offsets = contract["input"]["slice_offsets"]
    train_ds, val_ds = SegSlices(tr, offsets), SegSlices(va, offsets, args.val_stride)
    classes = len(contract["output"]["classes"])
    model = nets.UNet(classes=classes, backbone=args.backbone).to(device)
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location=device)["model"])
        log(f"seg: weights initialised from {args.init}")
    steps_per_epoch = args.steps_per_epoch or math.ceil(len(train_ds.index) / args.batch_size)
    run = Run("seg", model, args, steps_per_epoch, device, contract, "segmentation")
    log(f"seg: {len(tr)} training studies ({len(train_ds.index)} slices), {len(va)} validation, device {device}")
    for epoch in range(run.start_epoch, args.epochs):
        model.train()
        total_loss, n = 0.0, 0
        for step in range(steps_per_epoch):
            items = random.sample(train_ds.index, min(args.batch_size, len(train_ds.index)))
            x, y = train_ds.batch(items, flip=True)
            out = model(x.to(device))
            yd = y.to(device)
            loss = F.cross_entropy(out, yd) + args.dice_weight * soft_dice_loss(out, yd, classes)
            run.step(loss)
            total_loss += loss.item()
            n += 1
            if args.log_every and (step + 1) % args.log_every == 0:
                log(f"seg: epoch {epoch + 1} step {step + 1}/{steps_per_epoch} loss {total_loss / n:.4f}")
            if not run.time_left():
                break
        val = evaluate_seg(model, val_ds, device, classes, args.batch_size) if val_ds.index else {}
        score = val.get("dice_mean_c1_c7", -total_loss / max(n, 1))
        if not run.end_epoch(epoch, total_loss / max(n, 1), val, score):
            break
    return run.history


# ------------------------------------------------------------------------------------------ classifier


def evaluate_cls(model, items, device, logit_shift=0.0):
    """items: list of (uid, x [7,N,C,S,S], present [7], target [8]). Per-vertebra and patient AUC, the
    competition loss. `logit_shift` is added to the logits (the prior correction of --loss vertebra)."""
    model.eval()
    probs, targets, presents, losses = [], [], [], []
    with torch.inference_mode():
        for uid, x, present, y in items:
            logit, _ = model(torch.from_numpy(x).to(device))
            logit = logit[None].cpu() + logit_shift
            pres = torch.from_numpy(present)[None]
            tgt = torch.tensor(y)[None]
            losses.append(metrics.competition_loss(logit, tgt, pres).item())
            probs.append(torch.sigmoid(logit)[0].numpy())
            targets.append(y)
            presents.append(present)
    p = np.array(probs)
    y = np.array(targets)
    pres = np.array(presents)
    pv = np.where(pres, p, 0.0)
    overall = 1.0 - np.prod(1.0 - pv, axis=1)
    per = {ct.VERTEBRAE[v]: metrics.auc(y[pres[:, v], v + 1], p[pres[:, v], v]) for v in range(7)}
    allv = metrics.auc(y[:, 1:][pres], p[pres])
    return {"loss": float(np.mean(losses)) if losses else float("nan"), "auc_patient": metrics.auc(y[:, 0], overall),
            "auc_vertebrae_pooled": allv, "auc": per}


def train_cls(args):
    seed_all(args.seed)
    device = pick_device(args.device)
    torch.set_num_threads(args.threads) if args.threads else None
    labels = data.read_labels_csv(os.path.join(args.data, "train.csv"))
    studies = [s for s in data.find_studies(args.data, masks_dir=args.masks) if s[0] in labels]
    if args.max_studies:
        studies = studies[:args.max_studies]
    if not studies:
        raise SystemExit(f"{args.data}: no study has images, a segmentation and a row in train.csv")
    tr_uids = [u for u, _, _ in studies if data.split_of(u, args.val_fraction) == "train"]
    rates = np.array([labels[u][1:] for u in tr_uids] or [[0] * 7], dtype=float).mean(axis=0)
    prior = [float(min(max(r, 0.01), 0.99)) for r in rates]
    contract = ct.classifier_contract(size=(args.size, args.size), hu_window=args.hu_window,
                                      slices_per_vertebra=args.slices, crop_margin=args.crop_margin, prior=prior)
    cache_dir = os.path.join(args.cache or os.path.join(args.out, "cache"), "cls-" + data.cache_key(None, contract, args.masks))
    paths = data.build_cache(studies, cache_dir, None, contract, args.workers, log)
    cached = data.load_cached(paths, ["cls_input", "cls_present"])
    items = [(u, c["cls_input"], c["cls_present"], labels[u]) for u, c in cached.items()]
    tr = [it for it in items if data.split_of(it[0], args.val_fraction) == "train"]
    va = [it for it in items if data.split_of(it[0], args.val_fraction) == "val"]
    model = nets.VertebraClassifier(backbone=args.backbone, hidden=args.hidden, neck=args.neck).to(device)
    if args.init_from_seg:
        st = torch.load(args.init_from_seg, map_location="cpu")
        seg = nets.UNet(classes=len(st["contract"]["output"]["classes"]))
        seg.load_state_dict(st["model"])
        log(f"cls: {nets.load_seg_encoder_into_classifier(model, seg)} tensors initialised from {args.init_from_seg}")
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location=device)["model"])
        log(f"cls: weights initialised from {args.init}")
    steps_per_epoch = args.steps_per_epoch or (len(tr) if args.loss == "competition" else
                                               math.ceil(sum(int(p.sum()) for _, _, p, _ in tr) / args.batch_size))
    run = Run("cls", model, args, steps_per_epoch, device, contract, "classifier", clip=5.0)
    # vertebra sampling for --loss vertebra: positives drawn as often as negatives
    pool = [(i, v) for i, (_, _, p, _) in enumerate(tr) for v in range(7) if p[v]]
    pos = [iv for iv in pool if tr[iv[0]][3][iv[1] + 1]]
    neg = [iv for iv in pool if not tr[iv[0]][3][iv[1] + 1]]
    # Drawing positives half the time instead of at their rate pi inflates the odds by (1 - pi) / pi; adding
    # log(pi / (1 - pi)) to the logits restores probabilities calibrated for the competition loss (its 2/1
    # weights apply in both cases and cancel). Export folds the shift into the head's bias.
    logit_shift = 0.0
    if args.loss == "vertebra" and pos and neg:
        rate = len(pos) / len(pool)
        logit_shift = math.log(rate / (1 - rate))
    log(f"cls: {len(tr)} training studies ({len(pos)} fractured vertebrae of {len(pool)}), {len(va)} validation, "
        f"loss {args.loss}, device {device}")
    run.extra["logit_shift"] = logit_shift
    for epoch in range(run.start_epoch, args.epochs):
        model.train()
        total_loss, n = 0.0, 0
        order = random.sample(range(len(tr)), len(tr))
        for step in range(steps_per_epoch):
            if args.loss == "competition":
                _, x, present, y = tr[order[step % len(tr)]]
                x = torch.from_numpy(x)
                if random.random() < 0.5:
                    x = x.flip(-1)
                logit, _ = model(x.to(device))
                loss = metrics.competition_loss(logit[None], torch.tensor(y)[None].to(device),
                                                torch.from_numpy(present)[None].to(device))
            else:
                half = args.batch_size // 2
                chosen = random.sample(pos, min(half, len(pos))) + random.sample(neg, min(args.batch_size - min(half, len(pos)), len(neg)))
                x = torch.from_numpy(np.stack([tr[i][1][v] for i, v in chosen]))
                if random.random() < 0.5:
                    x = x.flip(-1)
                y = torch.tensor([float(tr[i][3][v + 1]) for i, v in chosen])
                w = torch.where(y > 0.5, metrics.VERTEBRA_WEIGHTS[1], metrics.VERTEBRA_WEIGHTS[0])
                logit, _ = model(x.to(device))
                loss = (F.binary_cross_entropy_with_logits(logit, y.to(device), reduction="none") * w.to(device)).sum() / w.sum().to(device)
            run.step(loss)
            total_loss += loss.item()
            n += 1
            if args.log_every and (step + 1) % args.log_every == 0:
                log(f"cls: epoch {epoch + 1} step {step + 1}/{steps_per_epoch} loss {total_loss / n:.4f}")
            if not run.time_left():
                break
        val = evaluate_cls(model, va, device, logit_shift) if va else {}
        score = -val["loss"] if val else -total_loss / max(n, 1)
        if not run.end_epoch(epoch, total_loss / max(n, 1), val, score):
            break
    return run.history
