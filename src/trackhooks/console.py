"""Console capture: what the process prints while a run is active also goes to the run's ``console.log``.

Two levels (see docs/console-and-system.md for why the default is the Python level):

- ``"python"`` (the default, ``capture_output=True``): ``sys.stdout`` and ``sys.stderr`` (and logging
  handlers that write to them) are replaced by a text stream with the same encoding and buffering
  whose binary layer writes to the original binary buffer first, then appends the bytes to the
  writer's buffer. A ``print`` costs what it did; each flush of the text layer (a line on a
  terminal, 8 KB into a file) costs one more method call and one append. ``isatty()``, colours
  and the file descriptors are untouched.
  A stream whose descriptor is a regular file (``python train.py > train.log``, a batch scheduler's
  output file) is not replaced at all: what reaches the file is read back from it (``_FileFollower``)
  by the writer every cycle and on the caller's thread at ``flush``/``finish``, so a ``print`` costs
  nothing more, and output of C extensions and subprocesses into the same file is kept too.
- ``"fd"``: file descriptors 1 and 2 are pointed at a pipe that one reader thread copies to the
  original destination and into the log, so output of C extensions and subprocesses is kept too.

One capture per process, shared by every run that asked for it (nested runs); finishing the last of
them restores everything. The writer thread turns the appended text into per-run ``ConsoleLog``
chunks (see ``ConsoleLog``): carriage-return progress bars collapsed, a size cap, then a marker.
"""

from __future__ import annotations

import io
import os
import select
import sys
import threading
import time

TYPE_CHECKING = False  # typing (and the re it loads) is not imported at run time: see benchmarks/README.md
if TYPE_CHECKING:
    from typing import Any

from .errors import InvalidOptionError, InvalidValueError, short_repr
from . import writer as _w

ENV = "TRACKHOOKS_CAPTURE_OUTPUT"
LIMIT_BYTES = int(float(os.environ.get("TRACKHOOKS_CONSOLE_LIMIT_MB", "10")) * 1024 * 1024)
PARTIAL_MAX = 64 * 1024  # a "line" without newline longer than this is stored as it is
MARKER = "\n[trackhooks: console output reached the {mb} MB limit of this run; the rest was not recorded]\n"
MODES = ("python", "fd")
FD_GATHER_S = 0.002  # "fd": how long the reader lets output gather in the pipe after it wakes
PIPE_BYTES = 1 << 20
READ_BYTES = 16 << 20  # a followed file is read back in pieces of at most this (one piece is not copied again)
FOLLOW_FILES = True  # False: a regular file gets a stand-in like any other stream (the tests of the stand-ins)
_WAKE_AT = _w.WAKE_AT


def parse_mode(value: Any, option: str = "capture_output") -> str | None:
    """``capture_output=`` -> "python", "fd" or None (off). None reads ``$TRACKHOOKS_CAPTURE_OUTPUT``."""
    if value is None:
        raw = os.environ.get(ENV)
        if raw is None:
            return "python"
        text = raw.strip().lower()
        if text in ("0", "off", "false", "no", "none", ""):
            return None
        if text in ("1", "on", "true", "yes"):
            return "python"
        if text in MODES:
            return text
        raise InvalidOptionError(f"${ENV}={raw!r}: expected on/off, 'python' or 'fd'")
    if value is True:
        return "python"
    if value is False:
        return None
    if isinstance(value, str):
        if value.strip().lower() in MODES:
            return value.strip().lower()
        raise InvalidOptionError(f"{option}={short_repr(value)}: expected True, False, 'python' or 'fd'")
    raise InvalidValueError(f"{option}={short_repr(value)}: expected True, False, 'python' or 'fd'")


# ---- writer side ----------------------------------------------------------------------------


def _encode(text: Any) -> bytes:
    if type(text) is bytes:
        return text
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    try:
        return str(text).encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # lone surrogates that are not escaped bytes
        return str(text).encode("utf-8", "backslashreplace")


