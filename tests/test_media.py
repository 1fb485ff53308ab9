"""Rich records (DESIGN.md "Rich records"): every input form, every bad input, copies at the call.

The records are checked as the writer hands them to a sink (a Sink subclass in ``mirrors=[...]``
receives every Batch the local store receives), and decoded with the real Pillow.
"""

import io
import math
import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import polars as pl  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import trackhooks  # noqa: E402
from trackhooks import (  # noqa: E402
    InvalidKeyError,
    InvalidMediaError,
    InvalidShapeError,
    InvalidValueError,
    MissingExtraError,
    TrackhooksError,
)
from trackhooks.sink import Sink  # noqa: E402


class Capture(Sink):
    """A real sink: keeps every MediaEvent the writer delivers."""

    name = "capture"

    def __init__(self):
        self.media = []

    def write(self, batch):
        self.media.extend(batch.media)

    def of(self, key):
        return [m for m in self.media if m.key == key]


@pytest.fixture
def cap():
    return Capture()


@pytest.fixture
def run(store_path, cap):
    r = trackhooks.start_run(mirrors=[cap])
    yield r
    r.finish()


def one(run, cap, key):
    run.flush()
    got = cap.of(key)
    assert len(got) == 1, got
    return got[0]


def pixels(ev):
    return np.asarray(Image.open(io.BytesIO(ev.file)))


# ---- images ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1), (5, 7, 3), (5, 7, 4)])
def test_image_numpy_uint8_layouts(run, cap, shape):
    arr = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    run.log_image("img", arr, caption="sample")
    ev = one(run, cap, "img")
    assert (ev.kind, ev.ext, ev.width, ev.height, ev.step, ev.epoch) == ("image", "png", 7, 5, 0, None)
    assert ev.data == {"caption": "sample"}
    assert ev.file[:8] == b"\x89PNG\r\n\x1a\n"
    expected = arr[:, :, 0] if shape[-1] == 1 else arr
    assert np.array_equal(pixels(ev), expected)
    import hashlib

    assert ev.sha256 == hashlib.sha256(ev.file).hexdigest()


def test_image_float_and_bool_and_chw_numpy(run, cap):
    f = np.array([[0.0, 0.5], [1.0, 2.0]], dtype=np.float32)  # 2.0 is clipped to 1 (documented)
    f[0, 0] = np.nan  # NaN -> 0
    run.log_image("f", f)
    assert pixels(one(run, cap, "f")).tolist() == [[0, 128], [255, 255]]
    run.log_image("b", np.array([[True, False]]))
    assert pixels(one(run, cap, "b")).tolist() == [[255, 0]]
    chw = np.random.default_rng(1).integers(0, 256, size=(3, 6, 8), dtype=np.uint8)
    run.log_image("chw", chw)
    ev = one(run, cap, "chw")
    assert (ev.width, ev.height) == (8, 6)
    assert np.array_equal(pixels(ev), chw.transpose(1, 2, 0))


