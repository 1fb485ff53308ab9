"""What ``fit``/``evaluate`` were given: fit arguments as params, arrays as datasets, data objects by name.

Used by autolog, which sees the arguments of ``Model.fit``; a callback alone never does. Duck-typed:
nothing here imports torch, tensorflow or jax, so it works for whatever data the backend accepts.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator, Mapping
from typing import Any

#: Keras' own default when ``fit`` gets arrays and no batch_size
KERAS_DEFAULT_BATCH_SIZE = 32

#: fit arguments recorded as ``fit.<name>`` params as given (defaults included)
_PLAIN_ARGS = ("validation_split", "initial_epoch", "shuffle", "validation_steps", "validation_freq",
               "validation_batch_size")


class DataInfo:
    """Everything autolog learnt about one call: params, arrays to fingerprint, sample count."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.arrays: list[tuple[str, str, Any]] = []  # (context, name, array)
        self.n_samples: int | None = None


def _is_array(obj: Any) -> bool:
    shape = getattr(obj, "shape", None)
    return shape is not None and not callable(shape) and not isinstance(obj, type)


def _kind(obj: Any) -> str:
    """arrays | generator | pydataset | tfdata | dataloader | other (a data object known by name only)."""
    if _is_array(obj):
        return "arrays"
    if isinstance(obj, Mapping):
        return "arrays" if obj and all(_is_array(v) for v in obj.values()) else "other"
    if isinstance(obj, (list, tuple)):
        return "arrays" if obj and all(_is_array(v) for v in obj) else "other"
    if inspect.isgenerator(obj):
        return "generator"
    try:
        from keras.utils import PyDataset

        if isinstance(obj, PyDataset):
            return "pydataset"
    except ImportError:  # very old Keras 3 (Sequence): treated like any indexable data object below
        pass
    if hasattr(obj, "element_spec") and hasattr(obj, "cardinality"):
        return "tfdata"
    if hasattr(obj, "dataset") and hasattr(obj, "batch_size") and hasattr(obj, "__iter__"):
        return "dataloader"
    return "other"


def _named_arrays(obj: Any, name: str) -> list[tuple[str, Any]]:
    if obj is None:
        return []
    if isinstance(obj, Mapping):
        return [(f"{name}.{k}", v) for k, v in obj.items()]
    if isinstance(obj, (list, tuple)):
        return [(f"{name}.{i}", v) for i, v in enumerate(obj)]
    return [(name, obj)]


def _n_rows(arr: Any) -> int:
    return int(arr.shape[0])


def _rows(arr: Any, start: int | None, stop: int | None) -> Any:
    iloc = getattr(arr, "iloc", None)  # pandas: positional rows, as Keras' own split does
    return iloc[start:stop] if iloc is not None else arr[start:stop]


def _split(obj: Any, split_at: int, part: str) -> Any:
    """The rows Keras trains on (part="train") or validates on ("validation") under validation_split."""
    if obj is None:
        return None
    sl = (None, split_at) if part == "train" else (split_at, None)
    if isinstance(obj, Mapping):
        return {k: _rows(v, *sl) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rows(v, *sl) for v in obj]
    return _rows(obj, *sl)


def _first_leaf(batch: Any) -> Any:
    while isinstance(batch, (list, tuple, Mapping)):
        if not batch:
            return None
        batch = next(iter(batch.values())) if isinstance(batch, Mapping) else batch[0]
    return batch


def _leading_dim(batch: Any) -> int | None:
    leaf = _first_leaf(batch)
    shape = getattr(leaf, "shape", None)
    try:
        return int(shape[0]) if shape is not None and shape[0] is not None else None
    except (TypeError, IndexError, ValueError):
        return None


def _cardinality(obj: Any, kind: str) -> int | None:
    try:
        if kind == "tfdata":
            n = int(obj.cardinality())
            return n if n >= 0 else None  # -1 infinite, -2 unknown
        if kind in ("pydataset", "dataloader") or (
                kind == "other" and not isinstance(obj, (Mapping, list, tuple, str, bytes))):
            return len(obj)
    except Exception:
        return None
    return None


