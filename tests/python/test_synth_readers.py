"""What `cspine synth` writes, read by independent tools: pydicom (with GDCM for the compressed transfer
syntaxes) for the DICOM, nibabel for the segmentations. The mask must land on bone once both are placed in
patient space through their own headers."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
nib = pytest.importorskip("nibabel")

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("CSPINE_BINARY", ROOT / "build" / "cspine"))
SYNTAXES = ["explicit", "implicit", "jpeg-lossless", "jpeg-ls", "rle", "j2k"]
UIDS = {"explicit": "1.2.840.10008.1.2.1", "implicit": "1.2.840.10008.1.2", "jpeg-lossless": "1.2.840.10008.1.2.4.70",
        "jpeg-ls": "1.2.840.10008.1.2.4.80", "rle": "1.2.840.10008.1.2.5", "j2k": "1.2.840.10008.1.2.4.90"}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    if not BINARY.exists():
        pytest.skip(f"cspine binary not found at {BINARY} (build first or set CSPINE_BINARY)")
    out = {}
    for ts in SYNTAXES:
        d = tmp_path_factory.mktemp(ts)
        subprocess.run([str(BINARY), "-q", "synth", "-o", str(d), "-n", "2", "--seed", "17", "--matrix", "128",
                        "--slices", "48", "--test-fraction", "0", "--fracture-rate", "1", "--transfer-syntax", ts],
                       check=True)
        out[ts] = d
    return out


def read_series(folder):
    """A competent notebook's loader: every file, sorted by position, HU from the rescale tags."""
    ds = [pydicom.dcmread(str(f)) for f in sorted(folder.glob("*.dcm"))]
    ds.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    vol = np.stack([d.pixel_array.astype(np.float64) * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in ds])
    pad = getattr(ds[0], "PixelPaddingValue", None)
    if pad is not None:
        raw = np.stack([d.pixel_array for d in ds])
        vol[raw == pad] = -1024
    return ds, vol


def study_dirs(root):
    return sorted(p for p in (root / "train_images").iterdir() if p.is_dir())


def test_pydicom_reads_every_syntax_with_full_ct_headers(datasets):
    volumes = {}
    for ts, root in datasets.items():
        for study in study_dirs(root):
            ds, vol = read_series(study)
            assert len(ds) == 48
            assert {str(d.file_meta.TransferSyntaxUID) for d in ds} == {UIDS[ts]}
            first = ds[0]
            assert first.Modality == "CT"
            assert first.StudyInstanceUID == study.name
            assert len({d.SOPInstanceUID for d in ds}) == 48
            assert len({d.SeriesInstanceUID for d in ds}) == 1
            assert first.BitsStored in (12, 16) and first.BitsAllocated == 16
            assert first.PixelRepresentation in (0, 1)
            assert [float(x) for x in first.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
            for tag in ("PatientID", "PixelSpacing", "SliceThickness", "WindowCenter", "WindowWidth", "RescaleIntercept",
                        "FrameOfReferenceUID", "StudyDate"):
                assert tag in first, tag
            assert sorted(int(p.stem) for p in study.glob("*.dcm")) == sorted(int(d.InstanceNumber) for d in ds)
            # Air, soft tissue and bone are all there, in HU.
            assert vol.min() <= -1000 and np.median(vol) < 0 and vol.max() > 700
            volumes.setdefault(study.name, []).append((ts, vol))
    # Same seed, lossless codecs: every syntax decodes to the same numbers.
    for uid, vols in volumes.items():
        ref_ts, ref = vols[0]
        for ts, vol in vols[1:]:
            assert np.array_equal(vol, ref), f"{uid}: {ts} differs from {ref_ts}"


def test_nibabel_masks_align_with_bone_through_the_headers(datasets):
    root = datasets["explicit"]
    for study in study_dirs(root):
        ds, vol = read_series(study)
        seg = nib.load(str(root / "segmentations" / f"{study.name}.nii"))
        lab = np.asarray(seg.dataobj)
        ijk = np.argwhere(lab > 0)
        lps = nib.affines.apply_affine(seg.affine, ijk) * np.array([-1, -1, 1])  # NIfTI is RAS, DICOM is LPS
        ipp0 = np.array([float(x) for x in ds[0].ImagePositionPatient])
        row_mm, col_mm = (float(x) for x in ds[0].PixelSpacing)
        dz = float(ds[1].ImagePositionPatient[2]) - float(ds[0].ImagePositionPatient[2])
        col = np.rint((lps[:, 0] - ipp0[0]) / col_mm).astype(int)
        row = np.rint((lps[:, 1] - ipp0[1]) / row_mm).astype(int)
        k = np.rint((lps[:, 2] - ipp0[2]) / dz).astype(int)
        assert col.min() >= 0 and row.min() >= 0 and k.min() >= 0 and k.max() < len(ds)
        bone = np.mean(vol[k, row, col] > 150)
        assert bone >= 0.95, f"{study.name}: only {bone:.3f} of labelled voxels are bone"
        assert set(np.unique(lab)) >= set(range(0, 10))
        # Stored like the competition's files: LAS, slices from the feet up. The recipe notebooks use on those,
        # seg[:, ::-1, ::-1].transpose(2, 1, 0), gives the mask in (slice from the top, row, column) order.
        assert nib.aff2axcodes(seg.affine) == ("L", "A", "S")
        recipe = lab[:, ::-1, ::-1].transpose(2, 1, 0)
        top_down = vol[::-1]
        assert recipe.shape == top_down.shape
        assert np.mean(top_down[recipe > 0] > 150) >= 0.95
