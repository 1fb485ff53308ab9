"""Rich records: images, figures, histograms, tables, confusion matrices and curves.

Two halves, one per thread:

- ``prepare_*`` run on the caller's (training) thread. They validate cheaply (shape, dtype, lengths,
  keys) and copy the input so that later changes to it do not change the record: a numpy array is
  copied, a torch tensor is copied *on its device* with ``detach().clone()`` (no host sync), a PIL
  image is copied, a path is only checked. The one exception is a matplotlib figure, which is drawn
  and its RGBA pixels copied here, because matplotlib is not thread-safe. Each returns a
  :class:`Job` for the writer.
- :func:`build` runs on the writer thread: PNG encoding (Pillow), float-to-uint8 conversion, layout
  changes, histogram binning, table normalisation, confusion-matrix counting. It returns the
  JSON-able ``data`` and the encoded file of a :class:`~trackhooks.sink.MediaEvent`.

Nothing here imports numpy, torch, PIL, pandas, polars or matplotlib at module level: inputs are
duck-typed (``shape``/``dtype``, ``detach``/``clone``, the PIL and frame modules by name), and numpy
is imported only when the input is not already an array (a list, say) or on the writer thread.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import os
import struct
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import (
    InvalidMediaError,
    InvalidShapeError,
    InvalidValueError,
    MissingExtraError,
    short_repr,
)
from .values import check_key, check_source

KINDS = ("image", "figure", "histogram", "table", "confusion_matrix", "curve")
MAX_BINS = 10_000
DEFAULT_BINS = 64
_CHANNELS = (1, 3, 4)
_IMAGE_SUFFIXES_KEPT = (".png", ".jpg", ".jpeg")
_TORCH_IMAGE_DTYPES = {"torch.uint8": "u", "torch.bool": "b", "torch.float16": "f", "torch.bfloat16": "f",
                       "torch.float32": "f", "torch.float64": "f"}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Job:
    """What the caller hands to the writer for one record: ``kind`` and a payload for build().

    Plain slotted classes, not NamedTuples: a typing.NamedTuple costs ~0.2 ms to define (it compiles
    its ``__new__``), and this module is imported by every integration's set-up (``prepare_runs``)."""

    __slots__ = ("kind", "form", "payload", "extra")

    def __init__(self, kind: str, form: str, payload: Any, extra: Any = None):
        # form: how the payload is held ("array", "torch", "pil", "path", "rgba", ...)
        self.kind, self.form, self.payload, self.extra = kind, form, payload, extra


class Built:
    __slots__ = ("data", "file", "sha256", "ext", "width", "height")

    def __init__(self, data: dict[str, Any], file: bytes | None = None, sha256: str | None = None,
                 ext: str | None = None, width: int | None = None, height: int | None = None):
        self.data, self.file, self.sha256, self.ext, self.width, self.height = data, file, sha256, ext, width, height


# ---------------------------------------------------------------------------------------------
# duck typing


def _module(x: Any) -> str:
    return type(x).__module__ or ""


def _is_torch(x: Any) -> bool:
    return _module(x).startswith("torch") and hasattr(x, "detach") and hasattr(x, "clone")


def _is_pil(x: Any) -> bool:
    return _module(x).startswith("PIL.") and hasattr(x, "getbands") and hasattr(x, "copy")


def _is_array(x: Any) -> bool:
    """A numpy (or numpy-like) ndarray: shape, dtype with a kind, and copy()."""
    shape = getattr(x, "shape", None)
    kind = getattr(getattr(x, "dtype", None), "kind", None)
    return shape is not None and not callable(shape) and isinstance(kind, str) and callable(getattr(x, "copy", None))


def _is_frame(x: Any, lib: str) -> bool:
    return _module(x).split(".")[0] == lib and hasattr(x, "columns")


def _np():
    try:
        import numpy
    except ImportError:
        raise MissingExtraError("rich records of lists, figures and images need numpy, which is not installed; "
                                "install it with: pip install 'trackhooks[media]'") from None
    return numpy


_pillow_ok: bool | None = None