def _collapse(block: bytes) -> bytes:
    """Keep the last state of each carriage-return-overwritten line ("10%\\r20%\\r100%\\n" -> "100%\\n")."""
    i = block.find(b"\r")
    if i < 0:
        return block
    # only the lines that hold a "\r" are visited: a progress bar among 100 000 log lines in one
    # cycle's output cost a Python-level pass over every line (on the writer, holding the GIL)
    out = []
    start = 0  # block[start:] is not copied out yet
    n = len(block)
    while i >= 0:
        ls = block.rfind(b"\n", start, i) + 1 or start  # the line around this "\r"
        le = block.find(b"\n", i)
        if le < 0:
            le = n
        body = block[ls:le].rstrip(b"\r")  # "\r\n" line ends and a bar's final "\r" overwrite nothing
        j = body.rfind(b"\r")
        out.append(block[start:ls])
        out.append(body[j + 1:] if j >= 0 else body)
        start = le
        i = block.find(b"\r", le)
    out.append(block[start:])
    return b"".join(out)


class ConsoleLog:
    """Writer-side log of one run. Complete lines go out as chunk ``seq`` and advance it; the
    unfinished last line goes out as chunk ``seq`` too, without advancing, so the next write
    replaces it (the sink keeps one row per (run, seq)): a progress bar overwriting itself for
    an hour is one row, and a SIGKILL still leaves its last committed state.

    What the finish has to do is kept small, since ``finish()`` waits for it: the bytes are held as
    the pieces they arrived in (one join for the artifact, none per cycle when a cycle brought one
    piece), and the artifact's sha256 is updated as complete lines are emitted, on the writer's
    cycles during the run, with ``hashlib`` (OpenSSL: milliseconds to load) imported when the run
    starts capturing."""

    __slots__ = ("run_id", "state", "seq", "tail", "new", "full", "sha", "total", "limit", "capped", "dirty",
                 "closing")

    def __init__(self, run_id: str, prefix: bytes = b"", limit: int = LIMIT_BYTES, seq: int = 0):
        import hashlib  # the write path loads it lazily (see benchmarks/README.md); here, not in a finish

        self.run_id = run_id
        self.state: Any = None  # the writer's RunState of the run
        self.seq = seq  # a resumed run continues after the chunks of its earlier session
        self.tail = b""  # the unfinished last line, stored (under seq) but not complete yet
        self.new: list[bytes] = []  # fed since the last emit
        self.full: list[bytes] = [prefix] if prefix else []  # everything emitted, for console.log
        self.sha = hashlib.sha256(prefix)
        self.total = 0
        self.limit = limit
        self.capped = False
        self.dirty = False
        self.closing = False

    def feed(self, data: bytes) -> None:
        if not self.capped:
            self.new.append(data)
            self.dirty = True

    def text(self) -> bytes:
        """Everything emitted so far (the console.log artifact at the finish)."""
        return b"".join(self.full)

    def emit(self) -> list[tuple[int, bytes]]:
        """Chunks to store now: [(seq, data)]; the unfinished line is final when ``closing``."""
        if not self.dirty:
            return []
        self.dirty = False
        new, self.new = self.new, []
        if self.tail:
            new.insert(0, self.tail)
        data = new[0] if len(new) == 1 else b"".join(new)
        cut = data.rfind(b"\n") + 1
        if self.closing or len(data) - cut > PARTIAL_MAX:
            cut = len(data)
        # a slice of all of a bytes object is that object: no copy of a cycle's output that ends a line
        complete, partial = _collapse(data[:cut]), data[cut:]
        if b"\r" in partial:  # keep a trailing "\r": the next byte decides what it overwrites
            i = partial.rstrip(b"\r").rfind(b"\r")
            if i >= 0:
                partial = partial[i + 1:]
        chunks = []
        if complete:
            room = self.limit - self.total
            if len(complete) > room:
                keep = complete[:max(room, 0)]
                nl = keep.rfind(b"\n")
                keep = keep[:nl + 1] if nl >= 0 else keep
                complete = keep + MARKER.format(mb=f"{self.limit / (1 << 20):g}").encode()
                self.capped = True
                partial = b""
            chunks.append((self.seq, complete))
            self.full.append(complete)
            self.sha.update(complete)
            self.total += len(complete)
            self.seq += 1
        self.tail = partial
        if partial:
            chunks.append((self.seq, partial.rstrip(b"\r")))
        return chunks


