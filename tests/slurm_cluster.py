"""A real single-node Slurm cluster for tests: munged, slurmctld and slurmd from Debian's
packages, started in a network namespace of their own (only its loopback is up, so no
daemon is reachable from outside, whatever address it binds) under a temporary folder,
and stopped by PID.

Needs root (network namespaces, munged/slurmd as root) and Debian's slurm-wlm and munge.
Facts this works around: the job step strips SLURM_CONF, so the config is also written to
/etc/slurm/slurm.conf (the previous file, if any, is put back at the end); there is no
accounting database, so job states come from squeue/scontrol (MinJobAge keeps finished
jobs listed for an hour) and from the job completion log.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
DAEMONS = ("munged", "slurmctld", "slurmd")
CGROUP_CONF = "CgroupPlugin=cgroup/v1\nConstrainCores=no\nConstrainRAMSpace=no\nConstrainDevices=no\n"


def missing_requirements() -> str | None:
    """Why a cluster cannot be started here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespace, munged and slurmd)"
    missing = [c for c in (*DAEMONS, "sbatch", "squeue", "scontrol", "ip") if shutil.which(c) is None]
    if missing:
        return f"not installed: {', '.join(missing)} (Debian packages slurm-wlm, munge, iproute2)"
    return None


class SlurmCluster:
    """One node ``crnode`` (8 CPUs, 64 GB declared) and one partition ``debug``."""

    def __init__(self, root: Path, cpus: int = 8, memory_mb: int = 64000):
        self.root = Path(root)
        self.cpus, self.memory_mb = cpus, memory_mb
        self.netns = f"crslurm{os.getpid()}"
        self.conf = self.root / "slurm.conf"
        self.jobcomp = self.root / "jobcomp.txt"
        self.procs: dict[str, subprocess.Popen] = {}
        self._outputs: list = []
        self._saved_system_conf: bytes | None = None
        self._wrote_system_conf = False

    # ---- life cycle -------------------------------------------------------------------
    def start(self, timeout: float = 60) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        for sub in ("state", "spool", "munge"):
            (self.root / sub).mkdir(exist_ok=True)
            os.chmod(self.root / sub, 0o700)
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        self.run(["ip", "link", "set", "lo", "up"], check=True)
        # A private address on a veth pair whose both ends stay inside the namespace (so it
        # leads nowhere): getaddrinfo's AI_ADDRCONFIG, which slurmd uses to bind, finds no
        # address in a loopback-only namespace.
        self.run(["ip", "link", "add", "crv0", "type", "veth", "peer", "name", "crv1"], check=True)
        self.run(["ip", "addr", "add", "10.254.254.1/32", "dev", "crv0"], check=True)
        for dev in ("crv0", "crv1"):
            self.run(["ip", "link", "set", dev, "up"], check=True)
        self._start_munge()
        self._write_conf()
        self._spawn("slurmctld", ["slurmctld", "-D", "-c", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-N", "crnode", "-f", str(self.conf)])
        self._wait_for_idle_node(timeout)

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)
        self.procs.clear()
        for out in self._outputs:
            out.close()
        self._outputs.clear()
        self._kill_leftover_steps()
        if self._wrote_system_conf:
            if self._saved_system_conf is None:
                SYSTEM_CONF.unlink(missing_ok=True)
            else:
                SYSTEM_CONF.write_bytes(self._saved_system_conf)
            self._wrote_system_conf = False
        subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True)

    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- use --------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def netns_cmd(self, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *cmd]

    def run(self, cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 60)
        return subprocess.run(self.netns_cmd(cmd), env=kwargs.pop("env", self.env), **kwargs)

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld still knows (finished ones included), as scontrol's fields."""
        out = self.run(["scontrol", "show", "job", "--oneliner"], check=True).stdout
        jobs = []
        for line in out.splitlines():
            if not line.strip() or line.startswith("No jobs"):
                continue
            jobs.append(dict(re.findall(r"(\w+)=(\S*)", line)))
        return jobs

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ---- internals --------------------------------------------------------------------
    def _spawn(self, name: str, cmd: list[str]) -> None:
        out = open(self.root / f"{name}.out", "wb")
        self._outputs.append(out)
        self.procs[name] = subprocess.Popen(self.netns_cmd(cmd), stdout=out, stderr=subprocess.STDOUT,
                                            env=self.env, start_new_session=True)

    def _start_munge(self) -> None:
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self.munge_socket = self.root / "munge" / "munge.socket"
        self._spawn("munged", ["munged", "--foreground", "--force", f"--key-file={key}",
                               f"--socket={self.munge_socket}", f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                               f"--log-file={self.root / 'munged.log'}",
                               f"--seed-file={self.root / 'munge' / 'munged.seed'}"])
        deadline = time.monotonic() + 20
        while not self.munge_socket.exists():
            if self.procs["munged"].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"munged did not start: {self.log('munged')}")
            time.sleep(0.1)

    def _write_conf(self) -> None:
        host = socket.gethostname().split(".")[0]
        r = self.root
        text = f"""# written by tests/slurm_cluster.py
ClusterName=crtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={r / 'slurmctld.pid'}
SlurmdPidFile={r / 'slurmd.pid'}
SlurmctldLogFile={r / 'slurmctld.log'}
SlurmdLogFile={r / 'slurmd.log'}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
ReturnToService=2
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={self.jobcomp}
MinJobAge=3600
NodeName=crnode NodeAddr=127.0.0.1 NodeHostname={host} CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN
PartitionName=debug Nodes=crnode Default=YES MaxTime=INFINITE State=UP
"""
        self.conf.write_text(text)
        # slurmd always sets up a cgroup plugin; autodetection fails on this kind of machine
        # (/sys/fs/cgroup is a tmpfs of v1 hierarchies), so name it. Nothing is constrained.
        (self.root / "cgroup.conf").write_text(CGROUP_CONF)
        if SYSTEM_CONF.exists():
            self._saved_system_conf = SYSTEM_CONF.read_bytes()
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.write_text(text)
        self._wrote_system_conf = True

    def _wait_for_idle_node(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}\n"
                                       f"{(self.root / f'{name}.out').read_text(errors='replace')[-3000:]}")
            state = self.run(["sinfo", "--noheader", "--Node", "--format=%t"]).stdout.strip()
            if state.startswith("idle"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"node not idle after {timeout} s (state {state!r}):\n{self.log('slurmctld')[-3000:]}")

    def _kill_leftover_steps(self) -> None:
        """Whatever still runs in the namespace (slurmstepd and job processes outlive slurmd
        when a job is cut off) is ours: end it."""
        proc = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True)
        for pid in proc.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
