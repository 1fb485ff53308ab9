"""Console capture: the user's output is unchanged and the run keeps a copy as console.log."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import trackhooks
from trackhooks import console as _console
from trackhooks.console import ConsoleLog, _collapse, parse_mode

PY = sys.executable

# a child that prints from threads, partial lines, emoji, a progress bar, stderr, a C-level write
# and a subprocess; argv[1] is the capture_output value, argv[2] the store
CHILD = textwrap.dedent(r"""
    import os, subprocess, sys, threading, trackhooks
    mode = {"on": True, "off": False}.get(sys.argv[1], sys.argv[1])
    run = trackhooks.start_run("console", store=sys.argv[2], capture_output=mode)
    print("start 😀 ünïcode")
    print("partial ", end="")
    print("line", flush=True)
    def worker(t):
        for i in range(50):  # one write per line: print's two writes interleave even without capture
            sys.stdout.write(f"thread {t} line {i}\n")
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for p in range(0, 101, 10):
        print(f"\rprogress {p:3d}%", end="", file=sys.stderr)
    print(file=sys.stderr)
    sys.stdout.flush()
    os.write(1, b"C-level write\n")
    os.write(1, b"bad bytes \xff\xfe end\n")
    subprocess.run([sys.executable, "-c", "print('from a subprocess')"], check=True)
    print("no newline at the end", end="")
    run.finish()
    print(run.id, file=sys.stderr)
""")


def run_child(mode: str, store: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-c", CHILD, mode, store], capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"})


def without_threads(out: bytes) -> bytes:
    return b"".join(ln for ln in out.splitlines(keepends=True) if not ln.startswith(b"thread "))


def console_of(store: str, run_id: str) -> bytes:
    return trackhooks.open_store(store).run(run_id).console()


@pytest.mark.parametrize("mode", ["on", "fd"])
def test_user_output_unchanged_and_kept(tmp_path, mode):
    off = run_child("off", str(tmp_path / "off"))
    on = run_child(mode, str(tmp_path / "on"))
    assert off.returncode == 0 and on.returncode == 0, (off.stderr, on.stderr)
    # what the user sees is byte for byte what they saw without capture (the run id line differs;
    # the threads interleave differently from one process to the next)
    assert without_threads(on.stdout) == without_threads(off.stdout)
    assert sorted(on.stdout.splitlines()) == sorted(off.stdout.splitlines())
    assert on.stderr.splitlines()[:-1] == off.stderr.splitlines()[:-1]
    run_id = on.stderr.decode().splitlines()[-1]
    log = console_of(str(tmp_path / "on"), run_id)
    text = log.decode("utf-8", "replace")
    assert text.startswith("start 😀 ünïcode\npartial line\n")
    for t in range(4):  # every line once, each thread's lines in order
        lines = [ln for ln in text.splitlines() if ln.startswith(f"thread {t} ")]
        assert lines == [f"thread {t} line {i}" for i in range(50)]
    assert "progress 100%" in text and "progress  90%" not in text  # the bar collapsed
    if mode == "on":  # Python-level capture sees both streams' writes in program order
        assert "progress 100%\n" in text
    # with "fd", stdout and stderr are two pipes read by two threads: the bar's newline (stderr) and
    # the C-level write (stdout) may be logged in either order (1 in ~10 runs here put it after)
    assert text.endswith("no newline at the end")
    if mode == "fd":  # output below Python: C extensions, subprocesses, raw bytes
        assert b"C-level write\n" in log and b"from a subprocess\n" in log
        assert b"bad bytes \xff\xfe end\n" in log
    else:
        assert b"C-level write" not in log and b"from a subprocess" not in log
    rec = trackhooks.open_store(str(tmp_path / "on")).run(run_id)
    assert [a.name for a in rec.artifacts()] == ["console.log"]
    with open(rec.artifacts()[0].path, "rb") as f:
        assert f.read() == log


def test_capture_off_stores_nothing(tmp_path):
    p = run_child("off", str(tmp_path / "s"))
    run_id = p.stderr.decode().splitlines()[-1]
    rec = trackhooks.open_store(str(tmp_path / "s")).run(run_id)
    assert rec.console() == b"" and rec.artifacts() == []


KILLED = textwrap.dedent(r"""
    import os, sys, trackhooks
    run = trackhooks.start_run("console", store=sys.argv[1], capture_output=sys.argv[3])
    for i in range(100):
        print(f"line {i}")
    print("half a line", end="")
    run.flush()
    os.write(int(sys.argv[2]), b"x")
    i = 0
    while True:  # printing when the SIGKILL comes
        print(f"after {i}", end=" " if i % 7 else "\n")
        i += 1