def require_pillow(key: str, what: str) -> None:
    """Raise MissingExtraError at the call (not later on the writer) when Pillow is not installed."""
    global _pillow_ok
    if _pillow_ok:
        return
    try:
        import PIL  # noqa: F401 - the package's __init__ is tiny; PIL.Image loads on the writer

        _pillow_ok = True
    except ImportError:
        _pillow_ok = None  # checked again next time: it may be installed meanwhile
        raise MissingExtraError(
            f"{what} {key!r}: encoding images needs Pillow, which is not installed; "
            "install it with: pip install 'trackhooks[media]'") from None


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in x.shape)


# ---------------------------------------------------------------------------------------------
# caller side


def check_media_key(key: Any, what: str) -> str:
    return check_key(key, f"{what} key")


def _image_layout(key: str, shape: tuple[int, ...], channels_first: bool, what: str) -> str:
    """"HW", "HWC" or "CHW"; InvalidShapeError naming the key otherwise."""
    if len(shape) == 2 and all(shape):
        return "HW"
    if len(shape) == 3 and all(shape):
        first, last = shape[0] in _CHANNELS, shape[-1] in _CHANNELS
        if channels_first and first:
            return "CHW"
        if last:
            return "HWC"
        if first:
            return "CHW"
    raise InvalidShapeError(
        f"{what} {key!r}: an image must be HxW, HxWxC or CxHxW with C in 1, 3, 4 and no empty dimension; "
        f"got shape {shape}")


def prepare_image(key: str, image: Any, caption: Any = None) -> Job:
    if caption is not None and not isinstance(caption, str):
        raise InvalidValueError(f"image {key!r}: caption must be a str or None, got {short_repr(caption)}")
    if isinstance(image, (str, os.PathLike)):
        path = check_source(image, f"image {key!r}", allow_dir=False)
        if not path.lower().endswith(_IMAGE_SUFFIXES_KEPT):
            require_pillow(key, "image")  # other formats are converted to PNG
        return Job("image", "path", path, caption)
    if _is_pil(image):
        return Job("image", "pil", image.copy(), caption)
    if _is_torch(image):
        dt = str(image.dtype)
        if dt not in _TORCH_IMAGE_DTYPES:
            raise InvalidValueError(f"image {key!r}: tensor dtype {dt} is not an image type "
                                    "(uint8, bool, or float in [0, 1])")
        layout = _image_layout(key, _shape(image), True, "image")
        require_pillow(key, "image")
        # copied on its device: no host sync here; the writer moves it to the host
        return Job("image", "torch", image.detach().clone(), (caption, layout))
    if not _is_array(image):
        if isinstance(image, (list, tuple)):
            try:
                image = _np().asarray(image)
            except Exception as exc:
                raise InvalidShapeError(f"image {key!r}: a nested list is not a rectangular array ({exc})") from None
        else:
            raise InvalidValueError(
                f"image {key!r}: expected a numpy array, torch tensor, PIL image or a PNG/JPEG path, got "
                f"{type(image).__name__}: {short_repr(image)}")
    dtype = image.dtype
    if not ((dtype.kind == "u" and dtype.itemsize == 1) or dtype.kind in "fb"):
        raise InvalidValueError(f"image {key!r}: dtype {dtype} is not an image type (uint8, bool, or float in [0, 1])")
    layout = _image_layout(key, _shape(image), False, "image")
    require_pillow(key, "image")
    return Job("image", "array", image.copy(), (caption, layout))


def prepare_figure(key: str, figure: Any) -> Job:
    canvas = getattr(figure, "canvas", None)
    if canvas is None or not callable(getattr(figure, "savefig", None)):
        raise InvalidValueError(f"figure {key!r}: expected a matplotlib Figure, got {type(figure).__name__}: "
                                f"{short_repr(figure)}")
    # matplotlib is not thread-safe: draw here, on the caller's thread, and hand the writer a copy of
    # the pixels (the figure stays open and unchanged)
    buffer_rgba = getattr(canvas, "buffer_rgba", None)
    if callable(buffer_rgba):
        try:
            canvas.draw()
            rgba = _np().asarray(buffer_rgba()).copy()
            require_pillow(key, "figure")
            return Job("figure", "rgba", rgba)
        except MissingExtraError:
            raise
        except Exception:
            pass  # a canvas without an Agg buffer after all: fall back to savefig
    import io

    buf = io.BytesIO()
    try:
        figure.savefig(buf, format="png")
    except Exception as exc:
        raise InvalidValueError(f"figure {key!r}: could not be rendered ({type(exc).__name__}: {exc})") from None
    return Job("figure", "png", buf.getvalue())