def test_image_torch_chw_and_hwc(run, cap):
    t = torch.rand(3, 4, 6)
    run.log_image("t", t, step=5, epoch=2)
    ev = one(run, cap, "t")
    assert (ev.width, ev.height, ev.step, ev.epoch) == (6, 4, 5, 2)
    expected = (t.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(pixels(ev), expected)
    hwc = torch.randint(0, 256, (5, 6, 3), dtype=torch.uint8)
    run.log_image("hwc", hwc)
    assert np.array_equal(pixels(one(run, cap, "hwc")), hwc.numpy())
    grad = torch.rand(1, 3, 3, requires_grad=True)
    run.log_image("grad", grad * 1.0)  # a tensor in an autograd graph is detached, not an error
    assert pixels(one(run, cap, "grad")).shape == (3, 3)


def test_image_pil_and_nested_list(run, cap):
    img = Image.new("RGB", (10, 4), (255, 0, 0))
    run.log_image("pil", img)
    img.putpixel((0, 0), (0, 0, 255))  # changing the source afterwards does not change the record
    ev = one(run, cap, "pil")
    assert (ev.width, ev.height) == (10, 4) and tuple(pixels(ev)[0, 0]) == (255, 0, 0)
    cmyk = Image.new("CMYK", (3, 2))
    run.log_image("cmyk", cmyk)
    assert one(run, cap, "cmyk").width == 3
    with pytest.raises(InvalidValueError, match="int64"):
        run.log_image("list", [[0, 255], [255, 0]])  # a nested list of ints is int64: not an image dtype


def test_image_nested_list_of_floats(run, cap):
    run.log_image("list", [[0.0, 1.0], [1.0, 0.0]])
    assert pixels(one(run, cap, "list")).tolist() == [[0, 255], [255, 0]]


def test_image_files_png_kept_jpeg_kept_other_converted(run, cap, tmp_path):
    arr = np.random.default_rng(2).integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
    png, jpg, bmp = tmp_path / "a.png", tmp_path / "a.jpg", tmp_path / "a.bmp"
    Image.fromarray(arr).save(png)
    Image.fromarray(arr).save(jpg, quality=90)
    Image.fromarray(arr).save(bmp)
    run.log_image("png", png)
    run.log_image("jpg", str(jpg))
    run.log_image("bmp", bmp)
    run.flush()
    p, j, b = one(run, cap, "png"), one(run, cap, "jpg"), one(run, cap, "bmp")
    assert p.file == png.read_bytes() and p.ext == "png" and (p.width, p.height) == (11, 9)
    assert j.file == jpg.read_bytes() and j.ext == "jpg" and (j.width, j.height) == (11, 9)
    assert b.ext == "png" and b.file[:4] == b"\x89PNG" and np.array_equal(pixels(b), arr)


def test_identical_images_have_one_digest(run, cap):
    arr = np.zeros((4, 4, 3), np.uint8)
    run.log_image("a", arr)
    run.log_image("a", arr.copy())
    run.flush()
    a, b = cap.of("a")
    assert a.sha256 == b.sha256 and (a.step, b.step) == (0, 1)


def test_image_is_copied_at_the_call(run, cap):
    arr = np.zeros((2, 2), np.uint8)
    t = torch.zeros(2, 2)
    run.log_image("arr", arr)
    run.log_image("t", t)
    arr[:] = 255
    t.fill_(1.0)
    assert pixels(one(run, cap, "arr")).max() == 0
    assert pixels(one(run, cap, "t")).max() == 0


@pytest.mark.parametrize("bad,err", [
    (np.zeros((2, 2, 2), np.uint8), InvalidShapeError),
    (np.zeros((2, 2, 3, 1), np.uint8), InvalidShapeError),
    (np.zeros((0, 4), np.uint8), InvalidShapeError),
    (np.zeros(5, np.uint8), InvalidShapeError),
    (np.zeros((2, 2), np.int64), InvalidValueError),
    (np.zeros((2, 2), np.uint16), InvalidValueError),
    (np.zeros((2, 2), np.complex64), InvalidValueError),
    (torch.zeros(2, 2, dtype=torch.int32), InvalidValueError),
    (torch.zeros(5, 5, 5), InvalidShapeError),
    ("no/such/file.png", TrackhooksError),
    ("a string that is no path", TrackhooksError),
    (12, InvalidValueError),
    (None, InvalidValueError),
    ([[1, 2], [3]], InvalidShapeError),
])
def test_bad_images_raise_naming_the_key_and_log_nothing(run, cap, bad, err):
    with pytest.raises(err) as e:
        run.log_image("my_image", bad)
    assert isinstance(e.value, TrackhooksError) and "my_image" in str(e.value)
    run.flush()
    assert cap.of("my_image") == []


def test_bad_caption_and_directory(run, cap, tmp_path):
    with pytest.raises(InvalidValueError, match="im"):
        run.log_image("im", np.zeros((2, 2), np.uint8), caption=3)
    with pytest.raises(TrackhooksError, match="directory"):
        run.log_image("im", tmp_path)


def test_missing_pillow_raises_at_the_call_naming_the_extra(run, cap, monkeypatch):
    from trackhooks import media

    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now raises ImportError
    monkeypatch.setattr(media, "_pillow_ok", None)
    with pytest.raises(MissingExtraError) as e:
        run.log_image("needs_pillow", np.zeros((2, 2), np.uint8))
    assert "trackhooks[media]" in str(e.value) and "needs_pillow" in str(e.value)
    assert isinstance(e.value, ImportError)
    run.log_histogram("no_pillow_needed", [1.0, 2.0])  # other kinds need no Pillow
    monkeypatch.undo()
    run.flush()
    assert cap.of("needs_pillow") == [] and len(cap.of("no_pillow_needed")) == 1


# ---- figures -----------------------------------------------------------------------------------


def test_figure_rendered_to_png_and_left_open(run, cap):
    fig, ax = plt.subplots(figsize=(4, 3), dpi=50)
    ax.plot([0, 1], [0, 1])
    run.log_figure("fig", fig, step=3, epoch=1)
    assert plt.fignum_exists(fig.number)
    ax.plot([1, 0], [0, 1])  # drawing on it afterwards does not change the record
    ev = one(run, cap, "fig")
    assert (ev.kind, ev.ext, ev.width, ev.height, ev.step, ev.epoch) == ("figure", "png", 200, 150, 3, 1)
    assert ev.data == {"caption": None}
    assert pixels(ev).shape == (150, 200, 4)
    plt.close(fig)


def test_figure_without_agg_canvas_uses_savefig(run, cap):
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1), dpi=40)
    FigureCanvasSVG(fig)
    fig.add_subplot().plot([1, 2])
    run.log_figure("svgfig", fig)
    ev = one(run, cap, "svgfig")
    assert ev.file[:4] == b"\x89PNG" and ev.width > 0 and ev.height > 0


