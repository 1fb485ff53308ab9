"""Built-in plugin: the environment of a run (python, platform, host, command line, git, packages).

Fast and side-effect free on the caller's thread: git commit and branch are read from the .git
directory files, package versions from the names of installed distributions (no imports), and the
slow facts, whether the work tree is dirty, which files are untracked and the uncommitted diff,
are computed by time-boxed ``git status`` and ``git diff HEAD`` on a background thread and added to
the run (system record, artifact ``git.diff``) when known. ``finish()`` does not wait for them;
interpreter exit does, bounded. Runs that start while a probe of the same work tree is running take
its answer (one git process at a time per work tree, however many short fits a loop records).
"""

from __future__ import annotations

import os
import platform
import re
import select
import signal
import socket
import sys
import threading
import time
from typing import Any

from ..plugin import hookimpl
from ..store import redact_uri

KEY_PACKAGES = ("torch", "lightning", "pytorch-lightning", "keras", "scikit-learn", "xgboost", "xgboost-cpu",
                "numpy", "pandas", "jax", "tensorflow", "mlflow", "trackhooks")
GIT_TIMEOUT_S = 3.0
DIFF_LIMIT_BYTES = 1 << 20
UNTRACKED_LIMIT = 1000  # names listed in the system record; the count is always exact
DIFF_MARKER = b"\n# trackhooks: the diff is longer than 1 MB; the rest was not recorded\n"
# a flag is secret when it is made of word characters, dots and dashes only (after its leading
# dash) and names one of these, in any case: --password, --db-pass, --api_key, --HF_TOKEN, ...
_SECRET_WORDS = ("pass", "token", "secret", "apikey", "api-key", "api_key", "accesskey", "access-key",
                 "access_key", "auth", "credential", "privatekey", "private-key", "private_key")
_URL_PASSWORD = r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]+):(?P<pw>[^@/\s]+)@"
REDACTED = "***"


def _secret_flag(flag: str) -> bool:
    # string tests, not a regular expression: compiling one (re caches it, but once per process) cost
    # ~0.5 ms of the writer's first drain in every script called with a flag
    flag = flag[:-1] if flag.endswith("\n") else flag  # as a regex's "$" would
    if not flag.startswith("-") or not all(c.isalnum() or c in "_.-" for c in flag):
        return False
    low = flag.lower()
    return any(w in low for w in _SECRET_WORDS)


_packages_cache: dict[str, str] | None = None