# ---- caller side ----------------------------------------------------------------------------


class _TeeLayer:
    """What the two binary layers under a stand-in share. ``closed`` is a slot (a C member
    descriptor) in both, and neither has a ``__getattr__`` hook on its type: the C text layer
    reads ``closed`` through them on every write, twice per ``print``, and a Python-level lookup
    there (a property, or a class attribute behind a ``__getattr__``) is paid 200 000 times for
    100 000 prints. What callers ask of a binary stream is answered below (``name``, ``mode``,
    ``raw``, ``fileno()``, ``isatty()``); other attributes of the original object are not forwarded
    any more. Closing the real stream underneath still makes writes fail, in the real stream's
    write."""

    __slots__ = ()

    def __init__(self, raw: Any, capture: "_Capture"):
        self.closed = False  # the subclasses' slots: each layer holds its own three
        self._raw = raw
        self._capture = capture

    def flush(self) -> None:
        if not self.closed:
            self._raw.flush()

    def close(self) -> None:
        # closing the stand-in (also when it is garbage-collected) must not close the real stream
        if not self.closed:
            try:
                self.flush()
            finally:
                self.closed = True

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._raw.fileno()

    def isatty(self) -> bool:
        return self._raw.isatty()

    @property
    def name(self) -> Any:
        return getattr(self._raw, "name", None)

    @property
    def mode(self) -> Any:
        return getattr(self._raw, "mode", "wb")

    @property
    def raw(self) -> Any:
        return getattr(self._raw, "raw", self._raw)


class _TeeBinary(_TeeLayer, io.BufferedIOBase):
    """The binary layer of the stand-in of a write-through stream (``python -u``, pytest's
    capture): ``sys.stdout.buffer`` itself. The original binary buffer first, then one append.
    The text layer above it is a C ``io.TextIOWrapper``, so a ``print`` runs no Python code
    until that layer writes through: threads printing at once interleave exactly as they did
    without capture."""

    __slots__ = ("closed", "_raw", "_capture")

    def write(self, b: Any) -> int:
        n = self._raw.write(b)  # the user's output as before, errors included
        cap = self._capture
        if cap.on:  # inline, not a shared method: one Python call per write is what this costs
            try:
                buf = cap.buffer
                buf.append(b if type(b) is bytes else bytes(b))
                if len(buf) >= _WAKE_AT:
                    cap.backpressure()
            except Exception:  # never raise into a print
                pass
        return len(b) if n is None else n


class _TeeBlocks(_TeeBinary):
    """The binary layer of the stand-in of a block-buffered stream (a file, a pipe): the C text
    layer above gathers 8 KB and hands over one chunk (or a ``flush()``'s rest) at a time, which
    goes into the original binary buffer and then the log. No C buffer sits in between: the C text
    layer checks ``closed`` through its binary layer on every write, and through a C buffer that
    was two attribute lookups per write instead of one (100 000 prints: 8 ms of a 61 ms loop).
    The lock keeps the log's order the destination's when threads hand over chunks at once, as
    the original buffer's own lock does for the destination."""

    __slots__ = ("_lock",)

    def __init__(self, raw: Any, capture: "_Capture"):
        super().__init__(raw, capture)
        self._lock = threading.RLock()  # re-entrant: a signal handler that prints fails as it did

    def write(self, b: Any) -> int:
        with self._lock:  # one call more per 8 KB chunk, not per print
            return _TeeBinary.write(self, b)