""")


@pytest.mark.parametrize("mode", ["python", "fd", "python, into a file"])
def test_sigkill_keeps_everything_up_to_the_last_flush(tmp_path, mode):
    store = str(tmp_path / "s")
    r, w = os.pipe()
    out = open(tmp_path / "out.log", "wb") if mode.endswith("file") else subprocess.DEVNULL
    p = subprocess.Popen([PY, "-c", KILLED, store, str(w), mode.split(",")[0]], pass_fds=(w,), stdout=out)
    if out != subprocess.DEVNULL:
        out.close()
    os.close(w)
    try:
        assert os.read(r, 1) == b"x"
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        os.close(r)
    (rec,) = trackhooks.open_store(store).runs()
    assert rec.status == "killed"
    text = rec.console().decode()
    expected = "".join(f"line {i}\n" for i in range(100)) + "half a line"
    assert text.startswith(expected)


# a child whose stdout and stderr are one regular file (``python train.py > log 2>&1``)
INTO_A_FILE = textwrap.dedent(r"""
    import os, subprocess, sys, trackhooks
    print("before the run")
    original = sys.stdout
    run = trackhooks.start_run("console", store=sys.argv[1])
    print("start 😀", sys.stdout is original)
    print("partial ", end="")
    print("line")
    print("to stderr", file=sys.stderr)
    os.write(1, b"C-level write \xff\xfe\n")
    subprocess.run([sys.executable, "-c", "print('from a subprocess')"], check=True)
    for p in range(0, 101, 25):
        print(f"\rprogress {p}%", end="", file=sys.stderr)
    print(file=sys.stderr)
    inner = trackhooks.start_run("console", store=sys.argv[1], parent=run)
    print("inner")
    inner.finish()
    print("no newline at the end", end="")
    run.finish()
    print("", "after the run", run.id, inner.id)
