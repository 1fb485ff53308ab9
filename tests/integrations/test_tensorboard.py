"""The TensorBoard mirror, read back with TensorBoard's own EventAccumulator (no TensorFlow)."""

from __future__ import annotations

import argparse
import json
import os
import struct

import pytest

pytest.importorskip("tensorboard")

import trackhooks  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402
from trackhooks import sync  # noqa: E402
from trackhooks_tensorboard import TensorBoardMirror, parse_uri, run_dir_name  # noqa: E402
from trackhooks_tensorboard.mirror import PARAMS_TAG, STATUS_TAG, TAGS_TAG, hparam_value  # noqa: E402


def f32(v: float) -> float:
    return struct.unpack("f", struct.pack("f", v))[0]  # TensorBoard scalars are float32


def load(directory: str) -> EventAccumulator:
    ea = EventAccumulator(directory, size_guidance={"scalars": 0, "tensors": 0})  # 0: keep every point
    ea.Reload()
    return ea


def run_dirs(logdir) -> list[str]:
    return sorted(d for d in os.listdir(logdir) if os.path.isdir(os.path.join(logdir, d)))


def assert_scalars_equal(ea: EventAccumulator, rec) -> None:
    assert sorted(ea.Tags()["scalars"]) == rec.metric_keys()
    for key in rec.metric_keys():
        s = rec.metric(key)
        got = [(e.step, repr(e.value), e.wall_time) for e in ea.Scalars(key)]
        assert got == [(st, repr(f32(v)), t) for st, v, t in zip(s.steps, s.values, s.timestamps)], key


def text(ea: EventAccumulator, tag: str) -> str:
    return ea.Tensors(tag)[-1].tensor_proto.string_val[0].decode()


def test_parse_uri_and_run_dir_name(tmp_path):
    assert parse_uri(f"tensorboard:{tmp_path}") == str(tmp_path)
    assert parse_uri(f"tensorboard://{tmp_path}") == str(tmp_path)
    assert parse_uri("tensorboard:runs") == os.path.abspath("runs")
    with pytest.raises(ValueError):
        parse_uri("tensorboard:")
    assert run_dir_name("resnet/lr=0.1", "abcdef0123456789") == "resnet_lr_0.1-abcdef01"
    assert hparam_value([1, 2]) == "[1, 2]" and hparam_value(0.5) == 0.5 and hparam_value(True) is True
    with pytest.raises(ValueError):
        TensorBoardMirror(f"tensorboard:{tmp_path}", {"flush_secs": 1})
    sink = trackhooks.plugin_manager().hook.trackhooks_make_sink(uri=f"tensorboard:{tmp_path}", options={})
    assert isinstance(sink, TensorBoardMirror)


