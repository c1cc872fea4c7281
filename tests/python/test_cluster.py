"""One batch sharded over a real Slurm cluster (issue 18; docs/cluster.md): scripts/slurm/submit.sh submits the
array and the merge on a single-node cluster that the test starts itself (slurm_cluster.py), over 8 small
synthetic studies, and every merged output is compared byte for byte with one `cspine predict` run over the same
studies. Without Slurm installed (or not root) the Slurm cases are skipped with a loud message; the local
shard/merge case runs everywhere."""
import json
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT, synth
from slurm_cluster import SlurmCluster, unavailable_reason

SUBMIT = ROOT / "scripts" / "slurm" / "submit.sh"
# The default models where the numbers matter (the 4-shard identity, the requeue mid-run: ~1-2 s per study here);
# the tiny test models (0.1 s per study) where the bookkeeping is what is tested. One thread per process: the
# single run as the shards (2 tasks share CI's 2 cores).
MODELS = {
    "default": ["--seg-model", str(ROOT / "models" / "seg.pt"), "--cls-model", str(ROOT / "models" / "cls.pt")],
    "tiny": ["--seg-model", str(ROOT / "models" / "test" / "tiny-seg.pt"),
             "--cls-model", str(ROOT / "models" / "test" / "tiny-cls.pt")],
}


def predict_args(models):
    return ["--device", "cpu", "--threads", "1", *MODELS[models]]


TIMINGS = {}


def timed(name):
    class T:
        def __enter__(self):
            self.t = time.monotonic()

        def __exit__(self, *a):
            TIMINGS[name] = round(time.monotonic() - self.t, 1)
            print(f"[timing] {name}: {TIMINGS[name]} s", file=sys.stderr)
    return T()


