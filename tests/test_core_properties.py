"""Property-based round trips: whatever is accepted reads back exactly as logged."""

import math
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trackhooks

keys = st.text(min_size=1, max_size=30).filter(lambda k: not k.isspace() and "\x00" not in k)
steps = st.one_of(st.none(), st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
epochs = st.one_of(st.none(), st.integers(min_value=-(2**40), max_value=2**40))
values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(2**60), max_value=2**60),
                   st.booleans())
points = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), values, steps, epochs), max_size=60)
settings.register_profile("trackhooks", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile("trackhooks")


def same_float(a, b):
    return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))


@given(points)
def test_metric_points_round_trip(tmp_path_factory, pts):
    store = str(tmp_path_factory.mktemp("s"))
    expected = {}
    last = {}
    with trackhooks.start_run(store=store) as run:
        for key, value, step, epoch in pts:
            run.log_metric(key, value, step=step, epoch=epoch)
            s = min(last.get(key, -1) + 1, 2**63 - 1) if step is None else step
            last[key] = s
            expected.setdefault(key, []).append((s, epoch, float(value)))
    rec = trackhooks.open_store(store).run(run.id)
    assert sorted(rec.metric_keys()) == sorted(expected)
    for key, exp in expected.items():
        series = rec.metric(key)
        assert series.steps == [e[0] for e in exp]
        assert series.epochs == [e[1] for e in exp]
        assert all(same_float(a, e[2]) for a, e in zip(series.values, exp))


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**53), max_value=2**53),
                      st.floats(allow_nan=False), st.text(max_size=20))
nested = st.recursive(json_leaf, lambda children: st.dictionaries(keys.filter(lambda k: "." not in k), children,
                                                                  min_size=1, max_size=4), max_leaves=15)


@given(st.dictionaries(keys.filter(lambda k: "." not in k), nested, max_size=6))
def test_params_round_trip_flattened(tmp_path_factory, params):
    store = str(tmp_path_factory.mktemp("p"))
    with trackhooks.start_run(store=store, params=params) as run:
        pass

    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            full = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                out.update(flat(v, full))
            else:
                out[full] = v
        return out

    assert trackhooks.open_store(store).run(run.id).params == flat(params)


@given(st.dictionaries(keys, st.text(max_size=50), max_size=8))
def test_tags_round_trip(tmp_path_factory, tags):
    store = str(tmp_path_factory.mktemp("t"))
    with trackhooks.start_run(store=store, tags=tags) as run:
        pass
    assert trackhooks.open_store(store).run(run.id).tags == tags