""")


def test_a_regular_file_is_read_back_not_replaced(tmp_path):
    store, out = str(tmp_path / "s"), tmp_path / "out.log"
    with open(out, "wb") as f:
        p = subprocess.run([PY, "-c", INTO_A_FILE, store], stdout=f, stderr=subprocess.STDOUT, timeout=120,
                           env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    written = out.read_bytes()
    assert p.returncode == 0, written
    run_id, inner_id = written.split()[-2:]
    assert written.startswith(b"before the run\n")  # flushed when the capture began: not the run's
    during = written[len(b"before the run\n"):written.index(b" after the run")]
    assert b"start \xf0\x9f\x98\x80 True\n" in during  # sys.stdout was left as it was
    store_ = trackhooks.open_store(store)
    log = store_.run(run_id.decode()).console()
    # the file's own order (stderr and the block-buffered stdout as they reached it), C-level and subprocess output and
    # bytes that are not UTF-8 included, the progress bar collapsed; nothing from before or after
    assert log == _collapse(during)
    assert b"C-level write \xff\xfe\n" in log and b"from a subprocess\n" in log
    assert b"to stderr\n" in log and b"progress 100%\n" in log and b"progress 25%" not in log
    assert log.endswith(b"inner\nno newline at the end")
    assert store_.run(inner_id.decode()).console() == b"inner\n"


def test_a_followed_file_is_read_up_to_the_logs_limit_only(tmp_path):
    # 5 MB into the file, a 20 KB limit: the log stops with its marker, the file has everything, and
    # the capture read about one log's worth of it (the rest was skipped, not read into memory)
    code = textwrap.dedent("""
        import sys, trackhooks
        from trackhooks import console
        console.READ_BYTES = 4096
        run = trackhooks.start_run("console", store=sys.argv[1])
        (follower,) = console._capture._followers
        for i in range(100_000):
            print(f"line {i:07d} " + "x" * 38)
        run.flush()
        print(run.id, follower.offset - follower.keep_until, file=sys.stderr)
        run.finish()
    """)
    store, out = str(tmp_path / "s"), tmp_path / "out.log"
    with open(out, "wb") as f:
        p = subprocess.run([PY, "-c", code, store], stdout=f, stderr=subprocess.PIPE, timeout=120,
                           env={**os.environ, "TRACKHOOKS_CONSOLE_LIMIT_MB": str(20 / 1024)})
    assert p.returncode == 0, p.stderr
    run_id, skipped = p.stderr.decode().split()[-2:]
    assert out.read_bytes().count(b"\n") == 100_000
    assert int(skipped) > 4_000_000  # offset jumped to the end: far more skipped than kept
    log = trackhooks.open_store(store).run(run_id).console()
    body, _, rest = log.partition(b"\n[trackhooks: console output reached")
    assert 0 < len(body) <= 20 * 1024 and rest
    assert body.splitlines() == [f"line {i:07d} ".encode() + b"x" * 38 for i in range(len(body.splitlines()))]


def test_one_rank_of_several_does_not_read_back_the_file_the_ranks_share(tmp_path):
    store, out = str(tmp_path / "s"), tmp_path / "out.log"
    with open(out, "wb") as f:  # torchrun sets WORLD_SIZE; the other ranks would write into this file too
        p = subprocess.run([PY, "-c", INTO_A_FILE, store], stdout=f, stderr=subprocess.STDOUT, timeout=120,
                           env={**os.environ, "PYTHONIOENCODING": "utf-8", "WORLD_SIZE": "2"})
    written = out.read_bytes()
    assert p.returncode == 0, written
    assert b"start \xf0\x9f\x98\x80 False\n" in written  # a stand-in, as for a pipe
    log = trackhooks.open_store(store).run(written.split()[-2].decode()).console()
    assert b"start" in log and b"C-level write" not in log and b"from a subprocess" not in log


def test_a_followed_file_truncated_or_closed_under_the_run(store_path, tmp_path):
    stream, raw = _stream_over_file(tmp_path / "out.log", "file")
    original = sys.stdout
    sys.stdout = stream
    try:
        run = trackhooks.start_run(capture_output=True)
        assert sys.stdout is stream
        print("one")
        run.flush()
        os.ftruncate(raw.fileno(), 0)  # rotated in place (pytest's capture file does this between tests)
        os.lseek(raw.fileno(), 0, os.SEEK_SET)
        print("2", flush=True)  # shorter than what was there: read again from the start
        run.flush()
        print("three")
        stream.close()  # the user's stream closed: what it held went to the file, the run goes on
        run.log_metric("after", 1.0)
        run.finish()
    finally:
        sys.stdout = original
    assert trackhooks.open_store(store_path).run(run.id).console() == b"one\n2\nthree\n"


# ---- in-process: pytest's own capture is in place, as in any test suite -----------------------


def test_in_process_output_reaches_pytest_capture_and_the_log(store_path, capsys):
    before = sys.stdout
    with trackhooks.start_run(capture_output=True) as run:
        assert sys.stdout is not before
        print("to stdout")
        print("to stderr", file=sys.stderr)
    assert sys.stdout is before
    out, err = capsys.readouterr()
    assert out == "to stdout\n" and err == "to stderr\n"
    assert trackhooks.open_store(store_path).run(run.id).console() == b"to stdout\nto stderr\n"


def test_nested_runs_share_one_capture_and_the_last_finish_restores(store_path):
    original = sys.stdout
    outer = trackhooks.start_run(name="outer", capture_output=True)
    tee = sys.stdout
    print("outer only")
    inner = trackhooks.start_run(name="inner", parent=outer, capture_output=True)
    assert sys.stdout is tee  # not a tee of a tee
    print("both")
    inner.finish()
    assert sys.stdout is tee
    print("outer again")
    outer.finish()
    assert sys.stdout is original
    print("after both")
    store = trackhooks.open_store(store_path)
    assert store.run(outer.id).console() == b"outer only\nboth\nouter again\n"
    assert store.run(inner.id).console() == b"both\n"


@pytest.mark.parametrize("follow", [False, True])
def test_an_entry_per_write_reaches_each_run_exactly(store_path, tmp_path, monkeypatch, follow):
    # a stand-in (follow=False; a file standing for a pipe), unbuffered: every write is an entry of
    # the writer's buffer, 60 000 of them wake the writer mid-loop; a drain that holds nothing but
    # output is joined at once, and one that also holds a run's start or finish splits the output
    # there. follow=True: the file is read back, and each run's start and finish read it up to there
    monkeypatch.setattr(_console, "FOLLOW_FILES", follow)
    stream, _ = _stream_over_file(tmp_path / "out.log", "write-through")
    original = sys.stdout
    sys.stdout = stream
    try:
        outer = trackhooks.start_run(name="outer", capture_output=True)
        for i in range(30_000):
            print(f"outer {i}")
        inner = trackhooks.start_run(name="inner", parent=outer, capture_output=True)
        for i in range(5):
            print(f"inner {i}")
        inner.finish()
        for i in range(10):
            print(f"after {i}")
        outer.finish()
    finally:
        sys.stdout = original
        stream.close()
    store = trackhooks.open_store(store_path)
    assert store.run(inner.id).console() == "".join(f"inner {i}\n" for i in range(5)).encode()
    expected = "".join([*(f"outer {i}\n" for i in range(30_000)), *(f"inner {i}\n" for i in range(5)),
                        *(f"after {i}\n" for i in range(10))]).encode()
    assert store.run(outer.id).console() == expected
    with open(tmp_path / "out.log", "rb") as f:
        assert f.read() == expected


def test_stream_replaced_during_the_run_stays_the_users(store_path):
    original = sys.stdout
    run = trackhooks.start_run(capture_output=True)
    mine = io.StringIO()
    sys.stdout = mine
    print("into my own stream")
    run.finish()
    assert sys.stdout is mine  # not clobbered by the restore
    sys.stdout = original
    assert mine.getvalue() == "into my own stream\n"


def test_closed_stdout_raises_as_before_and_capture_survives(store_path):
    original = sys.stdout
    stream = io.StringIO()
    sys.stdout = stream
    try:
        run = trackhooks.start_run(capture_output=True)
        print("kept")
        stream.close()
        with pytest.raises(ValueError):  # the user's stream's own error, unchanged
            print("lost with the stream")
        run.finish()
    finally:
        sys.stdout = original
    assert trackhooks.open_store(store_path).run(run.id).console() == b"kept\n"


def _stream_over_file(path, buffering: str):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    raw = io.FileIO(fd, "w", closefd=True)
    if buffering == "file":
        return io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8"), raw
    return io.TextIOWrapper(raw, encoding="utf-8", write_through=True), raw  # what python -u gives


@pytest.mark.parametrize("buffering", ["file", "write-through"])
def test_the_stand_in_answers_like_the_original_and_closes_alone(store_path, tmp_path, buffering, monkeypatch):
    monkeypatch.setattr(_console, "FOLLOW_FILES", False)  # the file stands for a pipe: a stand-in, not read back
    # the stand-in's binary layers have no __getattr__ (it cost every print a Python-level lookup):
    # what callers ask of sys.stdout and its buffer is answered explicitly, as the original does
    def script(stream, capture):
        original = sys.stdout
        sys.stdout = stream
        try:
            run = trackhooks.start_run(capture_output=capture)
            print("one")
            sys.stdout.buffer.write(b"two\n")  # into the binary layer, past the text layer's buffer
            print("three", flush=True)
            run.finish()
        finally:
            sys.stdout = original
        return run

    plain, _ = _stream_over_file(tmp_path / "plain.log", buffering)
    script(plain, False)
    plain.close()
    mine, raw = _stream_over_file(tmp_path / "out.log", buffering)
    original = sys.stdout
    sys.stdout = mine
    try:
        run = trackhooks.start_run(capture_output=True)
        tee = sys.stdout
        assert tee is not mine
        assert tee.fileno() == raw.fileno() and tee.isatty() is False and tee.encoding == "utf-8"
        assert tee.buffer.name == mine.buffer.name and tee.buffer.mode == mine.buffer.mode == "wb"
        assert tee.buffer.fileno() == raw.fileno() and tee.buffer.isatty() is False and tee.buffer.writable()
        assert tee.buffer.raw is raw
        run.finish()
    finally:
        sys.stdout = original
    run = script(mine, True)
    with open(tmp_path / "plain.log", "rb") as a, open(tmp_path / "out.log", "rb") as b:
        assert b.read() == a.read()  # the same bytes in the same order as without capture
    # the log has what reached the destination, in that order ("one" waits in the text layer's
    # buffer of a block-buffered stream while "two" goes past it, with or without capture)
    expected = b"two\none\nthree\n" if buffering == "file" else b"one\ntwo\nthree\n"
    assert trackhooks.open_store(store_path).run(run.id).console() == expected

    sys.stdout = mine
    try:
        run = trackhooks.start_run(capture_output=True)
        tee = sys.stdout
        tee.close()
        assert tee.closed is True and mine.closed is False
        with pytest.raises(ValueError):  # as after closing the original
            print("lost with the stand-in")
        mine.write("the real stream is still open\n")
        run.finish()
        assert sys.stdout is mine  # the closed stand-in was still ours: the original is back
    finally:
        sys.stdout = original
        mine.close()
    with open(tmp_path / "out.log", "rb") as f:
        assert f.read().endswith(b"three\nthe real stream is still open\n")


def test_logging_handlers_made_before_the_run_are_captured(store_path):
    import logging

    stream = io.StringIO()
    original = sys.stderr
    sys.stderr = stream
    handler = logging.StreamHandler()  # holds sys.stderr as it is now, like logging.basicConfig()
    log = logging.getLogger("trackhooks-test-console")
    log.addHandler(handler)
    log.propagate = False
    try:
        with trackhooks.start_run(capture_output=True) as run:
            log.warning("a warning from logging")
        assert handler.stream is stream
    finally:
        log.removeHandler(handler)
        sys.stderr = original
    assert stream.getvalue() == "a warning from logging\n"
    assert trackhooks.open_store(store_path).run(run.id).console() == b"a warning from logging\n"


def test_size_cap_then_marker(store_path, monkeypatch, capsys):
    monkeypatch.setattr(_console, "LIMIT_BYTES", 1000)
    with trackhooks.start_run(capture_output=True) as run:
        for i in range(500):
            print(f"line {i:05d}")
    log = trackhooks.open_store(store_path).run(run.id).console()
    body, _, rest = log.partition(b"\n[trackhooks: console output reached")
    assert body.endswith(b"\n") and len(body) <= 1000
    assert body.splitlines() == [f"line {i:05d}".encode() for i in range(len(body.splitlines()))]
    assert rest and b"line" not in rest
    assert capsys.readouterr().out.count("\n") == 500  # the user still saw every line


def test_resumed_run_appends_to_its_log(store_path):
    with trackhooks.start_run(capture_output=True) as run:
        print("first session")
    with trackhooks.start_run(resume=run.id, capture_output=True):
        print("second session")
    rec = trackhooks.open_store(store_path).run(run.id)
    assert rec.console() == b"first session\nsecond session\n"
    import hashlib  # the artifact's hash covers the earlier session's log too

    assert [a.sha256 for a in rec.artifacts()] == [hashlib.sha256(b"first session\nsecond session\n").hexdigest()]


def test_the_finished_log_is_one_artifact_hashed_as_it_grew_and_no_chunk_rows(store_path):
    import hashlib
    import sqlite3

    with trackhooks.start_run(capture_output=True) as run:
        for cycle in range(3):  # several writer cycles: chunks stored live, the hash updated each time
            for i in range(200):
                print(f"cycle {cycle} line {i}")
            print(f"\rbar {cycle} 10%\rbar {cycle} 100%", end="")
            run.flush()
            live = trackhooks.open_store(store_path).run(run.id).console()
            assert live.endswith(f"cycle {cycle} line 199\nbar {cycle} 100%".encode())
            print()
        print("last line without a flush")
    expected = "".join(f"cycle {c} line {i}\n" for c in range(3) for i in range(200)).encode()
    rec = trackhooks.open_store(store_path).run(run.id)
    log = rec.console()
    assert log.count(b"\n") == 3 * 201 + 1 and log.endswith(b"bar 2 100%\nlast line without a flush\n")
    assert [ln for ln in log.splitlines() if ln.startswith(b"cycle")] == expected.splitlines()
    (art,) = rec.artifacts()
    with open(art.path, "rb") as f:
        assert f.read() == log
    assert art.sha256 == hashlib.sha256(log).hexdigest() and art.size == len(log)
    conn = sqlite3.connect(os.path.join(store_path, "trackhooks.db"))
    try:  # the live chunks are gone, and the last ones were never stored: console.log holds it all
        assert conn.execute("SELECT COUNT(*) FROM console WHERE run_id=?", (run.id,)).fetchone() == (0,)
    finally:
        conn.close()


def test_a_console_log_that_cannot_be_stored_leaves_its_chunks(store_path, tmp_path):
    import shutil
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = trackhooks.start_run(capture_output=True, system_metrics=False)
        print("stored live")
        run.flush()
        # a real fault under the finish: the artifact directory is gone
        shutil.rmtree(os.path.join(store_path, "artifacts"))
        os.symlink(str(tmp_path / "nowhere"), os.path.join(store_path, "artifacts"))
        print("only in the last chunks")
        run.finish()
    assert any("console.log" in str(w.message) for w in caught)
    rec = trackhooks.open_store(store_path).run(run.id)
    assert rec.console() == b"stored live\nonly in the last chunks\n" and rec.artifacts() == []


# ---- the writer-side log ----------------------------------------------------------------------


def _feed(log: ConsoleLog, *parts: bytes) -> list[tuple[int, bytes]]:
    for p in parts:
        log.feed(p)
    return log.emit()


def test_progress_bars_and_line_ends_collapse():
    assert _collapse(b"a\r\nb\n") == b"a\nb\n"
    assert _collapse(b"10%\r20%\r100%\n") == b"100%\n"
    assert _collapse(b"10%\r20%\r100%\r\n") == b"100%\n"
    assert _collapse(b"plain\n") == b"plain\n"


def _collapse_by_lines(block: bytes) -> bytes:
    # the rule, line by line (what _collapse computes visiting only the lines that hold a "\r")
    out = []
    for line in block.split(b"\n"):
        if b"\r" in line:
            body = line.rstrip(b"\r")
            i = body.rfind(b"\r")
            line = body[i + 1:] if i >= 0 else body
        out.append(line)
    return b"\n".join(out)


def test_collapse_visits_only_the_overwritten_lines_with_the_same_result():
    import random

    rng = random.Random(17)
    for _ in range(3000):
        block = bytes(rng.choice(b"ab\r\n") for _ in range(rng.randrange(0, 40)))
        assert _collapse(block) == _collapse_by_lines(block), block
    many = b"".join(b"log line %d\n" % i for i in range(50_000))
    block = many + b"epoch 1 10%\repoch 1 100%\n" + many + b"tail\r\n"
    assert _collapse(block) == many + b"epoch 1 100%\n" + many + b"tail\n"


def test_unfinished_line_is_rewritten_under_the_same_seq_until_it_ends():
    log = ConsoleLog("r")
    assert _feed(log, b"done\n", b"\r 10%") == [(0, b"done\n"), (1, b" 10%")]
    assert _feed(log, b"\r 50%\r") == [(1, b" 50%")]  # replaces seq 1
    assert _feed(log, b" 99%") == [(1, b" 99%")]  # the trailing \r of the last state overwrote it
    assert _feed(log, b"\n", b"next") == [(1, b" 99%\n"), (2, b"next")]
    assert log.emit() == []  # nothing new, nothing written
    log.closing = True
    log.dirty = True
    assert log.emit() == [(2, b"next")]
    assert log.text() == b"done\n 99%\nnext"


def test_bad_capture_values_name_the_option(monkeypatch):
    for bad in ("yes please", 3, 1.5, ["fd"]):
        with pytest.raises(trackhooks.TrackhooksError, match="capture_output"):
            parse_mode(bad)
    with pytest.raises(trackhooks.TrackhooksError, match="capture_output"):
        trackhooks.start_run(capture_output="sometimes")
    monkeypatch.setenv("TRACKHOOKS_CAPTURE_OUTPUT", "maybe")
    with pytest.raises(ValueError, match="TRACKHOOKS_CAPTURE_OUTPUT"):
        parse_mode(None)
    for raw, mode in (("0", None), ("off", None), ("1", "python"), ("fd", "fd"), ("PYTHON", "python")):
        monkeypatch.setenv("TRACKHOOKS_CAPTURE_OUTPUT", raw)
        assert parse_mode(None) == mode
    monkeypatch.delenv("TRACKHOOKS_CAPTURE_OUTPUT")
    assert parse_mode(None) == "python" and parse_mode(False) is None and parse_mode("fd") == "fd"


def test_show_console_prints_the_log(store_path):
    with trackhooks.start_run(capture_output=True) as run:
        print("hello from the run \x1b[31mred\x1b[0m")
    p = subprocess.run([PY, "-m", "trackhooks", "--store", store_path, "show", run.id[:8], "--console"],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"hello from the run \x1b[31mred\x1b[0m\n"  # piped: the bytes as written
    from trackhooks.cli import console_for_terminal

    assert console_for_terminal(b"ok \x1b[31mred\x1b[0m \x1b]0;title\x07") == "ok \x1b[31mred\x1b[0m \\x1b]0;title\\x07"


def test_resuming_a_killed_run_keeps_its_log_and_appends(store_path):
    code = textwrap.dedent(r"""
        import os, sys, time, trackhooks
        run = trackhooks.start_run("console", store=sys.argv[1], capture_output=True)
        print(run.id)
        print("half", end="")
        run.flush()
        os.write(int(sys.argv[2]), b"x")
        time.sleep(600)
    """)
    r, w = os.pipe()
    p = subprocess.Popen([PY, "-c", code, store_path, str(w)], pass_fds=(w,), stdout=subprocess.PIPE)
    os.close(w)
    try:
        assert os.read(r, 1) == b"x"
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        os.close(r)
    run_id = p.stdout.read().split()[0].decode()
    p.stdout.close()
    with trackhooks.start_run(resume=run_id, capture_output=True) as run:
        print(" and the rest")
        run.flush()
        # while the second session runs: the first one's chunks, then the new ones after them
        assert trackhooks.open_store(store_path).run(run_id).console() == f"{run_id}\nhalf and the rest\n".encode()
    assert trackhooks.open_store(store_path).run(run_id).console() == f"{run_id}\nhalf and the rest\n".encode()


SHORT = r"""
import os, sys, trackhooks
if sys.argv[2] == "git":
    import subprocess
    subprocess.run(["git", "init", "-q", "."], check=True)
    open("tracked.txt", "w").write("x\n")
    subprocess.run(["git", "add", "tracked.txt"], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], check=True)
    open("tracked.txt", "a").write("dirty\n")
