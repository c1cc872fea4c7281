"""`cspine predict --dicom-out`: the SEG, SR and key image of each study, checked by readers that share nothing with
the writer: dciodvfy (dicom3tools) for the IODs, pydicom + numpy to decode the SEG frames against the NIfTI masks
voxel for voxel on the source grid (placed through each file's own geometry), and the SR's numbers against the CSV."""
import csv
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
nib = pytest.importorskip("nibabel")

DCIODVFY = shutil.which("dciodvfy")


def run_predict(binary, images, out, *extra):
    out.mkdir(parents=True, exist_ok=True)
    cmd = [str(binary), "-q", "predict", str(images), "-o", str(out / "sub.csv"), "--wide-csv", str(out / "wide.csv"),
           "--report", str(out / "report.json"), "--save-masks", str(out / "masks"), "--dicom-out", str(out / "dicom"),
           *map(str, extra)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p


@pytest.fixture(scope="module")
def scored(cspine_binary, tmp_path_factory):
    root = tmp_path_factory.mktemp("dicom-out")
    subprocess.run([str(cspine_binary), "-q", "synth", "-o", str(root / "synth"), "-n", "2", "--seed", "17",
                    "--matrix", "128", "--slices", "64", "--test-fraction", "0", "--fracture-rate", "1"], check=True)
    images = root / "synth" / "train_images"
    p = run_predict(cspine_binary, images, root / "out")
    assert p.returncode == 0, p.stderr
    return images, root / "out"


def studies(out):
    return sorted(d for d in (out / "dicom").iterdir() if d.is_dir())


def objects(out):
    return sorted((out / "dicom").glob("*/*.dcm"))


def source_files(images, uid):
    return sorted((images / uid).glob("*.dcm"))


def test_every_study_gets_a_seg_an_sr_and_a_key_image(scored):
    images, out = scored
    uids = sorted(d.name for d in images.iterdir())
    assert [d.name for d in studies(out)] == uids
    for d in studies(out):
        assert sorted(f.name for f in d.iterdir()) == ["key.dcm", "seg.dcm", "sr.dcm"]


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (Debian package dicom3tools) not installed")
def test_dciodvfy_finds_no_error_in_any_object(scored):
    _, out = scored
    errors, warnings = [], []
    for f in objects(out):
        p = subprocess.run([DCIODVFY, str(f)], capture_output=True, text=True)
        for line in (p.stdout + p.stderr).splitlines():
            if line.startswith("Error"):
                errors.append(f"{f.parent.name[-8:]}/{f.name}: {line}")
            elif line.startswith("Warning"):
                warnings.append(f"{f.parent.name[-8:]}/{f.name}: {line}")
    print(f"dciodvfy: {len(objects(out))} objects, {len(errors)} errors, {len(warnings)} warnings")
    for w, n in Counter(w.split(": ", 1)[1] for w in warnings).items():
        print(f"  {n} x {w}")
    assert not errors, "\n".join(errors)


def test_pydicom_reads_them_in_the_source_study_with_the_source_patient(scored):
    images, out = scored
    for d in studies(out):
        src = pydicom.dcmread(source_files(images, d.name)[0], stop_before_pixels=True)
        seen = {}
        for f in sorted(d.iterdir()):
            ds = pydicom.dcmread(f)
            assert ds.StudyInstanceUID == src.StudyInstanceUID == d.name
            assert ds.PatientID == src.PatientID and ds.PatientName == src.PatientName
            assert ds.SeriesInstanceUID != src.SeriesInstanceUID
            assert "research use only, not for diagnosis" in ds.SeriesDescription
            assert ds.SeriesDescription.startswith("cspine")
            seen[ds.Modality] = ds
        assert set(seen) == {"SEG", "SR", "OT"}
        assert seen["SEG"].FrameOfReferenceUID == src.FrameOfReferenceUID
        key = seen["OT"]
        rgb = key.pixel_array
        assert key.PhotometricInterpretation == "RGB" and rgb.shape == (key.Rows, key.Columns, 3)
        assert rgb.std() > 10  # an image, not a blank


def seg_labels_on_source_grid(seg, images, uid, shape_ijk, affine):
    """The SEG's frames, decoded by pydicom, placed on the NIfTI grid through the source image each frame
    references (its own ImagePositionPatient, through the NIfTI's affine): labels 1..7."""
    by_sop = {}
    for f in source_files(images, uid):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        by_sop[ds.SOPInstanceUID] = ds
    segments = {int(s.SegmentNumber): s.SegmentLabel for s in seg.SegmentSequence}
    frames = seg.pixel_array
    if frames.ndim == 2:
        frames = frames[None]
    out = np.zeros(shape_ijk, np.uint8)
    inv = np.linalg.inv(affine)
    for n, fg in enumerate(seg.PerFrameFunctionalGroupsSequence):
        label = int(segments[int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber)][1])  # "C3" -> 3
        ref = fg.DerivationImageSequence[0].SourceImageSequence[0]
        src = by_sop[ref.ReferencedSOPInstanceUID]
        ipp = np.array([float(v) for v in fg.PlanePositionSequence[0].ImagePositionPatient])
        assert np.allclose(ipp, [float(v) for v in src.ImagePositionPatient], atol=1e-3)
        ras = ipp * np.array([-1, -1, 1])
        i, j, k = np.rint(inv[:3, :3] @ ras + inv[:3, 3]).astype(int)
        assert (i, j) == (0, 0)
        frame = frames[n].astype(bool)  # rows x columns of the source image
        assert frame.shape == (int(src.Rows), int(src.Columns))
        out[:, :, k][frame.T] = label
    return out