def test_bad_figure(run, cap):
    with pytest.raises(InvalidValueError, match="notfig"):
        run.log_figure("notfig", np.zeros((2, 2)))


# ---- histograms --------------------------------------------------------------------------------


def test_histogram_counts_match_numpy_and_nan_inf_apart(run, cap):
    rng = np.random.default_rng(3)
    x = rng.normal(size=10_000)
    dirty = np.concatenate([x, [np.nan, np.nan, np.inf, -np.inf, -np.inf, -np.inf]])
    run.log_histogram("w", dirty, bins=20, epoch=4)
    ev = one(run, cap, "w")
    counts, edges = np.histogram(x, bins=20)
    assert ev.kind == "histogram" and ev.epoch == 4 and ev.file is None and ev.width is None
    assert ev.data["counts"] == counts.tolist()
    assert np.allclose(ev.data["edges"], edges)
    assert ev.data["min"] == x.min() and ev.data["max"] == x.max() and ev.data["count"] == 10_000
    assert (ev.data["nan"], ev.data["pos_inf"], ev.data["neg_inf"]) == (2, 1, 3)


@pytest.mark.parametrize("values", [
    [1, 2, 2, 3], (1.0, 2.0, 2.0, 3.0), np.array([1, 2, 2, 3], np.int8), torch.tensor([1.0, 2.0, 2.0, 3.0]),
    torch.tensor([[1, 2], [2, 3]]), pd.Series([1, 2, 2, 3]), pl.Series([1, 2, 2, 3]),
    torch.tensor([1.0, 2.0, 2.0, 3.0], dtype=torch.bfloat16),
])
def test_histogram_input_forms(run, cap, values):
    run.log_histogram("h", values, bins=2)
    d = one(run, cap, "h").data
    assert d["counts"] == [1, 3] and d["edges"] == [1.0, 2.0, 3.0] and d["count"] == 4