def _numeric_copy(key: str, values: Any, what: str, allow_bool: bool = True) -> tuple[str, Any]:
    """("torch", tensor copy) or ("array", numpy copy) of numeric data; InvalidValueError otherwise."""
    if _is_torch(values):
        dt = str(values.dtype)
        if "complex" in dt or (dt == "torch.bool" and not allow_bool) or dt.startswith("torch.q"):
            raise InvalidValueError(f"{what} {key!r}: tensor dtype {dt} is not a real number type")
        return "torch", values.detach().clone()
    if not _is_array(values):
        to_numpy = getattr(values, "to_numpy", None)  # pandas/polars Series
        if callable(to_numpy) and not hasattr(values, "columns"):
            values = to_numpy()
        elif isinstance(values, (str, bytes, bytearray)) or isinstance(values, Mapping):
            raise InvalidValueError(f"{what} {key!r}: expected numbers, got {type(values).__name__}: "
                                    f"{short_repr(values)}")
        else:
            try:
                values = _np().asarray(values)
            except MissingExtraError:
                raise
            except Exception as exc:
                raise InvalidValueError(f"{what} {key!r}: not an array of numbers ({type(exc).__name__}: "
                                        f"{exc})") from None
            if values.dtype.kind in "biuf":
                return "array", values  # asarray of a Python object already made a new array
    kind = values.dtype.kind
    if kind not in "iuf" and not (allow_bool and kind == "b"):
        raise InvalidValueError(f"{what} {key!r}: values must be real numbers, got dtype {values.dtype} "
                                f"({short_repr(values)})")
    return "array", values.copy()


def _check_bins(key: str, bins: Any) -> Any:
    if isinstance(bins, (bool, str, bytes)):
        raise InvalidValueError(f"histogram {key!r}: bins must be an int or a sequence of edges, got {bins!r}")
    if isinstance(bins, int) or (hasattr(bins, "__index__") and not hasattr(bins, "__len__")):
        n = int(bins.__index__()) if not isinstance(bins, int) else bins
        if not 1 <= n <= MAX_BINS:
            raise InvalidMediaError(f"histogram {key!r}: bins must be between 1 and {MAX_BINS}, got {n}")
        return n
    try:
        edges = [float(e) for e in bins]
    except Exception:
        raise InvalidValueError(f"histogram {key!r}: bins must be an int or a sequence of edges, "
                                f"got {short_repr(bins)}") from None
    if len(edges) < 2 or any(not math.isfinite(e) for e in edges) or any(b <= a for a, b in zip(edges, edges[1:])):
        raise InvalidMediaError(f"histogram {key!r}: bin edges must be at least 2 finite, strictly increasing "
                                f"numbers, got {short_repr(edges)}")
    return tuple(edges)


def prepare_histogram(key: str, values: Any, bins: Any) -> Job:
    bins = _check_bins(key, bins)
    form, copy = _numeric_copy(key, values, "histogram")
    return Job("histogram", form, copy, bins)


def _column_copy(key: str, name: str, col: Any) -> Any:
    if _is_torch(col):
        return col.detach().clone()
    if _is_array(col):
        return col.copy()
    to_numpy = getattr(col, "to_numpy", None)
    if callable(to_numpy) and not hasattr(col, "columns"):
        return to_numpy().copy()
    if type(col) is list or type(col) is tuple:  # before the ABC checks: see values._flatten
        return list(col)
    if isinstance(col, (str, bytes, bytearray, Mapping)) or not isinstance(col, (Sequence, range)):
        raise InvalidValueError(f"table {key!r}: column {name!r} must be a sequence or array of cells, got "
                                f"{type(col).__name__}: {short_repr(col)}")
    return list(col)


