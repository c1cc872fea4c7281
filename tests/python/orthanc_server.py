"""A real PACS for the tests: Orthanc (Debian package orthanc) started as a process of the test on 127.0.0.1, with a
temporary configuration and storage and free ports, stopped by its process id. REST helpers through urllib."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    AET = "ORTHANC"

    def __init__(self, workdir: Path, client_aet="CSPINE", allow_store=True):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.http_port, self.dicom_port = free_port(), free_port()
        while self.dicom_port == self.http_port:
            self.dicom_port = free_port()
        self.client_aet = client_aet
        config = {
            "Name": "cspine-test",
            "StorageDirectory": str(self.dir / "storage"),
            "IndexDirectory": str(self.dir / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.AET,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpServerEnabled": True,
            "DicomServerEnabled": True,
            "Plugins": [],
            "StorageCompression": False,
            "DicomCheckCalledAet": True,
            # Only the declared modality may store, so that a test can refuse (and later allow) the results.
            "DicomAlwaysAllowStore": False,
            "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowGet": False,
            "DicomModalities": {"cspine": self.modality(allow_store)},
            "ConcurrentJobs": 1,
        }
        self.config = self.dir / "orthanc.json"
        self.config.write_text(json.dumps(config, indent=1))
        self.log = open(self.dir / "orthanc.log", "wb")
        self.proc = subprocess.Popen([ORTHANC, str(self.config)], stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=self.dir, start_new_session=True)
        deadline = time.time() + 60
        while True:
            try:
                self.get("/system")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise RuntimeError("Orthanc did not start:\n" + (self.dir / "orthanc.log").read_text(errors="replace"))
                time.sleep(0.2)

    def modality(self, allow_store):
        return {"AET": self.client_aet, "Host": "127.0.0.1", "Port": 1, "AllowEcho": True, "AllowFind": True,
                "AllowGet": True, "AllowMove": False, "AllowStore": allow_store}

    def allow_store(self, allow):
        self.request("PUT", "/modalities/cspine", self.modality(allow))

    def request(self, method, path, body=None, content_type="application/json"):
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method,
                                     headers={"Content-Type": content_type} if data is not None else {})
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
        return json.loads(raw) if raw and raw[:1] in (b"{", b"[") else raw

    def get(self, path):
        return self.request("GET", path)

    def upload(self, files):
        for f in files:
            self.request("POST", "/instances", Path(f).read_bytes(), "application/dicom")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)  # by its process id, never by name
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