def test_histogram_edges_constant_and_empty(run, cap):
    run.log_histogram("edges", [0.5, 1.5, 1.5, 9.0, 2.0], bins=[0, 1, 2, 3])  # 9.0 is outside the edges
    d = one(run, cap, "edges").data
    assert d["edges"] == [0.0, 1.0, 2.0, 3.0] and d["counts"] == [1, 2, 1] and d["max"] == 9.0
    run.log_histogram("const", np.full(7, 2.0), bins=4)
    d = one(run, cap, "const").data
    assert sum(d["counts"]) == 7 and d["edges"][0] == 1.5 and d["edges"][-1] == 2.5
    run.log_histogram("empty", np.array([np.nan]))
    d = one(run, cap, "empty").data
    assert (d["counts"], d["count"], d["nan"], d["min"]) == ([], 0, 1, None)


def test_histogram_binned_on_torch_matches_numpy():
    """The device path (used for CUDA tensors) gives numpy's counts; run here on the CPU device."""
    from trackhooks.media import _histogram_numpy, _histogram_torch

    x = torch.randn(50_000, dtype=torch.float64)
    x[::1000] = float("nan")
    x[1] = float("inf")
    for bins in (64, (-1.0, 0.0, 0.5, 2.0)):
        a, b = _histogram_torch(x, bins), _histogram_numpy(x.numpy(), bins)
        assert a["counts"] == b["counts"] and a["count"] == b["count"] and a["nan"] == b["nan"] == 50
        assert a["pos_inf"] == 1 and np.allclose(a["edges"], b["edges"]) and a["min"] == b["min"]
    const = torch.full((5,), 3.0)
    assert _histogram_torch(const, 4)["counts"] == _histogram_numpy(const.numpy(), 4)["counts"] == [0, 0, 5, 0]
    assert _histogram_torch(torch.tensor([float("nan")]), 8) == _histogram_numpy(np.array([np.nan]), 8)


def test_histogram_copied_at_the_call(run, cap):
    a = np.zeros(10)
    run.log_histogram("h", a, bins=1)
    a[:] = np.nan
    assert one(run, cap, "h").data["count"] == 10


@pytest.mark.parametrize("bad,bins,err", [
    (["a", "b"], 64, InvalidValueError),
    ([1, None], 64, InvalidValueError),
    ("123", 64, InvalidValueError),
    ({"a": 1}, 64, InvalidValueError),
    (np.array([1 + 2j]), 64, InvalidValueError),
    (np.array(["x"]), 64, InvalidValueError),
    (torch.tensor([1 + 1j]), 64, InvalidValueError),
    ([1.0], 0, InvalidMediaError),
    ([1.0], 10**9, InvalidMediaError),
    ([1.0], [1, 1], InvalidMediaError),
    ([1.0], [2, 1], InvalidMediaError),
    ([1.0], [1], InvalidMediaError),
    ([1.0], "ten", InvalidValueError),
    ([1.0], True, InvalidValueError),
])
def test_bad_histograms(run, cap, bad, bins, err):
    with pytest.raises(err) as e:
        run.log_histogram("hist_key", bad, bins=bins)
    assert isinstance(e.value, TrackhooksError) and "hist_key" in str(e.value)
    run.flush()
    assert cap.of("hist_key") == []


# ---- tables ------------------------------------------------------------------------------------

EXPECTED = {"columns": ["name", "score", "ok"], "rows": [["a", 1.5, True], ["b", 2.0, False]]}