class _TeeRaw(_TeeLayer, io.RawIOBase):
    """The raw layer under a C ``io.BufferedWriter`` in the stand-in of a line-buffered stream (a
    terminal): each line the buffer lets go (and anything on ``flush()``) goes to the original
    binary buffer and out, as the original's own flush would, then into the log. Through the C
    buffer this is one Python call per line; a text layer straight over a tee calls it twice, a
    write and a flush.

    When the original is a ``BufferedWriter`` over a ``FileIO`` (a terminal, a file, a pipe: what a
    script's own streams are), ``_file`` is that ``FileIO`` and a chunk goes to the descriptor in
    one write instead of being copied into the original's buffer and flushed out of it (0.1-0.2 µs
    less per line on a terminal); a short or refused write (a full non-blocking pipe) sends the rest
    the original way. The original buffer is flushed when capture starts, so only what is written
    to that binary object directly (``sys.__stdout__.buffer``) without a flush could be overtaken."""

    __slots__ = ("closed", "_raw", "_capture", "_file", "_buf")

    def __init__(self, raw: Any, capture: "_Capture"):
        super().__init__(raw, capture)
        direct = type(raw) is io.BufferedWriter and isinstance(getattr(raw, "raw", None), io.FileIO)
        self._file = raw.raw if direct else None
        self._buf = capture.buffer  # the writer's deque, never replaced

    def write(self, b: Any) -> int:
        # the C buffer hands over a memoryview of its own memory: one copy, made first, is what
        # goes out and into the log (memoryview.tobytes is the cheap copy: 0.1 us a line less)
        try:
            data = b.tobytes()
        except AttributeError:  # bytes or a bytearray written to this raw layer by hand
            data = bytes(b)
        f = self._file
        n = f.write(data) if f is not None else 0
        if n is None or n < len(data):
            raw = self._raw
            raw.write(data[n:] if n else data)
            raw.flush()
        if self._capture.on:
            try:
                buf = self._buf
                buf.append(data)
                if len(buf) >= _WAKE_AT:
                    self._capture.backpressure()
            except Exception:  # never raise into a print
                pass
        return len(data)

    def readinto(self, b: Any) -> int:
        raise io.UnsupportedOperation("not readable")


def _text_tee(stream: io.TextIOWrapper, capture: "_Capture") -> io.TextIOWrapper:
    stream.flush()
    if stream.write_through:  # unbuffered (python -u, pytest's capture): every write goes through
        binary: Any = _TeeBinary(stream.buffer, capture)
    elif not stream.line_buffering:  # a file or a pipe: the text layer's 8 KB chunks
        binary = _TeeBlocks(stream.buffer, capture)
    else:  # a terminal: a line at a time, through a C buffer (see _TeeRaw)
        binary = io.BufferedWriter(_TeeRaw(stream.buffer, capture), buffer_size=8192)
    tee = io.TextIOWrapper(binary, encoding=stream.encoding, errors=stream.errors,
                           line_buffering=stream.line_buffering, write_through=stream.write_through)
    for attr in ("mode",):
        if hasattr(stream, attr):
            try:
                setattr(tee, attr, getattr(stream, attr))
            except AttributeError:
                pass
    return tee


class _Tee:
    """Stands in for a sys.stdout / sys.stderr that is not an io.TextIOWrapper (Jupyter, a
    StringIO, a user's own class): the original stream first, then one append."""

    def __init__(self, stream: Any, capture: "_Capture"):
        self._stream = stream
        self._capture = capture

    def write(self, s: Any) -> int:
        n = self._stream.write(s)
        cap = self._capture
        if cap.on:
            try:
                buf = cap.buffer
                buf.append((_w.OP_CONSOLE, None, s))
                if len(buf) >= _WAKE_AT:
                    cap.backpressure()
            except Exception:  # never raise into a print
                pass
        return n

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __iter__(self):
        return iter(self._stream)

    def __repr__(self) -> str:
        return f"<trackhooks console tee of {self._stream!r}>"