@pytest.fixture(scope="module")
def studies(cspine_binary, tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    synth(cspine_binary, root / "synth", "-n", 8, "--seed", 1818, "--matrix", 64, "--slices", 40,
          "--test-fraction", 0, "--fracture-rate", 0.5)
    return root / "synth" / "train_images"


@pytest.fixture(scope="module")
def single_run(cspine_binary, studies, tmp_path_factory):
    """The reference: one process over all 8 studies, per set of models (made once each)."""
    made = {}

    def get(models):
        if models not in made:
            out = tmp_path_factory.mktemp(f"single-{models}")
            with timed(f"single process run, 8 studies, {models} models"):
                subprocess.run([str(cspine_binary), "-q", "predict", str(studies), "-o", str(out / "submission.csv"),
                                "--wide-csv", str(out / "wide.csv"), *predict_args(models)], check=True)
            csv = (out / "submission.csv").read_text()
            assert csv.count("\n") == 1 + 8 * 8  # header + 8 rows per study: every study scored
            # Not a vacuous comparison: the models' own numbers, not only the classifier's prior.
            distinct = len({line.split(",")[1] for line in csv.splitlines()[1:]})
            assert distinct >= (40 if models == "default" else 16), distinct
            made[models] = out
        return made[models]
    return get


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        msg = f"SLURM TESTS SKIPPED: {reason}. These tests did NOT run."
        print("\n" + "!" * len(msg) + "\n" + msg + "\n" + "!" * len(msg), file=sys.stderr)
        pytest.skip(msg)
    c = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    with timed("cluster start"):
        c.start()
    yield c
    with timed("cluster stop"):
        c.stop()


def submit(cluster, cspine_binary, studies, run, *extra):
    env = dict(cluster.env, CSPINE=str(cspine_binary))
    r = subprocess.run([str(SUBMIT), str(studies), str(run), *map(str, extra)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ids = dict(re.findall(r"^(array_job|merge_job)=(\d+)$", r.stdout, re.M))
    assert set(ids) == {"array_job", "merge_job"}, r.stdout
    return ids["array_job"], ids["merge_job"]


def merge_exit(cluster, merge_job):
    return cluster.job(merge_job).get("ExitCode")


def journal_uids(path):
    lines = path.read_text().splitlines()
    return [json.loads(l)["study_uid"] for l in lines[1:] if l.strip()]


def study_uids(studies):
    return sorted(p.name for p in studies.iterdir() if p.is_dir())


def test_local_shards_and_merge_equal_one_run(cspine_binary, studies, single_run, tmp_path):
    """No scheduler: the 3 shards run one after the other; the plan, the shards and the merge alone."""
    ref = single_run("tiny")
    run = tmp_path / "run"
    subprocess.run([str(cspine_binary), "-q", "plan", str(studies), "-o", str(run / "plan.json")], check=True)
    for k in range(3):
        subprocess.run([str(cspine_binary), "-q", "predict", str(studies), "--run-dir", str(run), "--shard", f"{k}/3",
                        *predict_args("tiny")], check=True)
    sizes = [len(journal_uids(run / "shards" / f"{k:04d}-of-0003" / "submission.csv.progress.jsonl")) for k in range(3)]
    assert sizes == [3, 3, 2]
    r = subprocess.run([str(cspine_binary), "-q", "merge", str(run), "-o", str(tmp_path / "sub.csv"),
                        "--wide-csv", str(tmp_path / "wide.csv"), "--report", str(tmp_path / "report.json")])
    assert r.returncode == 0
    assert (tmp_path / "sub.csv").read_bytes() == (ref / "submission.csv").read_bytes()
    assert (tmp_path / "wide.csv").read_bytes() == (ref / "wide.csv").read_bytes()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["complete"] and [s["study_uid"] for s in report["studies"]] == study_uids(studies)
    # A shard given without its count, or out of range, is refused before anything runs.
    bad = subprocess.run([str(cspine_binary), "-q", "predict", str(studies), "--run-dir", str(run), "--shard", "3/3"])
    assert bad.returncode == 2


def test_local_shards_with_a_test_csv_equal_one_run(cspine_binary, studies, tmp_path):
    """--test-csv: its studies in its order, one it names that the input lacks (the prior), studies it does not
    name left out; the shards and the merge must all be given it."""
    uids = study_uids(studies)
    wanted = [uids[6], uids[1], "1.2.826.0.1.3680043.8.498.99999", uids[3], uids[0], uids[7]]
    labels = ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "patient_overall"]
    test_csv = tmp_path / "test.csv"
    test_csv.write_text("row_id,StudyInstanceUID,prediction_type\n" +
                        "".join(f"{u}_{l},{u},{l}\n" for u in wanted for l in labels))
    bin_ = str(cspine_binary)
    subprocess.run([bin_, "-q", "predict", str(studies), "-o", str(tmp_path / "single.csv"), "--test-csv", str(test_csv),
                    *predict_args("tiny")], check=True)
    run = tmp_path / "run"
    for k in range(3):  # without cspine plan: the first task makes RUN/plan.json
        subprocess.run([bin_, "-q", "predict", str(studies), "--run-dir", str(run), "--shard", f"{k}/3",
                        "--test-csv", str(test_csv), *predict_args("tiny")], check=True)
    assert (run / "plan.json").exists()
    assert subprocess.run([bin_, "-q", "merge", str(run), "-o", str(tmp_path / "no-test.csv")]).returncode == 2
    r = subprocess.run([bin_, "-q", "merge", str(run), "-o", str(tmp_path / "merged.csv"), "--test-csv", str(test_csv)])
    assert r.returncode == 0
    merged = (tmp_path / "merged.csv").read_bytes()
    assert merged == (tmp_path / "single.csv").read_bytes()
    assert merged.count(b"\n") == 1 + 6 * 8


def test_four_shards_on_slurm_merge_byte_identical(cluster, cspine_binary, studies, single_run, tmp_path):
    ref = single_run("default")
    run = tmp_path / "run"
    extra = ["--gpus-per-task", 1] if cluster.has_gpus else []
    with timed("slurm: 4-task array + merge, 8 studies"):
        array, merge = submit(cluster, cspine_binary, studies, run, "--shards", 4, "--cpus-per-task", 1, *extra,
                              "--merge-mem", "1G",
                              "--", *predict_args("default"))
        cluster.wait_done([array, merge])
    tasks = cluster.array_tasks(array)
    assert tasks == {k: ("COMPLETED", "0:0") for k in range(4)}, tasks
    assert merge_exit(cluster, merge) == "0:0", (run / "logs" / "merge.log").read_text()
    assert (run / "submission.csv").read_bytes() == (ref / "submission.csv").read_bytes()
    assert (run / "predictions-wide.csv").read_bytes() == (ref / "wide.csv").read_bytes()
    report = json.loads((run / "report.json").read_text())
    assert report["complete"] and len(report["studies"]) == 8 and report["merge"]["shards"] == 4
    # Each study scored by exactly one task, in the shard of its UID rank.
    uids = study_uids(studies)
    for k in range(4):
        assert journal_uids(run / "shards" / f"{k:04d}-of-0004" / "submission.csv.progress.jsonl") == uids[k::4]
    if cluster.has_gpus:  # the GPU request reached the scheduler (fake devices; cspine ran on the CPU)
        info = cluster.job(f"{array}_0")
        assert "gpu" in info.get("TresPerNode", "") + info.get("TresPerTask", ""), info


def test_failed_task_named_by_merge_then_rerun_completes(cluster, cspine_binary, studies, single_run, tmp_path):
    ref = single_run("tiny")
    data = tmp_path / "images"
    shutil.copytree(studies, data)
    run = tmp_path / "run"
    subprocess.run([str(cspine_binary), "-q", "plan", str(data), "-o", str(run / "plan.json")], check=True)
    broken = study_uids(data)[5]  # shard 1 of 4
    saved = {p: p.read_bytes() for p in (data / broken).iterdir()}
    for p in saved:
        p.write_bytes(b"not DICOM any more")
    with timed("slurm: array with a broken study + merge"):
        array, merge = submit(cluster, cspine_binary, data, run, "--shards", 4, "--cpus-per-task", 1, "--", *predict_args("tiny"))
        cluster.wait_done([array, merge])
    tasks = cluster.array_tasks(array)
    assert tasks[1][0] == "FAILED" and tasks[1][1] == "7:0", tasks  # predict's exit 7: some studies failed
    assert all(tasks[k] == ("COMPLETED", "0:0") for k in (0, 2, 3)), tasks
    assert merge_exit(cluster, merge) == "7:0"
    log = (run / "logs" / "merge.log").read_text()
    assert re.search(r"shard 1 of 4 .*1 failed: " + re.escape(broken), log), log
    assert "rerun-shards: 1" in log

    for p, b in saved.items():  # the study is mended; only its shard runs again
        p.write_bytes(b)
    with timed("slurm: rerun of one shard + merge"):
        array2, merge2 = submit(cluster, cspine_binary, data, run, "--shards", 4, "--only", 1, "--cpus-per-task", 1,
                                "--", *predict_args("tiny"))
        cluster.wait_done([array2, merge2])
    assert cluster.array_tasks(array2) == {1: ("COMPLETED", "0:0")}
    assert merge_exit(cluster, merge2) == "0:0", (run / "logs" / "merge.log").read_text()
    assert (run / "submission.csv").read_bytes() == (ref / "submission.csv").read_bytes()
    assert (run / "predictions-wide.csv").read_bytes() == (ref / "wide.csv").read_bytes()
    # The other shards were not scored again.
    assert (run / "logs" / "shard-0.log").read_text().count("cspine exited") == 1


@pytest.mark.parametrize("how", ["requeue", "time-limit-signal"])
def test_task_requeued_mid_run_resumes_from_its_journal(cluster, cspine_binary, studies, single_run, tmp_path, how):
    """`requeue`: the scheduler requeues a running task (as a preemption does): SIGTERM reaches cspine, which saves
    and exits 130. `time-limit-signal`: the USR1 that --signal=B:USR1@S sends before the time limit (sent at once
    here, with scancel --batch, since time limits act with ~30 s granularity): task.sh asks cspine to stop and
    requeues the task itself."""
    ref = single_run("default")
    run = tmp_path / "run"
    with timed(f"slurm: 1-task array stopped mid-run ({how}), resumed + merge"):
        array, merge = submit(cluster, cspine_binary, studies, run, "--shards", 1, "--cpus-per-task", 1, "--", *predict_args("default"))
        journal = run / "shards" / "0000-of-0001" / "submission.csv.progress.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (journal.exists() and len(journal_uids(journal)) >= 1):
            time.sleep(0.05)
        scored_before = len(journal_uids(journal))
        assert 1 <= scored_before < 8, "the task finished before it could be requeued mid-run"
        task = f"{array}_0"
        if how == "requeue":
            cluster.run("scontrol", "requeue", task)
        else:
            cluster.run("scancel", "--batch", "--signal=USR1", task)
        # A requeued job is held ~2 min (EligibleTime); release it once it is pending again and its first run has
        # left the node (released earlier, the new start can reach the node while the old one is still ending
        # there, and fails to launch).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                cluster.job(task).get("JobState") == "PENDING"
                and cluster.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip() == "idle"):
            time.sleep(0.1)
        # slurmd refuses a credential created in the same second as the old run's revoked one ("Job credential
        # revoked": the task then ends FAILED, seen in CI); Slurm's own 2-minute hold avoids that, 2 s do here.
        time.sleep(2)
        cluster.run("scontrol", "update", f"jobid={task}", "starttime=now")
        cluster.wait_done([array, merge])
    info = cluster.job(task)
    assert info.get("JobState") == "COMPLETED" and int(info.get("Restarts", "0")) >= 1, info
    log = (run / "logs" / "shard-0.log").read_text()  # --open-mode=append: both attempts
    assert "cspine exited 130" in log, log
    if how != "requeue":
        assert "time limit near: requeueing" in log, log
    resumed = [int(n) for n in re.findall(r"--resume: (\d+) of 8 studies already scored", log)]
    assert len(resumed) == 2 and resumed[0] == 0 and resumed[1] >= scored_before, log
    assert merge_exit(cluster, merge) == "0:0"
    assert sorted(journal_uids(journal)) == study_uids(studies)  # nothing scored twice
    assert (run / "submission.csv").read_bytes() == (ref / "submission.csv").read_bytes()


def test_same_shard_twice_is_refused_or_harmless(cluster, cspine_binary, studies, single_run, tmp_path):
    ref = single_run("tiny")
    run = tmp_path / "run"
    subprocess.run([str(cspine_binary), "-q", "plan", str(studies), "-o", str(run / "plan.json")], check=True)
    (run / "logs").mkdir()
    cmd = " ".join([str(cspine_binary), "-q", "predict", str(studies), "--run-dir", str(run), "--shard", "0/2",
                    *predict_args("tiny")])
    with timed("slurm: two jobs on shard 0/2 at once, then shard 1/2 + merge"):
        twins = [cluster.run("sbatch", "--parsable", "-c", "1", "-o", str(run / "logs" / f"twin-{i}.log"),
                             "--wrap", cmd).stdout.strip() for i in range(2)]
        cluster.wait_done(twins)
        subprocess.run([str(cspine_binary), "-q", "predict", str(studies), "--run-dir", str(run), "--shard", "1/2",
                        *predict_args("tiny")], check=True)
        r = subprocess.run([str(cspine_binary), "-q", "merge", str(run), "-o", str(tmp_path / "sub.csv")])
    states = [cluster.job(j).get("ExitCode") for j in twins]
    # Either both ran one after the other (the second resumed and scored nothing) or one was refused (exit 6:
    # the other holds the shard's lock); never both scoring.
    assert sorted(states) in (["0:0", "0:0"], ["0:0", "6:0"]), states
    journal = run / "shards" / "0000-of-0002" / "submission.csv.progress.jsonl"
    uids = journal_uids(journal)
    assert len(uids) == len(set(uids)) == 4, uids
    assert r.returncode == 0
    assert (tmp_path / "sub.csv").read_bytes() == (ref / "submission.csv").read_bytes()


def test_print_timings():
    """Not a check: the timings of this module's cases, for docs/cluster.md."""
    print("\n" + json.dumps(TIMINGS, indent=1), file=sys.stderr)