@pytest.mark.parametrize("data", [
    [{"name": "a", "score": 1.5, "ok": True}, {"name": "b", "score": 2.0, "ok": False}],
    {"name": ["a", "b"], "score": np.array([1.5, 2.0]), "ok": (True, False)},
    {"name": pd.Series(["a", "b"]), "score": torch.tensor([1.5, 2.0]), "ok": np.array([True, False])},
    pd.DataFrame({"name": ["a", "b"], "score": [1.5, 2.0], "ok": [True, False]}),
    pl.DataFrame({"name": ["a", "b"], "score": [1.5, 2.0], "ok": [True, False]}),
    [("a", 1.5, True), ["b", 2.0, False]],
])
def test_table_forms(run, cap, data):
    run.log_table("tbl", data)
    ev = one(run, cap, "tbl")
    if isinstance(data, list) and not isinstance(data[0], dict):
        assert ev.data == {"columns": ["0", "1", "2"], "rows": EXPECTED["rows"]}
    else:
        assert ev.data == EXPECTED
    assert type(ev.data["rows"][0][1]) is float and type(ev.data["rows"][0][2]) is bool


def test_table_cells_and_copies(run, cap):
    import datetime

    rows = [{"n": np.int64(3), "f": np.float32(0.5), "d": datetime.date(2024, 1, 2), "o": object, "x": None,
             "nan": float("nan")}]
    run.log_table("cells", rows)
    rows[0]["n"] = 99  # the record was copied at the call
    d = one(run, cap, "cells").data
    assert d["rows"][0][:4] == [3, 0.5, "2024-01-02", "<class 'object'>"] and d["rows"][0][4] is None
    assert type(d["rows"][0][0]) is int and math.isnan(d["rows"][0][5])
    df = pd.DataFrame({"a": [1, 2]})
    run.log_table("df", df)
    df.loc[0, "a"] = 100
    assert one(run, cap, "df").data["rows"] == [[1], [2]]
    run.log_table("empty", [])
    assert one(run, cap, "empty").data == {"columns": [], "rows": []}


@pytest.mark.parametrize("bad,err", [
    ([{"a": 1}, {"a": 2, "b": 3}], InvalidShapeError),
    ([{"a": 1}, {"b": 2}], InvalidShapeError),
    ([{"a": 1}, [1]], InvalidShapeError),
    ([[1, 2], [3]], InvalidShapeError),
    ({"a": [1, 2], "b": [1]}, InvalidShapeError),
    ({"a": np.zeros((2, 2))}, InvalidShapeError),
    ({"a": 5}, InvalidValueError),
    ({"a": "text"}, InvalidValueError),
    (pd.DataFrame([[1, 2]], columns=["a", "a"]), InvalidMediaError),
    ("a,b\n1,2", InvalidValueError),
    (42, InvalidValueError),
    ([1, 2, 3], InvalidValueError),
])
def test_bad_tables(run, cap, bad, err):
    with pytest.raises(err) as e:
        run.log_table("table_key", bad)
    assert isinstance(e.value, TrackhooksError) and "table_key" in str(e.value)
    run.flush()
    assert cap.of("table_key") == []


# ---- confusion matrices ------------------------------------------------------------------------


def test_confusion_matrix_counts_rows_true_columns_predicted(run, cap):
    run.log_confusion_matrix("cm", [0, 1, 1, 2, 2, 2], np.array([0, 1, 2, 2, 2, 0]), epoch=1)
    ev = one(run, cap, "cm")
    assert ev.kind == "confusion_matrix" and ev.epoch == 1
    assert ev.data == {"labels": [0, 1, 2], "matrix": [[1, 0, 0], [0, 1, 1], [1, 0, 2]]}
    from sklearn.metrics import confusion_matrix

    assert ev.data["matrix"] == confusion_matrix([0, 1, 1, 2, 2, 2], [0, 1, 2, 2, 2, 0]).tolist()