def _length(x: Any) -> int:
    shape = getattr(x, "shape", None)
    if shape is not None and not callable(shape):
        if len(shape) != 1:
            return -1
        return int(shape[0])
    return len(x)


def prepare_table(key: str, data: Any) -> Job:
    if _is_frame(data, "pandas"):
        if not data.columns.is_unique:
            raise InvalidMediaError(f"table {key!r}: the DataFrame has duplicate column names")
        return Job("table", "pandas", data.copy(deep=True))
    if _is_frame(data, "polars"):
        return Job("table", "polars", data.clone())  # polars frames are immutable: cloning is cheap
    if isinstance(data, Mapping):
        cols: dict[str, Any] = {}
        n = None
        for name, col in data.items():
            name = str(name)
            c = _column_copy(key, name, col)
            m = _length(c)
            if m < 0:
                raise InvalidShapeError(f"table {key!r}: column {name!r} must be one-dimensional, got shape "
                                        f"{tuple(c.shape)}")
            if n is None:
                n, first = m, name
            elif m != n:
                raise InvalidShapeError(f"table {key!r}: columns have different lengths ({first!r} has {n} "
                                        f"rows, {name!r} has {m})")
            if name in cols:
                raise InvalidMediaError(f"table {key!r}: column {name!r} appears twice")
            cols[name] = c
        return Job("table", "columns", cols)
    if isinstance(data, (list, tuple)):
        if not data:
            return Job("table", "rows", ([], []))
        if isinstance(data[0], Mapping):
            names = list(data[0].keys())
            keyset = set(names)
            rows = []
            for i, row in enumerate(data):
                if not isinstance(row, Mapping):
                    raise InvalidShapeError(f"table {key!r}: row {i} is a {type(row).__name__}, not a mapping "
                                            "like row 0")
                if row.keys() != keyset:
                    missing = sorted(map(str, keyset - row.keys()))[:5]
                    extra = sorted(map(str, row.keys() - keyset))[:5]
                    raise InvalidShapeError(f"table {key!r}: row {i} has different columns than row 0 "
                                            f"(missing {missing}, extra {extra})")
                rows.append([row[c] for c in names])
            return Job("table", "rows", ([str(c) for c in names], rows))
        if isinstance(data[0], (list, tuple)):
            width = len(data[0])
            rows = []
            for i, row in enumerate(data):
                if not isinstance(row, (list, tuple)) or len(row) != width:
                    got = len(row) if isinstance(row, (list, tuple)) else type(row).__name__
                    raise InvalidShapeError(f"table {key!r}: ragged rows: row 0 has {width} cells, row {i} has {got}")
                rows.append(list(row))
            return Job("table", "rows", ([str(i) for i in range(width)], rows))
    raise InvalidValueError(
        f"table {key!r}: expected a list of dicts, a dict of columns, a list of equal-length rows or a "
        f"pandas/polars DataFrame, got {type(data).__name__}: {short_repr(data)}")


def _labels_copy(key: str, y: Any, what: str) -> tuple[str, Any]:
    if _is_torch(y):
        return "torch", y.detach().clone()
    if _is_array(y):
        return "array", y.copy()
    to_numpy = getattr(y, "to_numpy", None)
    if callable(to_numpy) and not hasattr(y, "columns"):
        return "array", to_numpy().copy()
    if isinstance(y, (str, bytes, bytearray, Mapping)) or not isinstance(y, (Sequence, range)):
        raise InvalidValueError(f"confusion matrix {key!r}: {what} must be a sequence or array of labels, got "
                                f"{type(y).__name__}: {short_repr(y)}")
    return "list", list(y)


def _plain(v: Any) -> Any:
    """A numpy/torch scalar as its Python value (labels compare and serialise as Python values)."""
    item = getattr(v, "item", None)
    if callable(item) and getattr(v, "shape", None) == ():
        try:
            return item()
        except Exception:
            return v
    return v


