"""``trackhooks show`` lists media keys with kind and count; ``export --format json`` includes the
records (data inline, image files by path). Run as a user runs it (subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

import trackhooks


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    p = subprocess.run([sys.executable, "-m", "trackhooks", *args], capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    return p


def _run(store_path):
    with trackhooks.start_run(name="media-run") as run:
        for i in range(3):
            run.log_image("samples", np.full((4, 6), i * 40, np.uint8), caption=f"epoch {i}")
        run.log_histogram("weights/w", [1.0, 2.0, float("nan")], bins=2, step=4)
        run.log_confusion_matrix("confusion_matrix", [0, 1, 1], [0, 1, 0])
        run.log_table("feature_importance", [{"feature": "a", "importance": 0.5}])
        run.log_curve("roc_curve", [0, 1], [0, 1])
        run.log_metric("loss", 1.0)
    return run


def test_show_lists_media_keys_kind_and_count(store_path):
    run = _run(store_path)
    out = cli("show", run.id[:8], "--store", store_path).stdout
    lines = {line.split()[0]: line.split() for line in out.splitlines()
             if line.strip() and line.split()[0] in ("samples", "weights/w", "confusion_matrix", "roc_curve")}
    assert lines["samples"][1:] == ["image", "3", "0–2"]
    assert lines["weights/w"][1:] == ["histogram", "1", "4"]
    assert lines["confusion_matrix"][1:4] == ["confusion", "matrix", "1"]
    data = json.loads(cli("show", run.id, "--store", store_path, "--json").stdout)
    assert data["media"] == {
        "confusion_matrix": {"kind": "confusion_matrix", "count": 1, "min_step": 0, "max_step": 0},
        "feature_importance": {"kind": "table", "count": 1, "min_step": 0, "max_step": 0},
        "roc_curve": {"kind": "curve", "count": 1, "min_step": 0, "max_step": 0},
        "samples": {"kind": "image", "count": 3, "min_step": 0, "max_step": 2},
        "weights/w": {"kind": "histogram", "count": 1, "min_step": 4, "max_step": 4},
    }


def test_show_without_media_has_no_media_section(store_path):
    with trackhooks.start_run() as run:
        run.log_metric("loss", 1.0)
    out = cli("show", run.id, "--store", store_path).stdout
    assert not any(line.strip() == "media" or line.strip().startswith("media ") for line in out.splitlines())
    assert "media" in cli("show", _run(store_path).id, "--store", store_path).stdout.split()
    assert json.loads(cli("show", run.id, "--store", store_path, "--json").stdout)["media"] == {}


def test_export_json_includes_media_records(store_path, tmp_path):
    run = _run(store_path)
    target = tmp_path / "run.json"
    cli("export", run.id, "--format", "json", "-o", str(target), "--store", store_path)
    data = json.loads(target.read_text())  # strict JSON: NaN counts are numbers, never NaN literals
    media = data["media"]
    assert sorted(media) == ["confusion_matrix", "feature_importance", "roc_curve", "samples", "weights/w"]
    imgs = media["samples"]
    assert [m["step"] for m in imgs] == [0, 1, 2] and [m["data"]["caption"] for m in imgs][-1] == "epoch 2"
    assert all(os.path.isfile(m["path"]) and (m["width"], m["height"]) == (6, 4) for m in imgs)
    (h,) = media["weights/w"]
    assert h["path"] is None and h["data"]["counts"] == [1, 1] and h["data"]["nan"] == 1
    assert media["confusion_matrix"][0]["data"] == {"labels": [0, 1], "matrix": [[1, 0], [1, 1]]}
    assert media["feature_importance"][0]["kind"] == "table"
    assert set(imgs[0]) == {"key", "kind", "step", "epoch", "timestamp", "path", "width", "height", "data"}
    stdout = json.loads(cli("export", run.id, "--format", "json", "--store", store_path).stdout)
    assert stdout["media"] == media