def test_confusion_matrix_labels_order_strings_tensors(run, cap):
    run.log_confusion_matrix("s", ["cat", "dog", "dog"], ["dog", "dog", "cat"], labels=["dog", "cat", "bird"])
    assert one(run, cap, "s").data == {"labels": ["dog", "cat", "bird"], "matrix": [[1, 1, 0], [1, 0, 0], [0, 0, 0]]}
    t, p = torch.tensor([1, 0, 1]), torch.tensor([1, 1, 1])
    run.log_confusion_matrix("t", t, p, labels=np.array([0, 1]))
    t[:] = 0
    assert one(run, cap, "t").data == {"labels": [0, 1], "matrix": [[0, 1], [0, 2]]}
    run.log_confusion_matrix("series", pd.Series([1, 2]), pd.Series([2, 2]))
    assert one(run, cap, "series").data == {"labels": [1, 2], "matrix": [[0, 1], [0, 1]]}


@pytest.mark.parametrize("dtype", ["int64", "int8", "uint8", "uint32", "bool"])
@pytest.mark.parametrize("with_labels", ["none", "given", "unordered with an unused one"])
def test_integer_confusion_matrices_count_as_the_python_loop_does(run, cap, dtype, with_labels):
    # numpy arrays of integer labels are counted by numpy on the writer; lists of the same labels
    # go through the per-pair loop: both must give the same record
    rng = np.random.default_rng(len(dtype) + len(with_labels))
    values = np.array([0, 1] if dtype == "bool" else ([3, 7, 250] if dtype.startswith("u") else [-5, 0, 9, 100]))
    yt = rng.choice(values, 300).astype(dtype)
    yp = rng.choice(values, 300).astype(dtype)
    labels = None
    if with_labels == "given":
        labels = sorted(values.astype(dtype).tolist())
    elif with_labels != "none":
        labels = [*reversed(values.astype(dtype).tolist()), *([] if dtype == "bool" else [42])]
    run.log_confusion_matrix("fast", yt, yp, labels=labels)
    run.log_confusion_matrix("loop", yt.tolist(), yp.tolist(), labels=labels)
    fast, loop = one(run, cap, "fast").data, one(run, cap, "loop").data
    assert fast == loop
    assert sum(map(sum, fast["matrix"])) == 300
    assert [type(v) for v in fast["labels"]] == [type(v) for v in loop["labels"]]
    from trackhooks import media

    counted = media._integer_counts("array", yt, "array", yp, labels)
    assert (counted is not None) == (dtype != "bool" or labels is None)  # given bool labels take the loop
    if counted is not None:
        assert counted.data == fast


@pytest.mark.parametrize("yt,yp,labels,err", [
    ([0, 1, 1], [0, 1], None, InvalidShapeError),
    (np.zeros(3), torch.zeros(4), None, InvalidShapeError),
    (np.zeros((3, 2)), np.zeros((3, 2)), None, InvalidShapeError),
    ([0, 1, 2], [0, 1, 1], [0, 1], InvalidMediaError),
    ([0, 1], [0, 5], [0, 1], InvalidMediaError),
    (np.array([0, 1]), np.array([0, 7]), [0, 1], InvalidMediaError),
    (torch.tensor([0, 1]), torch.tensor([0, 7]), [0, 1], InvalidMediaError),
    ([0, 1], [0, 1], [0, 0, 1], InvalidMediaError),
    ([0, 1], [0, 1], [], InvalidMediaError),
    ([0, 1], [0, 1], "01", InvalidValueError),
    ("ab", "ab", None, InvalidValueError),
    (5, [5], None, InvalidValueError),
])
def test_bad_confusion_matrices(run, cap, yt, yp, labels, err):
    with pytest.raises(err) as e:
        run.log_confusion_matrix("cm_key", yt, yp, labels=labels)
    assert isinstance(e.value, TrackhooksError) and "cm_key" in str(e.value)
    run.flush()
    assert cap.of("cm_key") == []


# ---- curves ------------------------------------------------------------------------------------