def _host_values(form: str, y: Any) -> list | None:
    """The distinct labels of host data (None for a tensor on an accelerator: checked on the writer)."""
    if form == "torch":
        if str(getattr(y, "device", "cpu")) != "cpu":
            return None
        y = y.numpy() if str(y.dtype) != "torch.bfloat16" else y.float().numpy()
    if form in ("array", "torch"):
        try:
            return _np().unique(y).tolist()
        except TypeError:  # unorderable object arrays
            return list({_plain(v) for v in y.tolist()})
    return list({_plain(v) for v in y})


def prepare_confusion(key: str, y_true: Any, y_pred: Any, labels: Any) -> Job:
    ft, t = _labels_copy(key, y_true, "y_true")
    fp, p = _labels_copy(key, y_pred, "y_pred")
    nt, np_ = _length(t), _length(p)
    if nt < 0 or np_ < 0:
        raise InvalidShapeError(f"confusion matrix {key!r}: y_true and y_pred must be one-dimensional "
                                f"(got shapes {tuple(getattr(t, 'shape', ()))} and {tuple(getattr(p, 'shape', ()))})")
    if nt != np_:
        raise InvalidShapeError(f"confusion matrix {key!r}: y_true has {nt} labels but y_pred has {np_}")
    if labels is not None:
        if isinstance(labels, (str, bytes)) or not hasattr(labels, "__iter__"):
            raise InvalidValueError(f"confusion matrix {key!r}: labels must be a sequence, got {short_repr(labels)}")
        labels = [_plain(v) for v in (labels.tolist() if hasattr(labels, "tolist") else labels)]
        try:
            known = set(labels)
        except TypeError:
            raise InvalidValueError(f"confusion matrix {key!r}: labels must be hashable, "
                                    f"got {short_repr(labels)}") from None
        if len(known) != len(labels):
            raise InvalidMediaError(f"confusion matrix {key!r}: labels has duplicates: {short_repr(labels)}")
        if not labels:
            raise InvalidMediaError(f"confusion matrix {key!r}: labels is empty")
        for what, form, y in (("y_true", ft, t), ("y_pred", fp, p)):
            seen = _host_values(form, y)
            if seen is not None:
                unknown = [v for v in seen if v not in known]
                if unknown:
                    raise InvalidMediaError(f"confusion matrix {key!r}: {what} has labels not in labels: "
                                            f"{short_repr(unknown[:10])}")
    return Job("confusion_matrix", "labels", ((ft, t), (fp, p)), labels)


def prepare_curve(key: str, x: Any, y: Any, x_label: Any, y_label: Any) -> Job:
    for name, label in (("x_label", x_label), ("y_label", y_label)):
        if not isinstance(label, str):
            raise InvalidValueError(f"curve {key!r}: {name} must be a str, got {short_repr(label)}")
    fx, cx = _numeric_copy(key, x, "curve")
    fy, cy = _numeric_copy(key, y, "curve")
    nx, ny = _length(cx), _length(cy)
    if nx < 0 or ny < 0:
        raise InvalidShapeError(f"curve {key!r}: x and y must be one-dimensional (got shapes "
                                f"{tuple(cx.shape)} and {tuple(cy.shape)})")
    if nx != ny:
        raise InvalidShapeError(f"curve {key!r}: x has {nx} points but y has {ny}")
    return Job("curve", "xy", ((fx, cx), (fy, cy)), (x_label, y_label))


# ---------------------------------------------------------------------------------------------
# writer side


def build(job: Job) -> Built:
    """Turn a caller's Job into the stored form. Runs on the writer thread."""
    return _BUILDERS[job.kind](job)


def _to_host(form: str, x: Any):
    """numpy array of an "array" or "torch" payload (a device tensor is copied to the host here)."""
    if form == "torch":
        x = x.detach()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        return x.cpu().numpy()
    if form == "list":
        return _np().asarray(x, dtype=object) if x and not _all_numbers(x) else _np().asarray(x)
    return x


def _all_numbers(xs: list) -> bool:
    return all(type(v) in (int, float, bool) for v in xs)


