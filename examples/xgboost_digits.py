"""Train XGBoost on sklearn's digits three ways and record each training as a trackhooks run.

1. the sklearn API with an explicit TrackhooksCallback (early stopping, checkpoints, final model);
2. xgb.train with DMatrix data, recorded by autolog() without touching the call;
3. xgb.cv under autolog: mean and std of every metric per round.

Runs go to $TRACKHOOKS_URI or ./.trackhooks; look at them with `trackhooks runs` / `trackhooks show RUN`.
"""

import tempfile

import xgboost as xgb
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import trackhooks
from trackhooks_xgboost import TrackhooksCallback, autolog

X, y = load_digits(return_X_y=True)
X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)

# 1. sklearn API: one run per fit
callback = TrackhooksCallback(experiment="xgboost-digits", checkpoint_every=10,
                              checkpoint_dir=tempfile.mkdtemp(prefix="xgb-ckpt-"), log_model=True)
clf = xgb.XGBClassifier(n_estimators=200, max_depth=3, learning_rate=0.3, early_stopping_rounds=10,
                        eval_metric="mlogloss", callbacks=[callback])
clf.fit(X_train, y_train, eval_set=[(X_val, y_val)], verbose=False)

rec = trackhooks.open_store(callback.run.store).run(callback.run.id)
series = rec.metric("validation_0-mlogloss")
print(f"sklearn run {rec.id[:8]} {rec.status}: {len(series)} rounds, best iteration "
      f"{int(rec.metric('best_iteration').last)} (mlogloss {rec.metric('best_score').last:.4f}), "
      f"{len(rec.checkpoints())} checkpoints, artifacts {[a.name for a in rec.artifacts()]}")

# 2. and 3. autolog: every xgb.train / xgb.cv / fit without a callback gets one
autolog(experiment="xgboost-digits")
dtrain, dval = xgb.DMatrix(X_train, label=y_train), xgb.DMatrix(X_val, label=y_val)
params = {"objective": "multi:softprob", "num_class": 10, "max_depth": 3, "eval_metric": "merror"}
xgb.train(params, dtrain, num_boost_round=30, evals=[(dval, "val")], verbose_eval=False)
xgb.cv(params, dtrain, num_boost_round=10, nfold=3)
autolog(disable=True)

for r in trackhooks.open_store(callback.run.store).runs(experiment="xgboost-digits")[-3:]:
    keys = [k for k in r.metric_keys() if not k.startswith("importance.")]
    print(f"{r.id[:8]} {r.tags['xgboost.api']:<7} {r.status}: {keys[:6]} "
          f"datasets {[(d.name, d.n_rows) for d in r.datasets()]}")