def test_curve_forms(run, cap):
    fpr, tpr = np.array([0.0, 0.2, 1.0]), torch.tensor([0.0, 0.7, 1.0], dtype=torch.float64)
    run.log_curve("roc", fpr, tpr, x_label="fpr", y_label="tpr")
    fpr[:] = 9
    ev = one(run, cap, "roc")
    assert ev.data == {"x": [0.0, 0.2, 1.0], "y": [0.0, 0.7, 1.0], "x_label": "fpr", "y_label": "tpr"}
    run.log_curve("lists", [1, 2], (3, 4))
    assert one(run, cap, "lists").data == {"x": [1.0, 2.0], "y": [3.0, 4.0], "x_label": "x", "y_label": "y"}


@pytest.mark.parametrize("x,y,kw,err", [
    ([1, 2, 3], [1, 2], {}, InvalidShapeError),
    (np.zeros((2, 2)), np.zeros((2, 2)), {}, InvalidShapeError),
    (["a", "b"], [1, 2], {}, InvalidValueError),
    ([1, 2], [1, None], {}, InvalidValueError),
    ([1, 2], [1, 2], {"x_label": 3}, InvalidValueError),
    ([1, 2], [1, 2], {"y_label": None}, InvalidValueError),
])
def test_bad_curves(run, cap, x, y, kw, err):
    with pytest.raises(err) as e:
        run.log_curve("curve_key", x, y, **kw)
    assert isinstance(e.value, TrackhooksError) and "curve_key" in str(e.value)
    run.flush()
    assert cap.of("curve_key") == []


# ---- keys, steps, lifecycle --------------------------------------------------------------------


@pytest.mark.parametrize("key,err", [("", InvalidKeyError), ("  ", InvalidKeyError), ("a\x00b", InvalidKeyError),
                                     ("k" * 1001, InvalidKeyError), (None, TypeError), (3, TypeError)])
def test_invalid_keys(run, cap, key, err):
    for call in (lambda: run.log_image(key, np.zeros((2, 2), np.uint8)), lambda: run.log_histogram(key, [1.0]),
                 lambda: run.log_table(key, []), lambda: run.log_confusion_matrix(key, [1], [1]),
                 lambda: run.log_curve(key, [1], [1])):
        with pytest.raises(err) as e:
            call()
        assert isinstance(e.value, TrackhooksError)
    run.flush()
    assert cap.media == []


def test_steps_per_key_like_metrics_and_bad_steps(run, cap):
    run.log_metric("h", 1.0)  # a metric of the same name has its own counter
    run.log_histogram("h", [1.0])
    run.log_histogram("h", [1.0], step=10)
    run.log_histogram("h", [1.0])
    run.log_histogram("other", [1.0])
    run.log_table("tab", [])
    run.log_table("tab", [], step=np.int64(4))
    with pytest.raises(InvalidValueError):
        run.log_histogram("h", [1.0], step=1.5)
    with pytest.raises(InvalidValueError):
        run.log_image("im", np.zeros((2, 2), np.uint8), epoch="one")
    run.flush()
    assert [m.step for m in cap.of("h")] == [0, 10, 11]
    assert [m.step for m in cap.of("other")] == [0] and [m.step for m in cap.of("tab")] == [0, 4]
    assert all(m.time > 0 for m in cap.media)


def test_one_kind_per_key(run, cap):
    run.log_histogram("k", [1.0])
    with pytest.raises(InvalidMediaError, match="histogram"):
        run.log_image("k", np.zeros((2, 2), np.uint8))


def test_finished_run_refuses_media(store_path, cap):
    r = trackhooks.start_run(mirrors=[cap])
    r.finish()
    with pytest.raises(trackhooks.RunFinishedError):
        r.log_histogram("h", [1.0])