class _FdPipes:
    """fd-level capture: 1 and 2 point at pipes; one thread copies them to where they went before."""

    def __init__(self, capture: "_Capture"):
        self._capture = capture
        self._lock = threading.Lock()
        self._saved: dict[int, int] = {}  # fd -> duplicate of its original destination
        self._readers: dict[int, int] = {}  # pipe read end -> saved fd to forward to
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        st1, st2 = os.fstat(1), os.fstat(2)
        same = (st1.st_dev, st1.st_ino) == (st2.st_dev, st2.st_ino)
        # 2>&1 (or both on one terminal/file): one pipe for both keeps their relative order exactly
        groups = [(1, 2)] if same else [(1,), (2,)]
        pipes: list[tuple[tuple[int, ...], int, int]] = []
        try:
            for fd in (1, 2):
                self._saved[fd] = os.dup(fd)
            for group in groups:
                r, w = os.pipe()
                pipes.append((group, r, w))
                os.set_blocking(r, False)
            for group, r, w in pipes:  # nothing is redirected until every pipe exists
                for fd in group:
                    os.dup2(w, fd)
        except OSError:
            for fd, saved in self._saved.items():  # back to where it was, nothing left open
                try:
                    os.dup2(saved, fd)
                    os.close(saved)
                except OSError:
                    pass
            for _, r, w in pipes:
                os.close(r)
                os.close(w)
            raise
        for group, r, w in pipes:
            _widen(w)
            os.close(w)
            self._readers[r] = self._saved[group[0]]
        self._thread = threading.Thread(target=self._loop, name="trackhooks-console", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        readers = list(self._readers)
        while readers:
            try:
                ready, _, _ = select.select(readers, [], [])
            except (OSError, ValueError):
                return
            # let a burst of small writes gather in the pipe before taking them: every wake of this
            # thread takes the GIL from a training loop that holds it, and waking on each write of
            # an unbuffered print cost that loop 2.3x its time (benchmarks/README.md "Seventh pass")
            time.sleep(FD_GATHER_S)
            with self._lock:
                for r in ready:
                    if not self._pump(r):
                        readers.remove(r)
                        try:
                            os.close(r)
                            os.close(self._readers[r])
                        except OSError:
                            pass

    def _pump(self, r: int) -> bool:
        """Copy what is in the pipe now; False at end of file (every writer has closed it)."""
        while True:
            try:
                data = os.read(r, PIPE_BYTES)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                return False
            _write_all(self._readers[r], data)
            cap = self._capture
            if cap.on:
                try:
                    cap.buffer.append(data)
                except Exception:
                    pass

    def sync(self) -> None:
        """Everything written to fd 1/2 so far is forwarded and appended (run.flush(), finish)."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        with self._lock:
            for r in list(self._readers):
                try:
                    self._pump(r)
                except Exception:
                    pass

    def stop(self) -> None:
        self.sync()
        with self._lock:
            forwarding = set(self._readers.values())
            for fd, saved in self._saved.items():
                try:
                    os.dup2(saved, fd)
                    if saved not in forwarding:  # fd 2's copy when 1 and 2 shared one pipe
                        os.close(saved)
                except OSError:
                    pass
        # the reader thread keeps copying until the pipes' last writers (children that inherited
        # them) close them, so a subprocess that outlives the run never gets a broken pipe


class _FileFollower:
    """One regular file that ``sys.stdout`` and/or ``sys.stderr`` write to, read back instead of teed.

    What the process (its Python streams, C extensions, subprocesses that inherited the descriptor)
    adds to the file from the capture's start is the log, in the file's own order, which for
    ``> log 2>&1`` is exactly the order the two streams reached it. Reading works on the same file
    opened again for reading (``pread`` at our own offset), so the user closing or replacing their
    stream changes nothing, and the file's position is never moved. A file shrunk under us (truncated in
    place) is read again from its start. Anything else that appends to the same file while the run
    captures (another process sharing the descriptor) is in the log too, as it is in the file."""

    def __init__(self, fd: int, buffer: Any):
        # the user's descriptor is write-only: the same file, opened again for reading (Linux's
        # /proc; elsewhere this raises and the stream gets a stand-in)
        mine = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)
        st, theirs = os.fstat(mine), os.fstat(fd)
        if (st.st_dev, st.st_ino) != (theirs.st_dev, theirs.st_ino):
            os.close(mine)
            raise OSError(f"descriptor {fd} is not the file /proc names")
        self.fd = mine
        self.offset = st.st_size
        self.keep_until = 0
        self.extend()
        self.streams: list[tuple[str, Any]] = []
        self._buffer = buffer
        self._lock = threading.Lock()

    def extend(self) -> None:
        """A run starts capturing here: read at most what its log can keep (a run's log stops at
        LIMIT_BYTES; the margin covers an unfinished line), so a script that writes gigabytes into
        its file costs the reading of one log's worth, not of the file."""
        self.keep_until = self.offset + LIMIT_BYTES + PARTIAL_MAX + READ_BYTES

    def flush_streams(self) -> None:
        """What the Python layers still hold goes to the file first (a block-buffered stdout)."""
        for name, stream in self.streams:
            if getattr(sys, name) is stream:
                try:
                    stream.flush()
                except Exception:
                    pass

    def poll(self) -> None:
        with self._lock:
            fd = self.fd
            if fd < 0:
                return
            size = os.fstat(fd).st_size
            off = self.offset
            if size < off:
                off = 0
            append = self._buffer.append
            end = min(size, self.keep_until)
            while off < end:
                data = os.pread(fd, min(end - off, READ_BYTES), off)
                if not data:
                    break
                off += len(data)
                append(data)
            if off >= self.keep_until:
                off = size  # beyond every capturing run's limit: skipped, not read
            self.offset = off

    def close(self) -> None:
        with self._lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


