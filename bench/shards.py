"""The cluster benchmark (bench/shards.sh; docs/cluster.md): on a single-node Slurm started here
(tests/python/slurm_cluster.py), the same studies as 1 shard and as 4 shards through scripts/slurm/submit.sh;
the cost of a task before its first study (process start and plan, model load, indexing its studies) and after
(merge), the seconds per study, and `cspine plan`'s indexing time per 1,000 studies on a tree of small studies.
Prints one JSON object.
  bench/shards.py CSPINE WORKDIR [studies=16] [matrix=128] [slices=100] [index_studies=200]"""
import json
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
from slurm_cluster import SlurmCluster, unavailable_reason  # noqa: E402

CSPINE = Path(sys.argv[1]).resolve()
WORK = Path(sys.argv[2]).resolve()
N_STUDIES, MATRIX, SLICES, N_INDEX = (int(a) for a in (sys.argv[3:] + ["16", "128", "100", "200"][len(sys.argv[3:]):]))
PREDICT = ["--device", "cpu"]
LINE = re.compile(r"^\[(\d\d:\d\d:\d\d\.\d+) \w+\] (.*)$")


def synth(out, n, matrix, slices, seed):
    if not (out / ".done").exists():
        subprocess.run([str(CSPINE), "-q", "synth", "-o", str(out), "-n", str(n), "--matrix", str(matrix), "--slices",
                        str(slices), "--seed", str(seed), "--test-fraction", "1"], check=True)
        (out / ".done").touch()
    return out / "test_images"


def seconds(t):
    return datetime.strptime(t, "%H:%M:%S.%f")


def task_costs(log):
    """From one task's log (cspine's timestamped lines): seconds from the first line to the models loaded, to the
    index of its studies, and per study after that."""
    t = {}
    for line in log.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        ts, msg = seconds(m.group(1)), m.group(2)
        t.setdefault("first", ts)
        if msg.startswith("models:"):
            t.setdefault("models", ts)
        if msg.startswith("indexed "):
            t.setdefault("indexed", ts)
        if "studies scored" in msg:
            t["end"] = ts
        m2 = re.search(r"seconds per study: ([\d.]+)", msg)
        if m2:
            t["per_study"] = float(m2.group(1))
    out = {}
    if "models" in t:
        out["start_to_models_loaded_s"] = (t["models"] - t["first"]).total_seconds()
    if "indexed" in t and "models" in t:
        out["index_own_studies_s"] = (t["indexed"] - t["models"]).total_seconds()
    if "end" in t:
        out["task_s"] = (t["end"] - t["first"]).total_seconds()
    if "per_study" in t:
        out["per_study_s"] = t["per_study"]
    return out


def run_array(cluster, images, run, shards, cpus):
    env = dict(cluster.env, CSPINE=str(CSPINE))
    t0 = time.monotonic()
    r = subprocess.run([str(ROOT / "scripts" / "slurm" / "submit.sh"), str(images), str(run), "--shards", str(shards),
                        "--cpus-per-task", str(cpus), "--", *PREDICT], env=env, capture_output=True,
                       text=True, check=True)
    ids = dict(re.findall(r"^(array_job|merge_job)=(\d+)$", r.stdout, re.M))
    cluster.wait_done([ids["array_job"], ids["merge_job"]], timeout=3600)
    wall = time.monotonic() - t0
    tasks = [task_costs((run / "logs" / f"shard-{k}.log").read_text()) for k in range(shards)]
    merge_log = (run / "logs" / "merge.log").read_text()
    stamps = [seconds(m.group(1)) for m in map(LINE.match, merge_log.splitlines()) if m]
    return {"shards": shards, "cpus_per_task": cpus, "wall_s": round(wall, 2), "tasks": tasks,
            "merge_s": round((stamps[-1] - stamps[0]).total_seconds(), 3) if len(stamps) > 1 else None,
            "merge_exit": cluster.job(ids["merge_job"]).get("ExitCode")}


def main():
    reason = unavailable_reason()
    if reason:
        sys.exit(f"bench/shards: {reason}")
    WORK.mkdir(parents=True, exist_ok=True)
    result = {"cores": len(open("/proc/cpuinfo").read().split("processor")) - 1}

    # Indexing: `cspine plan` over a tree of many small studies (the header reads dominate, so the cost is per file).
    tree = synth(WORK / f"index-{N_INDEX}", N_INDEX, 64, 60, 7)
    plan = WORK / "index-plan.json"
    t0 = time.monotonic()
    subprocess.run([str(CSPINE), "-q", "plan", str(tree), "-o", str(plan)], check=True)
    wall = time.monotonic() - t0
    p = json.loads(plan.read_text())
    result["index"] = {"studies": len(p["studies"]), "files": p["files"], "index_s": round(p["index_seconds"], 3),
                       "plan_command_s": round(wall, 3),
                       "s_per_1000_studies": round(p["index_seconds"] * 1000 / len(p["studies"]), 2),
                       "ms_per_file": round(p["index_seconds"] * 1000 / p["files"], 3)}

    images = synth(WORK / f"studies-{N_STUDIES}-{MATRIX}-{SLICES}", N_STUDIES, MATRIX, SLICES, 11)
    with tempfile.TemporaryDirectory() as tmp:
        cluster = SlurmCluster(Path(tmp) / "slurm").start()
        try:
            runs = []
            # One task with both cores, one task with one core (the per-study cost of a 1-thread task), and 4 tasks
            # of one core each (two at a time on 2 cores).
            for shards, cpus in ((1, 2), (1, 1), (4, 1)):
                run = WORK / f"run-{shards}x{cpus}"
                subprocess.run(["rm", "-rf", str(run)], check=True)
                runs.append(run_array(cluster, images, run, shards, cpus))
            csvs = {(WORK / f"run-{s}x{c}" / "submission.csv").read_bytes() for s, c in ((1, 2), (1, 1), (4, 1))}
            same = len(csvs) == 1
        finally:
            cluster.stop()
    result["studies"] = {"count": N_STUDIES, "matrix": MATRIX, "slices": SLICES}
    result["runs"] = runs
    result["merged_csvs_identical"] = same
    print(json.dumps(result, indent=1))


main()
