"""Media in the MLflow mirror against a real `mlflow server`, read back with MlflowClient."""

from __future__ import annotations

import argparse
import io
import json
import os

import numpy as np
import pytest

pytest.importorskip("mlflow")
pytest.importorskip("requests")

import trackhooks  # noqa: E402
from PIL import Image  # noqa: E402
from trackhooks import sync  # noqa: E402
from trackhooks_mlflow import encode_key  # noqa: E402

from tests.integrations.test_mlflow import Server, mlflow_run  # noqa: E402

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(str(tmp_path_factory.mktemp("mlflow-media-server")))
    srv.start()
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def client(server):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=server.url)


@pytest.fixture(autouse=True)
def _patient_flush(monkeypatch):
    monkeypatch.setenv("TRACKHOOKS_MIRROR_TIMEOUT", "120")


def _files(client, run_id, path):
    out = []
    for f in client.list_artifacts(run_id, path):
        out += _files(client, run_id, f.path) if f.is_dir else [f.path]
    return sorted(out)


def _log(run):
    for i in range(2):
        run.log_image("samples/val", np.full((4, 6, 3), 100 + i, np.uint8), step=i * 5)
    run.log_table("feature importance", {"feature": ["a", "b"], "importance": [0.7, 0.3]})
    run.log_confusion_matrix("cm", [0, 1, 1], [0, 1, 0])
    run.log_curve("roc_curve/1", [0, 0.5, 1], [0, 0.9, 1], x_label="fpr", y_label="tpr")
    run.log_histogram("weights/w", [1.0, 2.0, 3.0], bins=3)


def test_live_mirror_media(server, client, store_path, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with trackhooks.start_run("mlm", "media", mirrors=[f"mlflow+{server.url}"]) as run:
        _log(run)
        fig, ax = plt.subplots(figsize=(2, 2), dpi=20)
        ax.plot([1, 2])
        run.log_figure("fig", fig, step=3)
        plt.close(fig)
    rec = trackhooks.open_store(store_path).run(run.id)
    mlrun = mlflow_run(client, rec)
    rid = mlrun.info.run_id
    assert mlrun.data.tags["mlflow.loggedImages"] == "true"
    images = _files(client, rid, "images")
    full = [p for p in images if p.endswith(".png")]
    thumbs = [p for p in images if p.endswith("+compressed.webp")]
    assert len(full) == 3 and len(thumbs) == 3
    samples = sorted(p for p in full if p.startswith("images/samples~val+step+"))
    assert [p.split("+step+")[1].split("+")[0] for p in samples] == ["0", "5"]
    stamp = int(rec.media("samples/val")[1].timestamp * 1000)
    assert f"+timestamp+{stamp}+" in samples[1]
    local = client.download_artifacts(rid, samples[1], str(tmp_path))
    assert np.asarray(Image.open(local))[0, 0].tolist() == [101, 101, 101]
    with open(rec.media("samples/val")[1].path, "rb") as f, open(local, "rb") as g:
        assert f.read() == g.read()
    assert any(p.startswith("images/fig+step+3+") for p in full)
    thumb = client.download_artifacts(rid, thumbs[0], str(tmp_path / "t"))
    assert max(Image.open(thumb).size) == 256

    (table,) = _files(client, rid, "tables")
    assert table == f"tables/{encode_key('feature importance')}/000000-step0.json"
    with open(client.download_artifacts(rid, table, str(tmp_path / "tab"))) as f:
        assert json.load(f) == {"columns": ["feature", "importance"], "data": [["a", 0.7], ["b", 0.3]]}
    media = _files(client, rid, "media")
    assert media == ["media/cm/000000-step0.json", "media/roc_curve/1/000000-step0.json",
                     "media/weights/w/000000-step0.json"]
    with open(client.download_artifacts(rid, "media/cm/000000-step0.json", str(tmp_path / "cm"))) as f:
        cm = json.load(f)
    assert cm["kind"] == "confusion_matrix" and cm["data"] == {"labels": [0, 1], "matrix": [[1, 0], [1, 1]]}
    with open(client.download_artifacts(rid, "media/roc_curve/1/000000-step0.json", str(tmp_path / "r"))) as f:
        assert json.load(f)["data"]["y"] == [0.0, 0.9, 1.0]


def test_sync_sends_media_once(server, client, store_path, tmp_path):
    run = trackhooks.start_run("mlm", "offline")
    _log(run)
    run.finish()
    uri = f"mlflow+{server.url}"
    args = argparse.Namespace(store=store_path, to=uri, runs=[run.id], json=False)
    assert sync.main(args) == 0
    rec = trackhooks.open_store(store_path).run(run.id)
    rid = mlflow_run(client, rec).info.run_id
    before = _files(client, rid, "")
    assert sync.main(args) == 0
    assert _files(client, rid, "") == before
    assert len([p for p in before if p.startswith("images/") and p.endswith(".png")]) == 2