def test_unreadable_image_file_is_skipped_with_a_warning(run, cap, tmp_path):
    bad = tmp_path / "broken.gif"
    bad.write_bytes(b"not an image at all")
    run.log_image("broken", bad)
    run.log_image("fine", np.zeros((2, 2), np.uint8))
    with pytest.warns(RuntimeWarning, match="broken"):
        run.flush()
    assert cap.of("broken") == [] and len(cap.of("fine")) == 1
    run.log_image("broken", np.zeros((2, 2), np.uint8))
    run.flush()
    assert [m.step for m in cap.of("broken")] == [0]  # a skipped record takes no step


DRAIN = r"""
import json, sys
import numpy as np
import trackhooks
from trackhooks.sink import Sink

class ToFile(Sink):
    name = "to-file"
    def __init__(self, path):
        self.f = open(path, "a")
    def write(self, batch):
        for m in batch.media:
            self.f.write(json.dumps({"key": m.key, "kind": m.kind, "step": m.step, "w": m.width}) + "\n")
        self.f.flush()

run = trackhooks.start_run(mirrors=[ToFile(sys.argv[1])])
for i in range(20):
    run.log_image("img", np.full((16, 16, 3), i, np.uint8))
    run.log_histogram("h", np.arange(1000.0) * i)
run.log_table("t", [{"a": 1}])
# no finish(), no flush(): the interpreter exit drains everything
"""


def test_process_exit_without_finish_drains_media(tmp_path):
    out = tmp_path / "media.jsonl"
    env = {**os.environ, "TRACKHOOKS_URI": str(tmp_path / "store"), "TRACKHOOKS_FLUSH_INTERVAL": "60"}
    subprocess.run([sys.executable, "-c", DRAIN, str(out)], env=env, check=True, timeout=120)
    import json

    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["step"] for g in got if g["key"] == "img"] == list(range(20))
    assert all(g["w"] == 16 for g in got if g["key"] == "img")
    assert [g["step"] for g in got if g["key"] == "h"] == list(range(20))
    assert [g["kind"] for g in got if g["key"] == "t"] == ["table"]


def test_import_trackhooks_imports_no_media_library():
    code = ("import sys, trackhooks; r = trackhooks.Run; "
            "print(sorted(m for m in ('numpy', 'torch', 'PIL', 'matplotlib', 'pandas', 'polars') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tensors_are_copied_without_leaving_their_device(run, cap):
    """The caller's thread only clones tensors: no .cpu()/.numpy()/.item()/.tolist() (each of those
    would be a host sync for a GPU tensor). Recorded with a TorchFunctionMode (thread-local)."""
    from torch.overrides import TorchFunctionMode

    class Calls(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.names.append(getattr(func, "__name__", str(func)))
            return func(*args, **(kwargs or {}))

    img, values = torch.rand(3, 8, 8), torch.randn(1000)
    with Calls() as calls:
        run.log_image("t_img", img)
        run.log_histogram("t_hist", values)
        run.log_curve("t_curve", values[:10], values[10:20])
        run.log_table("t_table", {"a": values[:3]})
    assert "clone" in calls.names
    assert not {"cpu", "numpy", "item", "tolist", "to", "__array__"} & set(calls.names), calls.names
    run.flush()
    assert pixels(one(run, cap, "t_img")).shape == (8, 8, 3)
    assert one(run, cap, "t_hist").data["count"] == 1000


def test_media_memory_bound_slows_the_caller_and_loses_nothing(run, cap, monkeypatch):
    from trackhooks import writer

    monkeypatch.setattr(writer, "MAX_MEDIA_BYTES", 1 << 20)
    w = writer.get_writer()
    img = np.zeros((300, 340, 3), np.uint8)  # ~300 KB per copy: the bound is crossed every 4 images
    for i in range(20):
        img[0, 0, 0] = i
        run.log_image("bounded", img)
        assert w.media_bytes <= (1 << 20) + img.nbytes  # never far beyond the bound
    run.flush()
    got = cap.of("bounded")
    assert [m.step for m in got] == list(range(20)) and len({m.sha256 for m in got}) == 20
    assert w.media_bytes == 0