def test_seg_frames_equal_the_nifti_masks_voxel_for_voxel(scored):
    images, out = scored
    checked = 0
    for d in studies(out):
        seg = pydicom.dcmread(d / "seg.dcm")
        assert seg.SegmentationType == "BINARY"
        mask = nib.load(str(out / "masks" / f"{d.name}.nii.gz"))
        truth = np.asarray(mask.dataobj).astype(np.uint8)
        truth[truth > 7] = 0  # the SEG holds C1..C7
        got = seg_labels_on_source_grid(seg, images, d.name, truth.shape, mask.affine)
        assert got.shape == truth.shape
        assert (truth > 0).sum() > 0
        assert np.array_equal(got, truth), f"{d.name}: {(got != truth).sum()} voxels differ"
        for s in seg.SegmentSequence:  # coded with the anatomic codes of CID 7603
            code = s.SegmentedPropertyTypeCodeSequence[0]
            assert code.CodingSchemeDesignator == "SCT" and code.CodeMeaning == f"{s.SegmentLabel} vertebra"
        checked += 1
    assert checked == 2


def sr_items(seq, path=()):
    for item in seq:
        name = item.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in item else ""
        yield path, item, name
        if "ContentSequence" in item:
            yield from sr_items(item.ContentSequence, path + (item,))


def test_sr_numbers_equal_the_csv_and_point_at_the_key_slices(scored):
    images, out = scored
    wide = {r["StudyInstanceUID"]: r for r in csv.DictReader(open(out / "wide.csv"))}
    report = {s["study_uid"]: s for s in json.load(open(out / "report.json"))["studies"]}
    for d in studies(out):
        sr = pydicom.dcmread(d / "sr.dcm")
        row, entry = wide[d.name], report[d.name]
        top = {name: item for _, item, name in sr_items(sr.ContentSequence) if not _}
        p = top["Cervical spine fracture probability (patient)"].MeasuredValueSequence[0].NumericValue
        assert f"{float(p):.6f}" == row["patient_overall"]
        found = 0
        for item in sr.ContentSequence:
            if item.ValueType != "CONTAINER":
                continue
            kids = {k.ConceptNameCodeSequence[0].CodeMeaning: k for k in item.ContentSequence}
            v = kids["Finding Site"].ConceptCodeSequence[0].CodeMeaning.split()[0]
            prob = float(kids["Fracture probability"].MeasuredValueSequence[0].NumericValue)
            assert f"{prob:.6f}" == row[v]
            predicted = kids["Predicted fractured at threshold"].ConceptCodeSequence[0].CodeMeaning
            assert predicted == ("Yes" if prob >= 0.5 else "No")
            ve = entry["vertebrae"][v]
            assert ("Fallback (prior reported)" in kids) == (ve["fallback"] is not None)
            if ve.get("key_slice"):
                ref = kids["Key slice (highest attention)"].ReferencedSOPSequence[0]
                key_file = images / d.name / f"{ve['key_slice']['slice_number']}.dcm"
                assert ref.ReferencedSOPInstanceUID == pydicom.dcmread(key_file, stop_before_pixels=True).SOPInstanceUID
            found += 1
        assert found == 7


@pytest.fixture(scope="module")
def second_run(cspine_binary, scored, tmp_path_factory):
    """The same studies scored again, the first one with its FrameOfReferenceUID removed from every file (a source
    geometry that cannot carry a SEG)."""
    images, _ = scored
    root = tmp_path_factory.mktemp("dicom-out-again")
    uids = sorted(d.name for d in images.iterdir())
    for uid in uids:
        (root / "images" / uid).mkdir(parents=True)
        for f in source_files(images, uid):
            if uid == uids[0]:
                ds = pydicom.dcmread(f)
                del ds.FrameOfReferenceUID
                ds.save_as(root / "images" / uid / f.name)
            else:
                shutil.copy(f, root / "images" / uid / f.name)
    p = run_predict(cspine_binary, root / "images", root / "out")
    assert p.returncode == 0, p.stderr
    return root / "images", root / "out", uids[0], uids[1]


def test_a_second_run_gives_the_same_uids_and_resume_writes_nothing_new(cspine_binary, scored, second_run):
    _, out = scored
    images, again_out, _, good = second_run
    first = {f.name: pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in (out / "dicom" / good).iterdir()}
    again = {f.name: pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID
             for f in (again_out / "dicom" / good).iterdir()}
    assert again == first and len(first) == 3  # derived from the study, series and models: a PACS stores nothing twice
    for f in objects(again_out):
        f.unlink()
    p = run_predict(cspine_binary, images, again_out, "--resume")
    assert p.returncode == 0, p.stderr
    assert objects(again_out) == []  # studies in the journal are not scored again


def test_a_study_without_usable_geometry_gets_a_warning_and_its_csv_rows(second_run):
    _, out, broken, good = second_run
    rows = [r["row_id"] for r in csv.DictReader(open(out / "sub.csv"))]
    assert sum(r.startswith(broken) for r in rows) == 8
    entries = {e["study_uid"]: e for e in json.load(open(out / "report.json"))["studies"]}
    assert "dicom-out-skipped" in [w["code"] for w in entries[broken]["warnings"]]
    assert "dicom-out-skipped" not in [w["code"] for w in entries[good]["warnings"]]
    assert not (out / "dicom" / broken).exists()
