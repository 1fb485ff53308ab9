"""Fit scikit-learn models on the digits data and record each fit as a trackhooks run.

1. track(): a Pipeline wrapped by the tracker, evaluated on held-out data with log_eval, model saved;
2. track() around a GridSearchCV: one parent run plus one child run per candidate;
3. autolog(): plain fits, an MLP with its loss curve and a cross_val_score, without touching the calls.

Runs go to $TRACKHOOKS_URI or ./.trackhooks; look at them with `trackhooks runs` / `trackhooks show RUN`.
"""

import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import trackhooks
from trackhooks_sklearn import autolog, log_eval, track

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
store = trackhooks.open_store

# 1. one tracked Pipeline: params per step, training metrics, data digests, the model as an artifact
pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(C=0.5, max_iter=2000))])
model = track(pipe, experiment="sklearn-digits", log_model=True).fit(X_train, y_train)
log_eval(model, X_test, y_test)  # test_accuracy, test_f1_macro, ... into the same run
rec = store().run(model.run_id_)
print(f"pipeline run {rec.id[:8]} {rec.status}: train_accuracy {rec.metric('train_accuracy').last:.3f}, "
      f"test_accuracy {rec.metric('test_accuracy').last:.3f}, clf.C={rec.params['clf.C']}, "
      f"datasets {[(d.name, d.context) for d in rec.datasets()]}, artifacts {[a.name for a in rec.artifacts()]}")

# 2. a tracked search: every candidate is a child run
search = track(GridSearchCV(pipe, {"clf__C": [0.01, 0.1, 1.0, 10.0]}, cv=3), experiment="sklearn-digits")
search.fit(X_train, y_train)
parent = store().run(search.run_id_)
print(f"search run {parent.id[:8]}: {len(parent.children())} candidates, best C={parent.params['best_params.clf.C']} "
      f"(mean CV accuracy {parent.metric('best_score').last:.3f}, child run {parent.tags['sklearn.best_run'][:8]})")

# 3. autolog: only the outermost fit records (a Pipeline is one run, cross_val_score is one run)
autolog(experiment="sklearn-digits")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    MLPClassifier(hidden_layer_sizes=(32,), max_iter=30, random_state=0).fit(X_train / 16, y_train)
scores = cross_val_score(LogisticRegression(max_iter=2000), X_train / 16, y_train, cv=3)
autolog(disable=True)

for r in store().runs(experiment="sklearn-digits")[-2:]:
    print(f"{r.id[:8]} {r.params['model.class']:<18} {r.tags['sklearn.kind']:<15} {r.status}: "
          f"{[k for k in r.metric_keys() if k in ('loss', 'train_accuracy', 'cv_test_score_mean')]}")
