"""The core nesting rule (trackhooks.nesting, exposed in trackhooks.plugin) without any framework."""

from __future__ import annotations

import threading

import pytest

import trackhooks
from trackhooks.plugin import (
    InvalidOptionError,
    container,
    decide,
    mark_container,
    mark_owned,
    open_run,
    split_options,
    suppressed,
)


def runs(store_path):
    return trackhooks.open_store(store_path).runs()


def test_nothing_active_opens_an_owned_run_finished_by_close(store_path):
    opened = open_run("a", options={"experiment": "e", "name": "n", "params": {"lr": 0.1}})
    assert opened.owned and not opened.nested and opened.run.status == "running"
    opened.close()
    opened.close()  # idempotent
    (rec,) = runs(store_path)
    assert (rec.experiment, rec.name, rec.status, rec.params) == ("e", "n", "finished", {"lr": 0.1})


def test_inner_fit_of_another_integration_records_nothing(store_path):
    given = trackhooks.start_run()
    outer = open_run("sklearn", run=given)
    assert open_run("xgboost") is None and open_run("keras", options={"experiment": "x"}) is None
    assert decide("lightning") == ("none", None)
    assert open_run("xgboost", run=given) is None  # a run given to the inner fit does not change that
    outer.close()
    assert given.status == "running"  # not the fit's to finish
    given.finish()
    inner_after = open_run("xgboost")  # the outer fit is over: the next fit records again
    assert inner_after is not None and inner_after.owned
    inner_after.close()
    assert len(runs(store_path)) == 2  # given, inner_after


def test_a_stale_frame_of_the_same_integration_is_skipped(store_path):
    stale = open_run("keras")  # never closed: Keras did not report the end of a failed fit
    later = open_run("keras")
    assert later is not None and later.owned and later.run.id != stale.run.id
    assert later.run.parent_id is None  # an integration's own run is never taken for the user's
    later.close()
    assert open_run("xgboost") is None  # another integration still sees a fit in progress
    stale.close("failed")
    assert {r.status for r in runs(store_path)} == {"finished", "failed"}


def test_container_receives_inner_fits_and_is_not_finished(store_path):
    trial = trackhooks.start_run("study", "trial-0")
    mark_container(trial, "optuna")
    a = open_run("xgboost", options={"experiment": "ignored", "params": {"depth": 3}, "tags": {"t": "1"}})
    assert a.run is trial and not a.owned and a.nested
    assert a.log_params({"depth": 4, "eta": 0.1}) == ["depth"]  # the first value stays, one clash reported
    inner = open_run("sklearn")
    assert inner is None  # inside the xgboost fit (in the trial) nothing else records
    a.close()
    b = open_run("sklearn")  # a second fit in the same trial goes to the trial too
    assert b.run is trial
    b.close()
    assert trial.status == "running"
    trial.finish()
    (rec,) = runs(store_path)
    assert rec.params == {"depth": 3, "eta": 0.1} and rec.tags == {"t": "1"} and rec.experiment == "study"


def test_explicit_parent_opens_a_child_even_in_a_container(store_path):
    trial = trackhooks.start_run()
    mark_container(trial, "optuna")
    other = trackhooks.start_run()
    other.finish()
    with container(trial):
        opened = open_run("xgboost", options={"parent": other.id})
        assert opened.owned and opened.run.parent_id == other.id
        opened.close()
    trial.finish()


def test_container_window_inside_suppression_wins_and_frames_inside_it_win_over_it(store_path):
    search = open_run("sklearn")
    with suppressed():
        assert open_run("xgboost") is None
        with container(search.run):
            refit = open_run("xgboost")
            assert refit.run is search.run and not refit.owned
            refit.set_tags({"framework": "xgboost", "xgboost.api": "sklearn"})
            refit.close()
            with suppressed():  # a fold task inside the window
                assert open_run("xgboost") is None
    search.run.set_tags({"framework": "sklearn"})
    search.close()
    (rec,) = runs(store_path)
    assert rec.tags == {"framework": "sklearn", "xgboost.api": "sklearn"}  # the outer framework tag stays


