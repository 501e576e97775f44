"""A one-node SLURM cluster for the tests: munged, slurmctld and slurmd on this host.

Debian's ``slurm-wlm`` and ``munge`` packages (``apt-get install slurm-wlm munge``) are all it
needs, run as root. Everything lives in one temporary folder: the configuration
(``slurm.conf``), a private munge key and socket, the daemons' state, spool, pid and log
files, so the cluster neither uses nor disturbs a SLURM or munge already on the machine.
The node is this host with its real CPUs and memory (``slurmd -C``); process tracking by
``/proc`` (``proctrack/linuxproc``), no task binding (``task/none``), cores and memory
consumable (``select/cons_tres``); one partition, ``debug``. Clients find it through
``SLURM_CONF``, which :meth:`SlurmCluster.start` sets in this process (so ``sinfo``,
``sbatch`` and jobs submitted from here, which inherit the environment, use it).

:meth:`SlurmCluster.stop` stops the three daemons it started, by their pid, and removes the
folder.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


class SlurmUnavailable(RuntimeError):
    """The cluster cannot be started here (the message says why)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_line() -> tuple[str, dict[str, str]]:
    """This host as slurmd sees it: its name and CPUs/Sockets/.../RealMemory."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    first = out.splitlines()[0]
    fields = dict(re.findall(r"(\w+)=(\S+)", first))
    return fields.pop("NodeName"), fields


class SlurmCluster:
    """A private one-node SLURM (``with SlurmCluster() as c: ...``)."""

    def __init__(self, startup_timeout: float = 30.0):
        self.startup_timeout = startup_timeout
        self.root: Path | None = None
        self.conf: Path | None = None
        self.node = None
        self.cpus = 0
        self._procs: dict[str, int] = {}
        self._old_env: dict[str, str | None] = {}

    # ---------------------------------------------------------------- start
    def start(self) -> SlurmCluster:
        missing = [d for d in (*DAEMONS, "sinfo", "sbatch", "scancel", "squeue")
                   if shutil.which(d) is None]
        if missing:
            raise SlurmUnavailable(f"{', '.join(missing)} not installed "
                                   "(apt-get install slurm-wlm munge)")
        if os.geteuid() != 0:
            raise SlurmUnavailable("starting slurmctld/slurmd needs root")
        self.root = Path(tempfile.mkdtemp(prefix="slurm-test-"))
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        root = self.root
        for d in ("munge", "state", "spool", "log", "jobs"):
            (root / d).mkdir(mode=0o700)
        key = root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        sock = root / "munge" / "munge.socket"
        self.node, fields = _node_line()
        self.cpus = int(fields["CPUs"])
        node_spec = " ".join(f"{k}={fields[k]}" for k in (
            "CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore",
            "RealMemory") if k in fields)
        self.conf = root / "slurm.conf"
        self.conf.write_text(f"""\
ClusterName=skytest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
SchedulerType=sched/backfill
MinJobAge=600
KillWait=5
InactiveLimit=0
NodeName={self.node} NodeAddr=127.0.0.1 {node_spec} State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")
        self._set_env("SLURM_CONF", str(self.conf))
        self._daemon("munged", ["munged", "--foreground", "--force", f"--socket={sock}",
                                f"--key-file={key}", f"--pid-file={root}/munge/munged.pid",
                                f"--seed-file={root}/munge/munged.seed",
                                f"--log-file={root}/log/munged.log"])
        self._wait(lambda: sock.exists(), "munged did not create its socket")
        self._daemon("slurmctld", ["slurmctld", "-D", "-c", "-i", "-f", str(self.conf)])
        self._daemon("slurmd", ["slurmd", "-D", "-f", str(self.conf), "-N", self.node])
        self._wait(self._idle, "the node did not come up idle in sinfo")

    def _set_env(self, name: str, value: str) -> None:
        self._old_env.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def _daemon(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.stdout", "wb")  # noqa: SIM115
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "SLURM_CONF": str(self.conf)})
        log.close()
        self._procs[name] = proc.pid
        self._popen = getattr(self, "_popen", {})
        self._popen[name] = proc

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            for name, proc in getattr(self, "_popen", {}).items():
                if proc.poll() is not None:
                    raise SlurmUnavailable(f"{name} exited ({proc.returncode}): "
                                           f"{self._tail(name)}")
            if ready():
                return
            time.sleep(0.2)
        raise SlurmUnavailable(f"{what} within {self.startup_timeout:.0f} s: "
                               f"{self._tail('slurmd')} {self._tail('slurmctld')}")

    def _tail(self, name: str) -> str:
        for f in (self.root / "log" / f"{name}.log", self.root / "log" / f"{name}.stdout"):
            if f.exists() and f.stat().st_size:
                return " | ".join(f.read_text(errors="replace").strip().splitlines()[-3:])
        return "(no log)"

    def _idle(self) -> bool:
        res = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True,
                             text=True, timeout=10)
        return res.returncode == 0 and res.stdout.split() == [self.node, "idle"]

    # ---------------------------------------------------------------- use
    def sbatch(self, script: str, *args: str, cwd=None) -> str:
        """Submit ``script`` (its text); return the job id."""
        path = Path(tempfile.mkstemp(suffix=".sh", dir=self.root / "jobs")[1])
        path.write_text(script)
        res = subprocess.run(["sbatch", "--parsable", *args, str(path)], capture_output=True,
                             text=True, timeout=30, cwd=cwd, check=True)
        return res.stdout.strip().split(";")[0]

    def scancel(self, job: str) -> None:
        """Cancel ``job`` (all its steps and processes)."""
        subprocess.run(["scancel", job], capture_output=True, text=True, timeout=30, check=True)

    def jobs(self) -> list[str]:
        """Ids of the jobs pending or running."""
        res = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                             timeout=10, check=True)
        return res.stdout.split()

    def job_state(self, job: str) -> str:
        res = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True,
                             timeout=10, check=True)
        return re.search(r"JobState=(\S+)", res.stdout).group(1)

    def wait_job(self, job: str, timeout: float) -> str:
        """Wait until ``job`` has ended; return its final state (COMPLETED, FAILED, ...)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.job_state(job)
            if state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
                return state
            time.sleep(0.5)
        raise TimeoutError(f"job {job} still {state} after {timeout:.0f} s")

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait until no job is left and the node is idle again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.jobs() and self._idle():
                return
            time.sleep(0.5)
        raise TimeoutError(f"jobs {self.jobs()} still there after {timeout:.0f} s")

    # ---------------------------------------------------------------- stop
    def stop(self) -> None:
        """Cancel leftover jobs, stop the daemons this object started, remove the folder."""
        popen = getattr(self, "_popen", {})
        if "slurmctld" in popen and popen["slurmctld"].poll() is None:
            subprocess.run(["scancel", "--full", "--user", "root"], capture_output=True,
                           timeout=30, check=False)
        for name in reversed(DAEMONS):        # slurmd, slurmctld, then munged
            proc = popen.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._procs.clear()
        popen.clear()
        for name, value in self._old_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._old_env.clear()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