def _encode_png(arr: Any) -> tuple[bytes, int, int]:
    import io

    from PIL import Image

    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    img = Image.fromarray(arr)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue(), img.width, img.height


def _as_uint8(arr: Any):
    np = _np()
    kind = arr.dtype.kind
    if kind == "b":
        return arr.astype(np.uint8) * 255
    if kind == "f":
        # documented coercion: values outside [0, 1] are clipped, NaN becomes 0
        out = np.nan_to_num(arr.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=0.0)
        np.clip(out, 0.0, 1.0, out=out)
        out *= 255.0
        out += 0.5
        return out.astype(np.uint8)
    return arr


def _file(data: bytes, ext: str, width: int, height: int, caption: str | None) -> Built:
    return Built({"caption": caption}, data, hashlib.sha256(data).hexdigest(), ext,
                 width, height)


def png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == _PNG_MAGIC and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    return None


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a JPEG's first start-of-frame marker (no decoder needed)."""
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        seg = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return int(w), int(h)
        i += 2 + seg
    return None


def _build_image(job: Job) -> Built:
    if job.form == "path":
        caption = job.extra
        with open(job.payload, "rb") as f:
            raw = f.read()
        size = png_size(raw)
        if size is not None:
            return _file(raw, "png", *size, caption)
        size = jpeg_size(raw)
        if size is not None:
            return _file(raw, "jpg", *size, caption)
        import io

        from PIL import Image

        with Image.open(io.BytesIO(raw)) as img:
            return _build_pil(img, caption)
    if job.form == "pil":
        return _build_pil(job.payload, job.extra)
    caption, layout = job.extra
    arr = _to_host(job.form, job.payload)
    if layout == "CHW":
        arr = arr.transpose(1, 2, 0)
    arr = _np().ascontiguousarray(_as_uint8(arr))
    data, w, h = _encode_png(arr)
    return _file(data, "png", w, h, caption)


def _build_pil(img: Any, caption: str | None) -> Built:
    import io

    if img.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return _file(buf.getvalue(), "png", img.width, img.height, caption)


def _build_figure(job: Job) -> Built:
    if job.form == "rgba":
        data, w, h = _encode_png(job.payload)
    else:
        data = job.payload
        w, h = png_size(data) or (None, None)
    return _file(data, "png", w, h, None)


def _build_histogram(job: Job) -> Built:
    bins = job.extra
    if job.form == "torch" and str(getattr(job.payload, "device", "cpu")) != "cpu":
        return Built(_histogram_torch(job.payload, bins))
    return Built(_histogram_numpy(_to_host(job.form, job.payload), bins))


def _histogram_numpy(a: Any, bins: Any) -> dict[str, Any]:
    np = _np()
    a = np.asarray(a).ravel()
    if a.dtype.kind == "b":
        a = a.astype(np.uint8)
    n_nan = n_pos = n_neg = 0
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        if not finite.all():
            n_nan = int(np.isnan(a).sum())
            n_pos = int(np.isposinf(a).sum())
            n_neg = int(np.isneginf(a).sum())
            a = a[finite]
    if a.size == 0:
        edges = list(bins) if isinstance(bins, tuple) else []
        counts = [0] * (len(edges) - 1) if edges else []
        return _hist_data(edges, counts, None, None, 0, n_nan, n_pos, n_neg)
    lo, hi = a.min().item(), a.max().item()
    if isinstance(bins, tuple):
        edges = np.asarray(bins, dtype=np.float64)
    else:
        if lo == hi:
            lo_e, hi_e = float(lo) - 0.5, float(hi) + 0.5
        else:
            lo_e, hi_e = float(lo), float(hi)
        edges = np.linspace(lo_e, hi_e, bins + 1)
    counts, edges = np.histogram(a, bins=edges)
    return _hist_data(edges.tolist(), counts.tolist(), float(lo), float(hi), int(a.size), n_nan, n_pos, n_neg)