def test_user_run_child_or_into(store_path):
    with trackhooks.start_run("mine") as user:
        child = open_run("sklearn")
        assert child.owned and child.run.parent_id == user.id and child.run.experiment == "default"
        child.close()
        into = open_run("keras", user_run="into")
        assert into.run is user and not into.owned
        into.close()
        with_options = open_run("keras", user_run="into", options={"name": "k"})
        assert with_options.owned and with_options.run.parent_id == user.id
        with_options.close()
    assert user.status == "finished"


def test_user_run_of_another_thread_is_found_but_owned_runs_are_not(store_path):
    study = trackhooks.start_run("study")
    mark_owned(study, "optuna")
    found = {}

    def worker():
        found["before"] = decide("xgboost")

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert found["before"] == ("new", None)
    user = trackhooks.start_run()
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert found["before"] == ("user", user)
    user.finish()
    study.finish()


def test_containers_are_per_thread(store_path):
    seen = {}
    barrier = threading.Barrier(2)

    def trial(i):
        run = trackhooks.start_run("s", f"trial-{i}")
        mark_container(run, "optuna")
        barrier.wait()  # both trials are running at once
        opened = open_run("xgboost")
        seen[i] = (run.id, opened.run.id)
        opened.close()
        run.finish()

    threads = [threading.Thread(target=trial, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a == b for a, b in seen.values()) and seen[0][0] != seen[1][0]
    assert len(runs(store_path)) == 2


def test_a_finished_run_leaves_the_thread_stack_even_from_another_thread(store_path):
    trial = trackhooks.start_run()
    mark_container(trial, "optuna")
    t = threading.Thread(target=trial.finish)
    t.start()
    t.join()
    assert decide("xgboost") == ("new", None)


def test_option_parsing_is_shared():
    own, run_opts = split_options({"log_model": True, "experiment": "e"}, ("log_model",), "Thing")
    assert own == {"log_model": True} and run_opts == {"experiment": "e"}
    with pytest.raises(InvalidOptionError, match="experimnt") as info:
        split_options({"experimnt": "e"}, (), "Thing")
    assert isinstance(info.value, TypeError) and isinstance(info.value, trackhooks.TrackhooksError)
    assert "resume" not in str(info.value)
    with pytest.raises(TypeError, match="user_run"):
        open_run("x", user_run="sideways")


# ---- many short children (an Optuna trial per child) ------------------------------------------------


def test_start_child_run_lands_in_the_parents_store_with_its_system_record(tmp_path):
    from trackhooks.plugin import start_child_run

    store = str(tmp_path / "s")
    parent = trackhooks.start_run("study", "p", store=store)
    child = start_child_run(parent, "trial-0", params={"x": 1.5}, tags={"k": "v"})
    child.log_metric("value", 2.0)
    child.finish(timeout=0)  # does not wait: recorded with the writer's next batch
    assert child.status == "finished"
    parent.finish()  # drains everything, the child's records included
    rec = trackhooks.open_store(store).run(child.id)
    assert (rec.experiment, rec.name, rec.parent_id, rec.status) == ("study", "trial-0", parent.id, "finished")
    assert rec.params == {"x": 1.5} and rec.tags == {"k": "v"} and rec.metric("value").values == [2.0]
    prec = trackhooks.open_store(store).run(parent.id)
    # facts the parent's background git check adds later (git.dirty, git.untracked...) may arrive
    # after the child copied the record: everything known when the child started is the same
    late = ("git.dirty", "git.untracked", "git.untracked_count")
    same = {k: v for k, v in prec.system.items() if k not in late}
    assert {k: v for k, v in rec.system.items() if k not in late} == same and rec.system.get("python")
    with pytest.raises(TypeError):
        start_child_run(parent.id)


def test_a_child_started_as_a_container_receives_fits_at_once(store_path):
    from trackhooks.plugin import start_child_run

    with trackhooks.start_run("study") as study:
        mark_owned(study, "optuna")
        trial = start_child_run(study, "trial-0", container="optuna")
        assert decide("xgboost") == ("into", trial)
        trial.finish()
        assert decide("xgboost") == ("new", None)  # the study's own run is never taken for the user's