run = trackhooks.start_run(capture_output=True)
sink = run._state.channel.sinks[0]
rows = []
write = sink.write
# chunks that are stored as rows: those of a batch without the run's console.log (which replaces them)
sink.write = lambda batch: (rows.append(0 if any(a.name == "console.log" for a in batch.artifacts)
                                        else len(batch.console)), write(batch))[1]
for i in range(3000):
    print(f"line {i}")
run.finish()
sys.stdout = sys.__stdout__
rec = trackhooks.open_store().run(run.id)
log = rec.console()
ok = log == "".join(f"line {i}\n" for i in range(3000)).encode()
print("ROWS", sum(rows), ok, run.id, file=sys.stderr)
"""


@pytest.mark.parametrize("where", ["plain", "git"])
def test_a_run_shorter_than_a_writer_cycle_stores_its_log_once(tmp_path, where):
    # all of its output is still in the buffer at finish(): the environment, the output and the end
    # are one drain, which stores the output once, as console.log (no chunk rows first), in a git
    # work tree too (finish() does not wait for the git probe; exit does, so its facts are there after)
    env = {**os.environ, "TRACKHOOKS_URI": str(tmp_path / "store"), "TRACKHOOKS_FLUSH_INTERVAL": "60",
           "TRACKHOOKS_GIT_DIFF": "0", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)}
    out = subprocess.run([PY, "-c", SHORT, "x", where], capture_output=True, text=True, timeout=120, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    line = [ln for ln in out.stderr.splitlines() if ln.startswith("ROWS")][-1].split()
    assert line[2] == "True"  # the log is complete and in order either way
    assert line[1] == "0"
    system = trackhooks.open_store(str(tmp_path / "store")).run(line[3]).system
    assert system.get("git.dirty") is (True if where == "git" else None)


GATHER = textwrap.dedent(r"""
    import fcntl, os, sys, threading, time, trackhooks
    from trackhooks import console
    pumps = []
    pump = console._FdPipes._pump
    def counted(self, r):
        if threading.current_thread().name == "trackhooks-console":
            pumps.append(r)
        return pump(self, r)
    console._FdPipes._pump = counted
    run = trackhooks.start_run("console", store=sys.argv[1], capture_output="fd", system_metrics=False)
    pipe_size = fcntl.fcntl(1, fcntl.F_GETPIPE_SZ)
    t = time.perf_counter()
    for i in range(20000):  # what an unbuffered print does: one system call per write
        os.write(1, b"%d\n" % i)
    loop_s = time.perf_counter() - t
    n = len(pumps)
    run.finish()
    print(n, loop_s, pipe_size, run.id, file=sys.stderr)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="F_GETPIPE_SZ is Linux's")
