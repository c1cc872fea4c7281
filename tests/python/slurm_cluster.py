"""A real single-node Slurm cluster for tests, from Debian's packages (slurmctld, slurmd, slurm-client): started
by the test as its own processes, without systemd, with every file under one temporary folder, and stopped by
the process ids in its own pid files (never by name). No cgroups (proctrack/linuxproc, task/none); auth/none
and cred/none, so no munged is needed; the node line from `slurmd -C`; free ports on 127.0.0.1; two fake GPUs
(character devices) so that `--gres=gpu:1` schedules. See docs/cluster.md ("Tests on a real Slurm")."""
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")


def unavailable_reason():
    """Why a cluster cannot be started here, or None."""
    missing = [d for d in DAEMONS if not os.access(d, os.X_OK)] + [c for c in CLIENTS if not shutil.which(c)]
    if missing:
        return "Slurm is not installed (missing " + ", ".join(missing) + "; scripts/install-deps.sh installs it)"
    if os.geteuid() != 0:
        return "the test cluster runs slurmd as root (SlurmdUser=root), and this is not root"
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.pids = {}

    # -- client commands -------------------------------------------------------------------------------------
    def run(self, *args, check=True, timeout=60):
        r = subprocess.run([str(a) for a in args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, args))}: exit {r.returncode}: {r.stderr.strip()}")
        return r

    def job(self, job_id):
        """scontrol's fields of a job (or array task, "123_4") as a dict; {} once it is forgotten."""
        r = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        if r.returncode != 0:
            return {}
        fields = {}
        for line in r.stdout.splitlines()[:1]:
            for tok in line.split():
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    fields.setdefault(k, v)
        return fields

    def array_tasks(self, array_job):
        """{task id: (JobState, ExitCode)} of every task of an array."""
        r = self.run("scontrol", "-o", "show", "job", array_job, check=False)
        out = {}
        for line in r.stdout.splitlines():
            f = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
            if "ArrayTaskId" in f and f["ArrayTaskId"].isdigit():
                out[int(f["ArrayTaskId"])] = (f.get("JobState"), f.get("ExitCode"))
        return out

    def wait_done(self, job_ids, timeout=150):
        """Polls squeue until none of `job_ids` is pending, running or completing (sbatch --wait is late and
        says 0 for a job cancelled before it ran)."""
        deadline = time.monotonic() + timeout
        ids = ",".join(map(str, job_ids))
        while time.monotonic() < deadline:
            r = self.run("squeue", "-h", "-j", ids, "-t", "PD,R,CG,CF,RQ,RS,S", "-o", "%i %T %r", check=False)
            if r.returncode == 0 and not r.stdout.strip():
                return
            time.sleep(0.2)
        raise TimeoutError(f"jobs {ids} still queued after {timeout} s:\n{r.stdout}\n{self.log_tail()}")

    def log_tail(self):
        text = ""
        for name in ("slurmctld.log", "slurmd.log"):
            p = self.root / name
            if p.exists():
                text += f"--- {name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:]) + "\n"
        return text

    # -- start and stop ----------------------------------------------------------------------------------------
    def start(self, timeout=30):
        r = self.root
        (r / "state").mkdir(parents=True)
        (r / "spool").mkdir()
        node = subprocess.run(["/usr/sbin/slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
        host = node.split()[0].split("=", 1)[1]
        gres = ""
        devices = []
        for k in range(2):  # fake GPUs: gres.conf wants character devices
            dev = r / f"gpu{k}"
            try:
                os.mknod(dev, 0o600 | 0o020000, os.makedev(1, 3))
                devices.append(dev)
            except OSError:
                break
        if len(devices) == 2:
            (r / "gres.conf").write_text("".join(f"Name=gpu File={d}\n" for d in devices))
            gres = " Gres=gpu:2"
        self.has_gpus = bool(gres)
        lines = [
            "ClusterName=cspinetest",
            f"SlurmctldHost={host}(127.0.0.1)",
            "AuthType=auth/none", "CredType=cred/none",
            "SlurmUser=root", "SlurmdUser=root",
            f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
            f"StateSaveLocation={r / 'state'}", f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}", f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'slurmctld.log'}", f"SlurmdLogFile={r / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/filetxt", f"JobCompLoc={r / 'jobcomp.txt'}",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
            "SchedulerParameters=batch_sched_delay=0", "DependencyParameters=kill_invalid_depend",
            "MailProg=/bin/true", "ReturnToService=2", "KillWait=5", "MinJobAge=300", "MpiDefault=none",
            "SwitchType=switch/none",
            *(["GresTypes=gpu"] if gres else []),
            f"{node} NodeAddr=127.0.0.1 State=UNKNOWN{gres}",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        self.run("/usr/sbin/slurmctld", "-f", self.conf)
        self.pids["slurmctld"] = self._pid("slurmctld.pid")
        self.run("/usr/sbin/slurmd", "-f", self.conf)
        self.pids["slurmd"] = self._pid("slurmd.pid")
        # Our own controller answers (not another cluster's on the same port), and the node is idle.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cfg = self.run("scontrol", "show", "config", check=False).stdout
            state = self.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip()
            if str(r / "state") in cfg and state == "idle":
                return self
            time.sleep(0.1)
        raise RuntimeError("the test cluster did not come up:\n" + self.log_tail())

    def _pid(self, name, timeout=10):
        p = self.root / name
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if p.exists() and p.read_text().strip().isdigit():
                return int(p.read_text().strip())
            time.sleep(0.05)
        raise RuntimeError(f"{name} was not written:\n" + self.log_tail())

    def stop(self):
        # Jobs first, while slurmctld is up: killing the daemons leaves running jobs behind.
        if "slurmctld" in self.pids:
            r = self.run("squeue", "-h", "-o", "%A", check=False)
            ids = sorted(set(r.stdout.split()))
            if ids:
                self.run("scancel", *ids, check=False)
                try:
                    self.wait_done(ids, timeout=30)
                except TimeoutError:
                    pass
        for name in ("slurmd", "slurmctld"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        # A slurmstepd (or job process) of this cluster left behind, found by its environment, never by name.
        mine = f"SLURM_CONF={self.conf}".encode()
        for d in Path("/proc").iterdir():
            if not d.name.isdigit() or int(d.name) == os.getpid():
                continue
            try:
                if mine in (d / "environ").read_bytes().split(b"\0"):
                    os.kill(int(d.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of a daemon we did not reap counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