def test_live_mirror_every_point_params_tags_status(store_path, tmp_path, monkeypatch):
    logdir = tmp_path / "tb"
    monkeypatch.setenv("TRACKHOOKS_MIRRORS", f"tensorboard:{logdir}")  # the environment names it
    with trackhooks.start_run("tb", "run/1", params={"optimizer": {"lr": 0.1}, "layers": [8, 4], "bn": True},
                              tags={"framework": "test"}) as run:
        for i in range(600):
            run.log_metrics({"loss": 1.0 / (i + 1), "val/acc": i / 600}, step=i, epoch=i // 60)
        run.flush()
        for v in (float("nan"), float("inf"), 3.0):
            run.log_metric("odd", v, step=-1)  # negative, repeated steps are points too
    other = trackhooks.start_run("tb", "run/2")
    other.log_metric("loss", 1.0)
    other.finish("failed")
    store = trackhooks.open_store(store_path)
    rec = store.run(run.id)
    assert run_dirs(logdir) == sorted([run_dir_name("run/1", run.id), run_dir_name("run/2", other.id)])
    ea = load(str(logdir / run_dir_name("run/1", run.id)))
    assert_scalars_equal(ea, rec)
    params = text(ea, PARAMS_TAG)
    assert "| optimizer.lr | 0.1 |" in params and "| layers | [8, 4] |" in params
    assert "| framework | test |" in text(ea, TAGS_TAG)
    assert text(ea, STATUS_TAG) == "finished"
    start = plugin_data_pb2.HParamsPluginData.FromString(
        ea.SummaryMetadata("_hparams_/session_start_info").plugin_data.content).session_start_info
    assert dict(start.hparams)["optimizer.lr"].number_value == 0.1
    assert dict(start.hparams)["layers"].string_value == "[8, 4]"
    assert dict(start.hparams)["bn"].bool_value is True
    ea2 = load(str(logdir / run_dir_name("run/2", other.id)))
    assert_scalars_equal(ea2, store.run(other.id))
    assert text(ea2, STATUS_TAG) == "failed"


def test_sync_replays_missing_points_while_running_and_twice_adds_nothing(store_path, tmp_path, capsys):
    logdir = tmp_path / "later"
    uri = f"tensorboard:{logdir}"
    args = argparse.Namespace(store=store_path, to=uri, runs=[], json=True)
    run = trackhooks.start_run("tb", "open", params={"lr": 0.01})  # no mirror while it logs
    for i in range(250):
        run.log_metric("loss", float(i), step=i)
    run.flush()
    assert sync.main(args) == 0  # while the run is still going
    first = json.loads(capsys.readouterr().out)["runs"][0]
    assert first["points"] == 250 and first["status"] is None
    for i in range(250, 400):
        run.log_metric("loss", float(i), step=i)
    run.finish()
    assert sync.main(args) == 0
    second = json.loads(capsys.readouterr().out)["runs"][0]
    assert second["points"] == 150 and second["status"] == "finished"
    assert sync.main(argparse.Namespace(store=store_path, to=uri, runs=[run.id[:8]], json=False)) == 0
    assert "up to date" in capsys.readouterr().out
    rec = trackhooks.open_store(store_path).run(run.id)
    ea = load(str(logdir / run_dir_name("open", run.id)))
    assert_scalars_equal(ea, rec)  # 400 points, each once, across the event files of three syncs
    state = sync.cursor_state(trackhooks.open_store(store_path), f"tensorboard:{logdir}", run.id)
    assert state["metrics"] == {"loss": 400} and state["status"] == "finished"


def test_sync_errors_and_the_command_line(store_path, tmp_path, capsys):
    from trackhooks import cli

    with trackhooks.start_run("tb") as run:
        run.log_metric("x", 1.0)
    with pytest.raises(trackhooks.UnknownPluginError, match="no installed plugin handles 'nowhere://x'"):
        sync.main(argparse.Namespace(store=store_path, to="nowhere://x", runs=[], json=False))
    with pytest.raises(trackhooks.RunNotFoundError, match="zzzz"):
        sync.main(argparse.Namespace(store=store_path, to=f"tensorboard:{tmp_path}", runs=["zzzz"], json=False))
    assert cli.main(["sync", "--to", f"tensorboard:{tmp_path}/cli", "--store", store_path, "--json", run.id[:8]]) == 0
    assert json.loads(capsys.readouterr().out)["runs"][0]["points"] == 1
    assert cli.main(["sync", "--to", "nowhere://x", "--store", store_path]) == 1
    assert "trackhooks: error: no installed plugin handles 'nowhere://x'" in capsys.readouterr().err


def test_a_failing_mirror_catches_up_by_itself_once_it_works_again(store_path, tmp_path, monkeypatch):
    import warnings

    monkeypatch.setenv("TRACKHOOKS_MIRROR_TIMEOUT", "30")
    logdir = tmp_path / "blocked"
    logdir.write_text("a file where the log directory should be")  # every write fails with an OSError
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = trackhooks.start_run("tb", "flaky", mirrors=[f"tensorboard:{logdir}"])
        for i in range(300):
            run.log_metric("loss", float(i), step=i)
        run.flush()
        run.flush()
        logdir.unlink()  # the mirror works again
        run.log_metric("loss", 300.0, step=300)
        run.finish()
    assert len([w for w in caught if "tensorboard:" in str(w.message)]) == 1
    rec = trackhooks.open_store(store_path).run(run.id)
    ea = load(str(logdir / run_dir_name("flaky", run.id)))
    assert_scalars_equal(ea, rec)  # the 300 points it missed and the new one, each once
    assert text(ea, STATUS_TAG) == "finished"