def test_fd_reader_gathers_bursts_instead_of_waking_on_every_write(tmp_path):
    # each wake of the reader takes the GIL from the writing loop: it waits FD_GATHER_S after the
    # pipe turns readable, so it wakes at most once per FD_GATHER_S of the loop, into a 1 MB pipe
    store = str(tmp_path / "s")
    p = subprocess.run([PY, "-c", GATHER, store], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    n, loop_s, pipe_size, run_id = p.stderr.decode().split()
    from trackhooks.console import FD_GATHER_S, PIPE_BYTES

    with open("/proc/sys/fs/pipe-max-size") as f:  # a system may allow less; then the pipe stays as it was
        allowed = int(f.read())
    assert int(pipe_size) == PIPE_BYTES or allowed < PIPE_BYTES
    assert int(n) <= float(loop_s) / FD_GATHER_S + 2, (n, loop_s)
    assert p.stdout == b"".join(b"%d\n" % i for i in range(20000))
    assert console_of(store, run_id) == p.stdout


def test_a_short_write_to_the_descriptor_goes_on_through_the_original_buffer(tmp_path):
    # the stand-in of a script's own stream writes each chunk straight to its FileIO; a terminal or
    # a pipe may take part of a chunk, and the rest must follow in order through the original buffer
    class Short(io.FileIO):
        def write(self, b):
            return super().write(bytes(b)[:5])

    class Capture:
        on = True

        def __init__(self):
            self.buffer = []

        def backpressure(self):
            pass

    path = tmp_path / "out.log"
    orig = io.BufferedWriter(Short(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "w"))
    cap = Capture()
    stream = io.TextIOWrapper(orig, encoding="utf-8", line_buffering=True)  # the script's sys.stdout
    tee = _console._text_tee(stream, cap)
    assert tee.buffer.raw._file is orig.raw  # the direct path, whose short writes are under test
    print("a line much longer than five bytes", file=tee)
    print("two", file=tee)
    tee.flush()
    tee.buffer.raw.write(bytearray(b"by hand\n"))  # not the C buffer's memoryview: copied all the same
    expected = b"a line much longer than five bytes\ntwo\nby hand\n"
    assert path.read_bytes() == expected and b"".join(cap.buffer) == expected
    tee.close()
    orig.close()


def test_threads_handing_over_chunks_at_once_keep_the_destinations_order_in_the_log(tmp_path):
    # a block-buffered stand-in hands its 8 KB chunks to the original buffer, then to the log; a
    # thread held up between the two (here: by a destination that sleeps for one of them) must not
    # let another thread's chunk into the log first
    class Uneven(io.BufferedWriter):
        def write(self, b):
            n = super().write(b)
            if threading.current_thread().name == "slow":
                time.sleep(0.002)
            return n

    class Capture:
        on = True

        def __init__(self):
            self.buffer = []

        def backpressure(self):
            pass

    path = tmp_path / "out.log"
    orig = io.TextIOWrapper(Uneven(io.FileIO(path, "w")), encoding="utf-8")  # a script's `> file`
    cap = Capture()
    tee = _console._text_tee(orig, cap)

    def lines(name):
        for i in range(3000):
            print(f"{name} line {i:05d} " + "x" * 40, file=tee)

    threads = [threading.Thread(target=lines, args=(n,), name=n) for n in ("slow", "fast")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tee.flush()
    orig.flush()
    written = path.read_bytes()
    assert len(written) == 6000 * len("slow line 00000 " + "x" * 40 + "\n")  # print's two writes may
    assert b"".join(cap.buffer) == written  # interleave across threads, with or without capture
    tee.close()
    orig.close()