def _peeked(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _peeked_empty() -> Iterator[Any]:
    return
    yield  # pragma: no cover


def _raising(exc: BaseException) -> Iterator[Any]:
    raise exc
    yield  # pragma: no cover - makes this a generator


def _batch_size(obj: Any, kind: str, args: dict[str, Any]) -> tuple[int | None, Any]:
    """The batch size Keras will use, and ``obj`` (a generator is replaced by one that replays the peek)."""
    given = args.get("batch_size")
    if kind == "arrays":
        return (given or KERAS_DEFAULT_BATCH_SIZE), obj
    if kind == "dataloader":
        bs = getattr(obj, "batch_size", None)
        return (bs if isinstance(bs, int) else None), obj
    if kind == "pydataset":
        return _leading_dim(obj[0]), obj
    if kind == "tfdata":
        import keras

        specs = keras.tree.flatten(obj.element_spec)
        return (_leading_dim(specs[0]) if specs else None), obj
    if kind == "generator":
        try:
            first = next(obj)
        except StopIteration:
            return None, _peeked_empty()
        except Exception as exc:  # fit would have hit it too: let it, on the same first next()
            return None, _raising(exc)
        return _leading_dim(first), _peeked(first, obj)
    return None, obj


def _data_object(info: DataInfo, obj: Any, kind: str, context: str) -> None:
    """A dataset/generator: recorded by type, name and cardinality (its content is not reachable)."""
    t = type(obj)
    info.params[f"dataset.{context}.type"] = f"{t.__module__}.{t.__qualname__}"
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        info.params[f"dataset.{context}.name"] = name
    card = _cardinality(obj, kind)
    if card is not None:
        info.params[f"dataset.{context}.cardinality"] = card


def describe_fit(args: dict[str, Any]) -> DataInfo:
    """Read the bound arguments of ``fit`` (defaults applied). May replace ``args["x"]`` (a peeked generator)."""
    info = DataInfo()
    p = info.params
    for k in _PLAIN_ARGS:
        if k in args:
            p[f"fit.{k}"] = args[k]
    p["fit.class_weight"] = args.get("class_weight") is not None
    p["fit.sample_weight"] = args.get("sample_weight") is not None
    x, y = args.get("x"), args.get("y")
    kind = _kind(x)
    bs, new_x = _batch_size(x, kind, args)
    if new_x is not x:
        args["x"] = new_x
    if bs is not None:
        p["fit.batch_size"] = bs
    vsplit = args.get("validation_split") or 0.0
    vdata = args.get("validation_data")
    if kind == "arrays":
        named = _named_arrays(x, "x") + _named_arrays(y, "y")
        n = _n_rows(named[0][1])
        if vsplit and vdata is None:
            split_at = int(math.floor(n * (1.0 - vsplit)))  # the same rule as keras' train_validation_split
            info.arrays += [("train", nm, a) for nm, a in
                            _named_arrays(_split(x, split_at, "train"), "x")
                            + _named_arrays(_split(y, split_at, "train"), "y")]
            info.arrays += [("validation", nm, a) for nm, a in
                            _named_arrays(_split(x, split_at, "validation"), "x")
                            + _named_arrays(_split(y, split_at, "validation"), "y")]
            n = split_at
        else:
            info.arrays += [("train", nm, a) for nm, a in named]
        steps = args.get("steps_per_epoch")
        if not args.get("batch_size"):  # Keras' ArrayDataAdapter rule
            p["fit.batch_size"] = int(math.ceil(n / steps)) if steps else KERAS_DEFAULT_BATCH_SIZE
        if steps is None:
            info.n_samples = n
    elif x is not None:
        _data_object(info, x, kind, "train")
    if vdata is not None:
        if isinstance(vdata, tuple) and vdata and _kind(vdata[0]) == "arrays":
            vx, vy = vdata[0], (vdata[1] if len(vdata) > 1 else None)
            info.arrays += [("validation", nm, a) for nm, a in _named_arrays(vx, "x") + _named_arrays(vy, "y")]
        else:
            _data_object(info, vdata, _kind(vdata), "validation")
    return info


def describe_evaluate(args: dict[str, Any]) -> DataInfo:
    """The data of an ``evaluate`` call, in context "test"."""
    info = DataInfo()
    x, y = args.get("x"), args.get("y")
    kind = _kind(x)
    if kind == "arrays":
        info.arrays += [("test", nm, a) for nm, a in _named_arrays(x, "x") + _named_arrays(y, "y")]
    elif x is not None and kind != "generator":  # peeking a generator here would buy nothing
        _data_object(info, x, kind, "test")
    elif x is not None:
        info.params["dataset.test.type"] = f"{type(x).__module__}.{type(x).__qualname__}"
    return info