def _histogram_torch(t: Any, bins: Any) -> dict[str, Any]:
    """Bin a device tensor on its device; one small copy to the host, whatever the tensor's size."""
    torch = sys.modules["torch"]
    x = t.detach().reshape(-1)
    if x.dtype == torch.bool:
        x = x.to(torch.uint8)
    if not x.is_floating_point():
        x = x.to(torch.float64)
    elif x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    nan = torch.isnan(x)
    pos = torch.isposinf(x)
    neg = torch.isneginf(x)
    finite = ~(nan | pos | neg)
    xf = x[finite]  # a data-dependent shape: the only implicit sync, on the writer thread
    n = xf.numel()
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    lo, hi = (xf.min(), xf.max()) if n else (zero, zero)
    if isinstance(bins, tuple):
        nb = len(bins) - 1
        edges = torch.tensor(bins, dtype=x.dtype, device=x.device)
        inside = (xf >= edges[0]) & (xf <= edges[-1])
        idx = (torch.bucketize(xf, edges, right=True) - 1).clamp(0, nb - 1)[inside]  # last bin closed, like numpy
        counts = torch.bincount(idx, minlength=nb)
    else:
        nb = bins
        if n:
            span = hi - lo
            base = torch.where(span > 0, lo, lo - 0.5)
            width = torch.where(span > 0, span, torch.ones_like(span))
            idx = ((xf - base) / width * nb).floor().clamp(0, nb - 1).to(torch.int64)
            counts = torch.bincount(idx, minlength=nb)
        else:
            counts = torch.zeros(nb, dtype=torch.int64, device=x.device)
    small = torch.cat([torch.stack([nan.sum(), pos.sum(), neg.sum()]).to(torch.float64),
                       torch.stack([lo, hi]).to(torch.float64), counts.to(torch.float64)])
    values = small.cpu().tolist()  # the one device-to-host copy
    n_nan, n_pos, n_neg = (int(v) for v in values[:3])
    lo_v, hi_v = values[3], values[4]
    cnt = [int(v) for v in values[5:]]
    if not n:
        edges_l = list(bins) if isinstance(bins, tuple) else []
        return _hist_data(edges_l, cnt if edges_l else [], None, None, 0, n_nan, n_pos, n_neg)
    if isinstance(bins, tuple):
        edges_l = list(bins)
    elif lo_v == hi_v:
        edges_l = _np().linspace(lo_v - 0.5, hi_v + 0.5, nb + 1).tolist()
    else:
        edges_l = _np().linspace(lo_v, hi_v, nb + 1).tolist()
    return _hist_data(edges_l, cnt, lo_v, hi_v, n, n_nan, n_pos, n_neg)


def _hist_data(edges, counts, lo, hi, n, n_nan, n_pos, n_neg) -> dict[str, Any]:
    return {"edges": edges, "counts": counts, "min": lo, "max": hi, "count": n,
            "nan": n_nan, "pos_inf": n_pos, "neg_inf": n_neg}


def cell(v: Any) -> Any:
    """A table cell as a JSON value: numbers, strings, bools and None as they are; numpy/torch
    scalars as their Python value; dates as ISO text; anything else as its repr (documented)."""
    t = type(v)
    if v is None or t in (str, int, float, bool):
        return v
    v = _plain(v)
    if v is None or isinstance(v, (str, bool)):
        return v if type(v) in (str, bool) else (bool(v) if isinstance(v, bool) else str(v))
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, (_dt.date, _dt.datetime, _dt.time)):
        return v.isoformat()
    if hasattr(v, "isoformat") and callable(v.isoformat):  # pandas Timestamp
        try:
            return v.isoformat()
        except Exception:
            pass
    return short_repr(v, limit=10_000)