_RANKS_ENV = ("WORLD_SIZE", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


def _one_of_several_ranks() -> bool:
    """A process of a distributed job (torchrun, SLURM tasks, MPI, Lightning's DDP): its ranks
    usually share one output file, and a run's log is its own process's output, so no reading back."""
    for name in _RANKS_ENV:
        try:
            if int(os.environ.get(name, "1")) > 1:
                return True
        except ValueError:
            pass
    dist = sys.modules.get("torch.distributed")  # only if the program loaded it: never imported here
    try:
        return bool(dist is not None and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1)
    except Exception:
        return False


def _regular_file(stream: Any) -> "tuple[int, int] | None":
    """(device, inode) of a plain ``io.TextIOWrapper`` that writes to a regular file, else None."""
    if not FOLLOW_FILES or type(stream) is not io.TextIOWrapper or _one_of_several_ranks():
        return None
    try:
        st = os.fstat(stream.fileno())
    except Exception:
        return None
    import stat

    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def _widen(fd: int) -> None:
    """Give the pipe PIPE_BYTES of room where the system allows it (Linux; 64 KB otherwise), so that
    what is written during one FD_GATHER_S wait never blocks the writing thread."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        except OSError:
            return  # the destination is gone (closed terminal, reader exited): nothing to write to
        view = view[n:]


class _Capture:
    def __init__(self, mode: str):
        self.mode = mode
        self.pid = os.getpid()
        self.writer = _w.get_writer()
        self.buffer = self.writer.buffer
        self.on = True
        self.users = 0
        self._tees: list[tuple[str, Any, _Tee]] = []
        self._handlers: list[tuple[Any, Any, _Tee]] = []
        self._pipes: _FdPipes | None = None
        self._followers: list[_FileFollower] = []
        if mode == "fd":
            try:
                self._pipes = _FdPipes(self)
            except OSError as exc:
                _w.warn_once(("console", "fd"), f"console capture: fd-level capture is not possible here "
                             f"({exc}); capturing sys.stdout/sys.stderr instead")
        files: dict[tuple[int, int], _FileFollower] = {}
        for name, fd in (("stdout", 1), ("stderr", 2)):
            stream = getattr(sys, name)
            if stream is None:
                continue
            if self._pipes is not None and _fileno(stream) == fd:
                continue  # already seen at the fd level
            key = None if self._pipes is not None else _regular_file(stream)
            if key is not None:
                follower = files.get(key)
                try:
                    if follower is None:
                        for other in (sys.stdout, sys.stderr):  # the offset is where the run's output starts
                            try:
                                other.flush()
                            except Exception:
                                pass
                        follower = files[key] = _FileFollower(stream.fileno(), self.buffer)
                        self._followers.append(follower)
                    follower.streams.append((name, stream))
                    continue
                except OSError:
                    pass  # no /proc (not Linux) or no descriptor to spare: a stand-in, as for any stream
            if isinstance(stream, io.TextIOWrapper) and getattr(stream, "buffer", None) is not None:
                tee = _text_tee(stream, self)
            else:
                tee = _Tee(stream, self)
            setattr(sys, name, tee)
            self._tees.append((name, stream, tee))
        self._wrap_logging()
        if self._followers:
            self.writer.console_poll = self.poll

    def poll(self) -> None:
        """Read what reached the followed files since the last poll (the writer's cycle, a sync)."""
        if not self.on or self.pid != os.getpid():
            return  # a forked child (DataLoader worker): its writes are the parent's to read
        for f in list(self._followers):
            try:
                f.poll()
            except Exception as exc:
                self._followers.remove(f)
                f.close()
                _w.warn_once(("console", "follow", type(exc)),
                             f"console capture: cannot read the output file back ({exc}); its output "
                             f"from here on is not in the log")

    def _wrap_logging(self) -> None:
        # handlers made before the run (logging.basicConfig, Lightning's) hold the original stream
        logging = sys.modules.get("logging")
        if logging is None or not self._tees:
            return
        by_stream = {id(orig): tee for _, orig, tee in self._tees}
        for ref in list(getattr(logging, "_handlerList", [])):
            h = ref() if callable(ref) else ref
            stream = getattr(h, "stream", None)
            if stream is not None and id(stream) in by_stream and isinstance(h, logging.StreamHandler):
                h.stream = by_stream[id(stream)]
                self._handlers.append((h, stream, by_stream[id(stream)]))

    def backpressure(self) -> None:
        self.writer.wake()
        if len(self.buffer) >= _w.MAX_BUFFERED:
            self.writer.wait_for_space()

    def sync(self) -> None:
        for name, _, tee in self._tees:
            if getattr(sys, name) is tee:
                try:
                    tee.flush()
                except Exception:
                    pass
        if self._pipes is not None:
            self._pipes.sync()
        if self._followers:
            for f in self._followers:
                f.flush_streams()
            self.poll()

    def stop(self) -> None:
        if self._pipes is not None:
            self._pipes.stop()
        if self._followers:
            for f in self._followers:
                f.flush_streams()
            self.poll()
            if self.writer.console_poll == self.poll:
                self.writer.console_poll = None
            for f in self._followers:
                f.close()
        for name, orig, tee in self._tees:
            try:
                tee.flush()  # what the stand-in still buffers goes out, and into the log
            except Exception:
                pass
        self.on = False
        for name, orig, tee in self._tees:
            if getattr(sys, name) is tee:  # a stream the user replaced since stays theirs
                setattr(sys, name, orig)
        for h, orig, tee in self._handlers:
            if getattr(h, "stream", None) is tee:
                h.stream = orig


def _fileno(stream: Any) -> int | None:
    try:
        return stream.fileno()
    except Exception:
        return None


_lock = threading.Lock()
_capture: _Capture | None = None


def attach(run: Any, mode: str, prefix: bytes = b"", seq: int = 0) -> None:
    """Start capturing for ``run`` (starting the process's capture if it is the first run)."""
    global _capture
    with _lock:
        if _capture is None or _capture.pid != os.getpid():
            _capture = _Capture(mode)
        elif _capture._followers:
            _capture.sync()  # what reached the file before this run is not this run's
            for f in _capture._followers:
                f.extend()
        _capture.users += 1
    run._buffer.append((_w.OP_CONSOLE_ATTACH, run._state, prefix, LIMIT_BYTES, seq))


def sync() -> None:
    """Make output written so far visible to the writer (before a flush or a finish)."""
    cap = _capture
    if cap is not None and cap.pid == os.getpid():
        try:
            cap.sync()
        except Exception:
            pass


def detach() -> None:
    """One capturing run has finished; the last one restores the streams."""
    global _capture
    with _lock:
        cap = _capture
        if cap is None or cap.pid != os.getpid():
            return
        cap.users -= 1
        if cap.users > 0:
            return
        _capture = None
    try:
        cap.stop()
    except Exception as exc:
        _w.warn_once(("console", "stop"), f"console capture: could not restore the streams: {exc}")


def _after_fork_in_child() -> None:
    # a forked child (DataLoader worker) prints as before; its writer is not the parent's
    cap = _capture
    if cap is not None:
        cap.on = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
