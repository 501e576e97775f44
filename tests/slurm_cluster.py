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

:meth:`SlurmCluster.stop` cancels every job, stops the three daemons it started, by their
pid, then ends any process still running with this cluster's ``SLURM_CONF`` in its
environment (a job's processes that outlived it), and removes the folder. It runs however
the tests end: normally, on an exception, at interpreter exit (``atexit``) and on SIGTERM
(a handler installed while the cluster runs). If this process is killed outright (SIGKILL),
the daemons get SIGTERM from the kernel (``PR_SET_PDEATHSIG``) and stop themselves (checked
by hand), but a job still running then (its ``slurmstepd`` and processes) and the folder are
left behind.

:func:`watchdog` bounds a test's time: past its limit it raises :class:`TestTimedOut` in
the main thread (whatever it was waiting for), and if that does not end the wait, it stops
every cluster and exits the process, so a wedged test can never hang CI.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import faulthandler
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")

#: Clusters started and not yet stopped (the watchdog and atexit stop them).
_RUNNING: list[SlurmCluster] = []

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """preexec_fn: SIGTERM this daemon when the process that started it dies."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class TestTimedOut(Exception):  # noqa: N818  (reads as what happened in pytest's report)
    """A test ran past its :func:`watchdog` limit."""


@contextlib.contextmanager
def watchdog(seconds: float, what: str = "test", grace: float = 30.0):
    """Raise :class:`TestTimedOut` in the main thread after ``seconds``.

    The exception is delivered between two bytecodes of the main thread, so any Python-level
    wait (polling loops, ``as_completed``, ``subprocess.run(timeout=...)``) ends at once. If
    the main thread is still inside the block ``grace`` seconds later (stuck in a C call),
    every thread's traceback goes to stderr, every running cluster is stopped and the
    process exits with code 3.
    """
    main = threading.main_thread().ident
    done = threading.Event()
    exc = type("TestTimedOut", (TestTimedOut,),
               {"__init__": lambda self: Exception.__init__(
                   self, f"{what} did not finish within {seconds:.0f} s (watchdog)")})

    def fire():
        if done.wait(seconds):
            return
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(main), ctypes.py_object(exc))
        if done.wait(grace):
            return
        sys.stderr.write(f"\n{what} is stuck {grace:.0f} s after its time limit; stopping the "
                         "SLURM daemons and exiting\n")
        faulthandler.dump_traceback(all_threads=True)
        for cluster in list(_RUNNING):
            cluster.stop()
        os._exit(3)

    thread = threading.Thread(target=fire, name="watchdog", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()


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
        self._popen: dict[str, subprocess.Popen] = {}
        self._old_env: dict[str, str | None] = {}
        self._old_sigterm = None

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
        _RUNNING.append(self)
        self._catch_sigterm()
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

    def _catch_sigterm(self) -> None:
        """Stop the cluster on SIGTERM, then let the previous handler act."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum, frame):
            self.stop()
            if callable(previous):
                previous(signum, frame)
            else:
                signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)

        self._old_sigterm = previous
        signal.signal(signal.SIGTERM, on_sigterm)

    def _set_env(self, name: str, value: str) -> None:
        self._old_env.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def _daemon(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.stdout", "wb")  # noqa: SIM115
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_die_with_parent,
                                env={**os.environ, "SLURM_CONF": str(self.conf)})
        log.close()
        self._popen[name] = proc

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            for name, proc in self._popen.items():
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
        """Cancel every job, stop the daemons this object started, end what is left of the
        jobs' processes, remove the folder. Safe to call twice, from any thread."""
        popen = self._popen
        ctld = popen.get("slurmctld")
        if ctld is not None and ctld.poll() is None:
            with contextlib.suppress(Exception):
                subprocess.run(["scancel", "--full", "--user", "root"], capture_output=True,
                               timeout=20, check=False)
                self.wait_idle(timeout=20)         # let slurmd end the jobs' processes
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
        popen.clear()
        if self.conf is not None:
            for pid in self.leftovers():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for name, value in self._old_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._old_env.clear()
        if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        if self in _RUNNING:
            _RUNNING.remove(self)

    def leftovers(self) -> list[int]:
        """Pids of processes (other than this one) with this cluster's SLURM_CONF set."""
        mark = f"SLURM_CONF={self.conf}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                env = (entry / "environ").read_bytes()
            except OSError:
                continue
            if mark in env.split(b"\0"):
                found.append(int(entry.name))
        return found

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@atexit.register
def _stop_all() -> None:
    for cluster in list(_RUNNING):
        cluster.stop()