def _build_table(job: Job) -> Built:
    if job.form == "pandas":
        df = job.payload
        columns = [str(c) for c in df.columns]
        rows = [[cell(v) for v in row] for row in df.itertuples(index=False, name=None)]
    elif job.form == "polars":
        df = job.payload
        columns = [str(c) for c in df.columns]
        rows = [[cell(v) for v in row] for row in df.rows()]
    elif job.form == "columns":
        cols = job.payload
        columns = list(cols)
        lists = []
        for c in cols.values():
            if _is_torch(c):
                c = _to_host("torch", c)
            if getattr(getattr(c, "dtype", None), "kind", None) in ("b", "i", "u", "f") and hasattr(c, "tolist"):
                lists.append(c.tolist())  # a numeric array's tolist() gives the JSON values already
            else:
                lists.append([cell(v) for v in (c.tolist() if hasattr(c, "tolist") else c)])
        rows = [list(row) for row in zip(*lists)] if lists else []
    else:
        columns, raw = job.payload
        rows = [[cell(v) for v in row] for row in raw]
    return Built({"columns": columns, "rows": rows})


def _label_list(form: str, y: Any) -> list:
    if form == "list":
        return [_plain(v) for v in y]
    return _to_host(form, y).tolist()


def _sort_labels(values: set) -> list:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=lambda v: (type(v).__name__, str(v)))


def _integer_counts(ft: str, t: Any, fp: str, p: Any, labels: list | None) -> Built | None:
    """The counts of integer labels of one dtype, counted by numpy (a Python loop over the pairs
    took ~0.4 ms of the writer per 1 800 labels, inside a short fit's finish()); None when the
    labels are anything else, or one is not in ``labels`` (the loop then says which)."""
    if ft == "list" or fp == "list":
        return None
    np = _np()
    yt, yp = _to_host(ft, t), _to_host(fp, p)
    dtype = getattr(yt, "dtype", None)
    if dtype is None or dtype != getattr(yp, "dtype", None) or dtype.kind not in "biu" \
            or (dtype.kind == "u" and dtype.itemsize == 8) or yt.ndim != 1 or yp.ndim != 1:
        return None
    if labels is None:
        found = np.unique(np.concatenate([yt, yp]))
        labels = found.tolist()
    elif not all(type(v) is int for v in labels) or dtype.kind == "b":
        return None
    else:
        found = np.asarray(labels, dtype=np.int64)
    order = np.argsort(found, kind="stable")
    ordered = found[order]
    n = len(labels)
    codes = []
    for y in (yt, yp):
        i = np.minimum(np.searchsorted(ordered, y), n - 1)
        if n == 0 or (ordered[i] != y).any():
            return None
        codes.append(order[i])
    matrix = np.bincount(codes[0] * n + codes[1], minlength=n * n).reshape(n, n).tolist()
    return Built({"labels": [cell(v) for v in labels], "matrix": matrix})


def _build_confusion(job: Job) -> Built:
    (ft, t), (fp, p) = job.payload
    fast = _integer_counts(ft, t, fp, p, job.extra)
    if fast is not None:
        return fast
    yt, yp = _label_list(ft, t), _label_list(fp, p)
    labels = job.extra
    if labels is None:
        labels = _sort_labels(set(yt) | set(yp))
    index = {v: i for i, v in enumerate(labels)}
    n = len(labels)
    matrix = [[0] * n for _ in range(n)]
    try:
        for a, b in zip(yt, yp):
            matrix[index[a]][index[b]] += 1
    except KeyError as exc:  # only for device tensors, whose labels could not be checked at the call
        raise InvalidMediaError(f"label {exc.args[0]!r} is not in labels") from None
    return Built({"labels": [cell(v) for v in labels], "matrix": matrix})


def _build_curve(job: Job) -> Built:
    (fx, x), (fy, y) = job.payload
    xs = _to_host(fx, x).astype("float64").tolist()
    ys = _to_host(fy, y).astype("float64").tolist()
    x_label, y_label = job.extra
    return Built({"x": xs, "y": ys, "x_label": x_label, "y_label": y_label})


_BUILDERS = {"image": _build_image, "figure": _build_figure, "histogram": _build_histogram,
             "table": _build_table, "confusion_matrix": _build_confusion, "curve": _build_curve}


__all__ = ["KINDS", "Job", "Built", "build", "prepare_image", "prepare_figure", "prepare_histogram",
           "prepare_table", "prepare_confusion", "prepare_curve", "require_pillow", "png_size", "jpeg_size"]
