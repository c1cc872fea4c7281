"""The nightly workflow against a real PACS: Orthanc started by the test on 127.0.0.1 (temporary configuration and
storage, free ports, stopped by its process id), synthetic CT studies uploaded, scripts/pacs/nightly.sh run
against it with DCMTK's findscu/getscu/storescu. Checked through Orthanc's REST API: a refused C-STORE is reported
per study and retried by the next run; then each study holds the SEG, SR and key-image series, Orthanc parses them,
and a further run adds nothing."""
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from orthanc_server import ORTHANC, Orthanc

ROOT = Path(__file__).resolve().parents[2]
NIGHTLY = ROOT / "scripts" / "pacs" / "nightly.sh"

pytestmark = pytest.mark.skipif(not Path(ORTHANC).exists() or shutil.which("getscu") is None,
                                reason="Orthanc (Debian package orthanc) or DCMTK's network tools not installed")


@pytest.fixture(scope="module")
def pacs(cspine_binary, tmp_path_factory):
    root = tmp_path_factory.mktemp("pacs")
    subprocess.run([str(cspine_binary), "-q", "synth", "-o", str(root / "synth"), "-n", "2", "--seed", "23",
                    "--matrix", "64", "--slices", "40", "--test-fraction", "0"], check=True)
    server = Orthanc(root / "orthanc", allow_store=False)
    try:
        server.upload(sorted((root / "synth" / "train_images").glob("*/*.dcm")))
        yield server, root
    finally:
        server.stop()


def nightly(server, cspine_binary, work):
    t = time.time()
    p = subprocess.run([str(NIGHTLY), "--host", "127.0.0.1", "--port", str(server.dicom_port), "--called-aet", server.AET,
                        "--calling-aet", server.client_aet, "--from", "20260101", "--to", "20261231", "--work", str(work),
                        "--cspine", str(cspine_binary)], capture_output=True, text=True)
    runs = sorted((work / "runs").iterdir())
    rows = [line.split("\t") for line in (runs[-1] / "nightly.tsv").read_text().splitlines()[1:]]
    return p, {r[0]: r[1] for r in rows}, time.time() - t, runs[-1]


def series_by_modality(server, study_id):
    out = {}
    for s in server.get(f"/studies/{study_id}/series"):
        out.setdefault(s["MainDicomTags"].get("Modality"), []).append(s)
    return out


def test_nightly_round_trip_through_orthanc(pacs, cspine_binary, tmp_path):
    server, root = pacs
    work = tmp_path / "work"
    studies = server.get("/studies")
    assert len(studies) == 2
    before = server.get("/statistics")["CountInstances"]

    # 1. The PACS refuses our C-STORE: each study is reported as send-failed, the exit code says so, nothing stored.
    p, status, s1, run = nightly(server, cspine_binary, work)
    print(p.stderr)
    assert p.returncode == 1
    assert sorted(status.values()) == ["send-failed", "send-failed"]
    assert server.get("/statistics")["CountInstances"] == before
    assert (run / "submission.csv").exists() and (run / "report.json").exists()

    # 2. Allowed again: the next run sends what is pending (without scoring again) and confirms it.
    server.allow_store(True)
    p, status, s2, run = nightly(server, cspine_binary, work)
    print(p.stderr)
    assert p.returncode == 0, p.stderr
    assert sorted(status.values()) == ["sent", "sent"]
    after = server.get("/statistics")["CountInstances"]
    assert after == before + 2 * 3
    for sid in studies:
        study = server.get(f"/studies/{sid}")
        mods = series_by_modality(server, sid)
        assert set(mods) == {"CT", "SEG", "SR", "OT"}, mods.keys()
        for m in ("SEG", "SR", "OT"):
            (series,) = mods[m]
            assert "research use only" in series["MainDicomTags"]["SeriesDescription"]
            (inst,) = series["Instances"]
            tags = server.get(f"/instances/{inst}/simplified-tags")  # Orthanc parsed the object
            assert tags["StudyInstanceUID"] == study["MainDicomTags"]["StudyInstanceUID"]
            assert tags["PatientID"] == study["PatientMainDicomTags"]["PatientID"]
        seg = server.get(f"/instances/{mods['SEG'][0]['Instances'][0]}/simplified-tags")
        assert int(seg["NumberOfFrames"]) > 0 and len(seg["SegmentSequence"]) > 0
        sr = server.get(f"/instances/{mods['SR'][0]['Instances'][0]}/simplified-tags")
        assert sr["ValueType"] == "CONTAINER" and len(sr["ContentSequence"]) > 7

    # 3. A further run adds nothing, and a run with a fresh work folder adds nothing either (same UIDs).
    p, status, s3, _ = nightly(server, cspine_binary, work)
    assert p.returncode == 0, p.stderr
    assert sorted(status.values()) == ["already-done", "already-done"]
    p, status, s4, _ = nightly(server, cspine_binary, tmp_path / "fresh")
    assert p.returncode == 0, p.stderr
    assert server.get("/statistics")["CountInstances"] == after
    print(f"round trip: 2 studies, {after - before} objects; runs {s1:.1f} s (refused), {s2:.1f} s (sent), "
          f"{s3:.1f} s (nothing to do), {s4:.1f} s (fresh work folder)")
