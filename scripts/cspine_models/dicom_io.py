"""Reading a study the way cspine's loader does, with pydicom and nibabel: one CT series, slices sorted by
position along the slice normal (row cosine x column cosine), HU from RescaleSlope/Intercept, padding pixels
set to -1024. Gantry tilt is not corrected here (cspine's loader does; the synthetic studies have none)."""

import os

import nibabel as nib
import numpy as np
import pydicom

PADDING_HU = -1024


class StudyError(RuntimeError):
    pass


def _dicom_files(folder):
    out = []
    for root, _, files in os.walk(folder):
        for f in files:
            if not f.startswith("."):
                out.append(os.path.join(root, f))
    return sorted(out)


def _is_axial_image(ds):
    image_type = [str(t).upper() for t in getattr(ds, "ImageType", [])]
    return "LOCALIZER" not in image_type and hasattr(ds, "ImagePositionPatient") and hasattr(ds, "ImageOrientationPatient")


def load_study(folder):
    """Returns (hu int16 [Z, R, C], affine 4x4 LPS voxel(i=column, j=row, k=slice) -> mm, headers of the sorted
    slices). The series kept is the one with most slices (as cspine picks by default)."""
    series = {}
    for path in _dicom_files(folder):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if not _is_axial_image(ds) or not hasattr(ds, "Rows"):
            continue
        series.setdefault(str(getattr(ds, "SeriesInstanceUID", "")), []).append((path, ds))
    if not series:
        raise StudyError(f"{folder}: no CT images")
    items = max(series.values(), key=len)
    iop = np.array([float(v) for v in items[0][1].ImageOrientationPatient])
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    pos = [float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient])) for _, ds in items]
    order = np.argsort(pos, kind="stable")
    items = [items[i] for i in order]
    # duplicates (same position): keep the first, as cspine does
    kept, last = [], None
    for (p, ds), z in zip(items, sorted(pos)):
        if last is not None and abs(z - last) < 1e-3:
            continue
        kept.append((p, ds))
        last = z
    slices = []
    for p, _ in kept:
        ds = pydicom.dcmread(p)
        raw = ds.pixel_array
        hu = raw.astype(np.float64) * float(getattr(ds, "RescaleSlope", 1.0)) + float(getattr(ds, "RescaleIntercept", 0.0))
        pad = getattr(ds, "PixelPaddingValue", None)
        if pad is not None:
            lim = getattr(ds, "PixelPaddingRangeLimit", pad)
            lo, hi = min(pad, lim), max(pad, lim)
            hu[(raw >= lo) & (raw <= hi)] = PADDING_HU
        slices.append(np.clip(np.rint(hu), -32768, 32767).astype(np.int16))
    vol = np.stack(slices)
    first = kept[0][1]
    ps = [float(v) for v in first.PixelSpacing]  # row spacing, column spacing
    z = sorted(pos)
    dz = float(np.median(np.diff(z))) if len(z) > 1 else float(getattr(first, "SliceThickness", 1.0))
    aff = np.eye(4)
    aff[:3, 0] = row * ps[1]
    aff[:3, 1] = col * ps[0]
    aff[:3, 2] = normal * dz
    aff[:3, 3] = [float(v) for v in first.ImagePositionPatient]
    return vol, aff, [ds for _, ds in kept]


def load_labels(nifti_path, ct_affine_lps, ct_shape):
    """A label NIfTI (any orientation, read through its header) in the CT's voxel order [Z, R, C]. The two grids
    must coincide up to axis order and direction (as the RSNA segmentations do)."""
    img = nib.load(nifti_path)
    data = np.asanyarray(img.dataobj)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    ct_ras = lps_to_ras @ ct_affine_lps
    m = np.linalg.inv(img.affine) @ ct_ras  # CT voxel (i, j, k) -> label voxel
    p = np.rint(m[:3, :3])
    if not (np.allclose(m[:3, :3], p, atol=1e-2) and (np.abs(p).sum(axis=0) == 1).all() and (np.abs(p).sum(axis=1) == 1).all()):
        raise StudyError(f"{nifti_path}: label grid is not the CT grid (rotation or scaling between them)")
    t = np.rint(m[:3, 3]).astype(int)
    out_shape = (ct_shape[2], ct_shape[1], ct_shape[0])  # (i, j, k) extents
    # label index along its axis a = sign * ct_index(b) + t[a]
    perm = [int(np.nonzero(p[:, b])[0][0]) for b in range(3)]  # CT axis b -> label axis perm[b]
    slices = []
    for b in range(3):
        a = perm[b]
        s = int(p[a, b])
        idx = s * np.arange(out_shape[b]) + t[a]
        if idx.min() < 0 or idx.max() >= data.shape[a]:
            raise StudyError(f"{nifti_path}: label grid does not cover the CT")
        slices.append((a, idx))
    arr = np.transpose(data, [a for a, _ in slices])
    arr = arr[np.ix_(*[idx for _, idx in slices])]
    # arr is indexed (i, j, k); the CT array is [k, j, i]
    return np.ascontiguousarray(np.transpose(arr, (2, 1, 0))).astype(np.uint8)