def redact_argv(argv: list[str]) -> list[str]:
    """Hide the values of flags that look like secrets (--password x, --api-key=x) and URL passwords."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        arg = str(arg)
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        flag, eq, _value = arg.partition("=")
        if _secret_flag(flag):
            if eq:
                out.append(f"{flag}={REDACTED}")
            else:
                out.append(arg)
                hide_next = True
            continue
        if "@" in arg:
            arg = re.sub(_URL_PASSWORD, lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", arg, flags=re.IGNORECASE)
        out.append(redact_uri(arg))
    return out


def installed_versions() -> dict[str, str]:
    """Versions of key packages, read from dist-info directory names (nothing is imported)."""
    global _packages_cache
    if _packages_cache is not None:
        return dict(_packages_cache)
    from ..plugins import installed_distributions  # the listing the entry-point cache keeps

    wanted = {p.replace("-", "_").lower(): p for p in KEY_PACKAGES}
    found: dict[str, str] = {}
    for _entry, names in installed_distributions():
        for name in names:
            if not name.endswith(".dist-info"):
                continue
            dist, _, version = name[: -len(".dist-info")].partition("-")
            key = dist.replace("-", "_").replace(".", "_").lower()
            if key in wanted and wanted[key] not in found:
                found[wanted[key]] = version
    _packages_cache = found
    return dict(found)


def os_name() -> str:
    """``platform.platform(terse=True)`` without its ``uname -p`` subprocess on Linux (a fork of the
    whole training process on the writer thread, for a field that is blank on Linux anyway)."""
    if not sys.platform.startswith("linux"):
        return platform.platform(terse=True)
    u = os.uname()
    lib, version = platform.libc_ver()
    text = "-".join(p.strip() for p in (u.sysname, u.release, u.machine, "with", lib + version) if p)
    text = text.replace(" ", "_")
    for ch in '/\\:;"()':
        text = text.replace(ch, "-")  # platform's own clean-up, for a string that is also a file name
    text = text.replace("unknown", "")
    while "--" in text:
        text = text.replace("--", "-")
    return text.rstrip("-")


def _find_git_dir(start: str) -> str | None:
    path = os.path.abspath(start)
    while True:
        candidate = os.path.join(path, ".git")
        if os.path.isdir(candidate):
            return candidate
        if os.path.isfile(candidate):  # worktrees and submodules: "gitdir: <path>"
            try:
                with open(candidate) as f:
                    line = f.read().strip()
                if line.startswith("gitdir:"):
                    return os.path.join(path, line[len("gitdir:"):].strip())
            except OSError:
                return None
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def git_info(cwd: str | None = None) -> dict[str, Any]:
    git_dir = _find_git_dir(cwd or os.getcwd())
    if git_dir is None:
        return {}
    info: dict[str, Any] = {"git.root": os.path.dirname(os.path.abspath(git_dir))}
    try:
        with open(os.path.join(git_dir, "HEAD")) as f:
            head = f.read().strip()
    except OSError:
        return info
    if head.startswith("ref:"):
        ref = head[4:].strip()
        info["git.branch"] = ref.rsplit("refs/heads/", 1)[-1]
        commit = None
        common = git_dir
        commondir_file = os.path.join(git_dir, "commondir")
        if os.path.isfile(commondir_file):
            with open(commondir_file) as f:
                common = os.path.join(git_dir, f.read().strip())
        for base in (git_dir, common):
            try:
                with open(os.path.join(base, ref)) as f:
                    commit = f.read().strip()
                break
            except OSError:
                continue
        if commit is None:
            try:
                with open(os.path.join(common, "packed-refs")) as f:
                    for line in f:
                        parts = line.strip().split(" ")
                        if len(parts) == 2 and parts[1] == ref:
                            commit = parts[0]
                            break
            except OSError:
                pass
        if commit:
            info["git.commit"] = commit
    else:
        info["git.commit"] = head
        info["git.branch"] = None
    return info


def _inheritable_fds() -> list[int]:
    """Descriptors above 2 that a child would inherit. Python opens its own non-inheritable (PEP 446);
    these are a C library's (or a user's ``set_inheritable``): a pipe whose reader waits for its
    writers to close, a lock held by ``flock``, must not be held open by git as well."""
    try:
        names = os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd")
    except OSError:
        return []
    fds = []
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    fds.append(fd)
            except OSError:  # the listing's own descriptor, closed since
                pass
    return fds


def _git(root: str, args: list[str], timeout: float, limit: int | None = None) -> tuple[int | None, bytes, bool]:
    """``git -C root <args>``: (exit code, or None when git is missing or was killed at ``timeout``;
    its output, at most ``limit`` + 1 bytes when a limit is given; whether the output was cut).

    Started with ``os.posix_spawnp`` rather than ``subprocess``: the probe runs on the writer beside
    a short fit's end, and ``subprocess.run`` took ~1.3 ms per command from the training thread of
    the same process (Popen's Python set-up, and CPython 3.11 forks with the GIL held), and
    ``posix_spawnp`` a cost that could not be told from noise (benchmarks/README.md, "Twelfth
    pass"). Its stdin and stderr are /dev/null; like ``subprocess``'s ``close_fds``, it closes every
    other descriptor the process would let it inherit. Where there is no ``posix_spawnp``
    (Windows), ``subprocess`` it is."""
    if not hasattr(os, "posix_spawnp"):
        return _git_subprocess(root, args, timeout, limit)
    r, w = os.pipe()
    null = os.open(os.devnull, os.O_RDWR)
    actions = [(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, null, 2)]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds()]
    try:
        pid = os.posix_spawnp("git", ["git", "-C", root, *args], os.environ, file_actions=actions)
    except OSError:
        os.close(r)
        return None, b"", False
    finally:
        os.close(w)
        os.close(null)
    chunks: list[bytes] = []
    n, truncated, killed = 0, False, False
    deadline = time.monotonic() + timeout
    poller = select.poll()  # not select(): it cannot wait on a descriptor numbered 1024 or more
    poller.register(r, select.POLLIN)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                killed = True
                break
            data = os.read(r, 1 << 16)
            if not data:
                break
            chunks.append(data)
            n += len(data)
            if limit is not None and n > limit:
                truncated = True
                break
    finally:
        os.close(r)
        if killed or truncated:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status = os.waitpid(pid, 0)
    out = b"".join(chunks)
    return (None if killed else os.waitstatus_to_exitcode(status)), out, truncated


def _git_subprocess(root: str, args: list[str], timeout: float, limit: int | None) -> tuple[int | None, bytes, bool]:
    """``_git`` without ``posix_spawnp``: the same answers, at most ``limit`` + 1 bytes read. It reads
    to the end of git's output, so a process git started that still holds the pipe is waited for."""
    import subprocess

    try:
        proc = subprocess.Popen(["git", "-C", root, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
    except OSError:
        return None, b"", False
    killed: list[bool] = []
    timer = threading.Timer(timeout, lambda: (killed.append(True), proc.kill()))
    timer.start()
    try:
        data = proc.stdout.read(-1 if limit is None else limit + 1)
        truncated = limit is not None and len(data) > limit
        if truncated:
            proc.kill()
        proc.stdout.close()
        rc = proc.wait()
    finally:
        timer.cancel()
    return (None if killed else rc), data, truncated


def git_dirty(root: str) -> bool | None:
    """True/False from ``git status``, or None if git is missing, fails or takes too long."""
    rc, out, _ = _git(root, ["status", "--porcelain", "--untracked-files=no"], GIT_TIMEOUT_S)
    if rc != 0:
        return None
    return bool(out.strip())


def git_status(root: str) -> tuple[bool, list[str]] | None:
    """(dirty, untracked file names) from one ``git status``, or None if git fails or is slow."""
    rc, out, _ = _git(root, ["status", "--porcelain", "-z", "--untracked-files=normal"], GIT_TIMEOUT_S)
    if rc != 0:
        return None
    dirty, untracked = False, []
    entries = out.split(b"\0")
    i = 0
    while i < len(entries):
        e = entries[i]
        i += 1
        if len(e) < 4:
            continue
        code, path = e[:2], e[3:].decode("utf-8", "surrogateescape")
        if code == b"??":
            untracked.append(path)
        elif code != b"!!":
            dirty = True
            if code[:1] in (b"R", b"C"):
                i += 1  # renames and copies carry the old path as the next entry
    return dirty, untracked


def diff_wanted() -> bool:
    """``$TRACKHOOKS_GIT_DIFF=0`` (or false/no/off) records whether the tree is dirty and the untracked
    names, but not the diff itself: a work tree whose uncommitted changes must not leave the machine."""
    return os.environ.get("TRACKHOOKS_GIT_DIFF", "1").strip().lower() not in ("0", "false", "no", "off")


def git_diff(root: str, limit: int = DIFF_LIMIT_BYTES) -> bytes | None:
    """``git diff HEAD --binary`` as bytes (any encoding), cut at ``limit`` bytes with a marker line.

    Reads at most ``limit`` + 1 bytes: a huge diff (a changed data file) is not read into memory.
    """
    rc, data, truncated = _git(root, ["-c", "core.quotepath=off", "diff", "HEAD", "--binary", "--no-color",
                                      "--no-ext-diff"], GIT_TIMEOUT_S * 3, limit)
    if truncated:
        cut = data.rfind(b"\n", 0, limit) + 1 or limit
        return data[:cut] + DIFF_MARKER
    if rc != 0:
        return None
    return data


def allowed_env() -> dict[str, str]:
    """Environment variables named in $TRACKHOOKS_CAPTURE_ENV (comma-separated); nothing else."""
    names = [n.strip() for n in os.environ.get("TRACKHOOKS_CAPTURE_ENV", "").split(",") if n.strip()]
    # a captured variable may hold a store URI or a secret: URI passwords are hidden, and so are
    # variables named like secrets (PGPASSWORD, *_TOKEN, ...)
    return {n: REDACTED if _secret_flag("--" + n) else redact_uri(os.environ[n])
            for n in names if n in os.environ}


class _Probe:
    """One ``git status`` (and ``git diff``) of a work tree, and the runs that take its answer."""

    def __init__(self, root: str):
        self.root = root
        self.runs: list[Any] = []
        self.done = False
        self.thread = threading.Thread(target=self._run, name="trackhooks-git", daemon=True)

    def _run(self) -> None:
        facts: dict[str, Any] | None = None
        diff = b""
        try:
            status = git_status(self.root)
            if status is not None:
                flag, untracked = status
                facts = {"git.dirty": flag, "git.untracked_count": len(untracked)}
                if untracked:
                    facts["git.untracked"] = untracked[:UNTRACKED_LIMIT]
                if flag and diff_wanted():
                    diff = git_diff(self.root)
                    if diff:
                        facts["git.diff_bytes"] = len(diff)
        finally:
            with _probes_lock:
                self.done = True
                if _probes.get(self.root) is self:
                    del _probes[self.root]
                runs = list(self.runs)
        if facts is None:
            return
        for run in runs:
            try:
                if diff and hasattr(run, "_add_artifact_bytes"):
                    run._add_artifact_bytes("git.diff", diff)
                run._update_system(facts)
            except Exception:
                pass


# root -> the probe running for it: runs that start while one runs (a loop of short fits, whose
# finish() no longer waits for git) take its answer instead of starting a git process each
_probes: dict[str, _Probe] = {}
_probes_lock = threading.Lock()


def _probe_for(root: str, run: Any) -> threading.Thread:
    """The thread whose answer ``run`` gets: the probe of ``root`` running now, or a new one."""
    with _probes_lock:
        probe = _probes.get(root)
        start = probe is None or probe.done
        if start:
            probe = _probes[root] = _Probe(root)
        probe.runs.append(run)
    if start:
        probe.thread.start()
    return probe.thread


def _after_fork_in_child() -> None:
    _probes.clear()  # the parent's probe threads do not exist here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@hookimpl
def trackhooks_collect_system_info(run) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": sys.platform,
        "os": os_name(),
        "machine": platform.machine(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "cpu_count": os.cpu_count(),
        "cwd": os.getcwd(),
        "argv": redact_argv(list(sys.argv)),
        "executable": sys.executable,
        "packages": installed_versions(),
    }
    env = allowed_env()
    if env:
        info["env"] = env
    git = git_info()
    info.update(git)
    root = git.get("git.root")
    if root and hasattr(run, "_update_system"):
        thread = _probe_for(root, run)
        pending = getattr(run, "_pending_info", None)
        if isinstance(pending, list):
            pending.append(thread)
    return info
