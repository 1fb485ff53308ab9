"""Rich records with scikit-learn's bundled digits: sample predictions as images every epoch, the
confusion matrix every epoch, weight histograms, ROC and precision-recall curves, a matplotlib
figure and a table of the worst predictions. Then look at them:

    python examples/media_digits.py
    trackhooks report --experiment digits-media -o media-report.html   # one offline file
    trackhooks ui                                                      # or the local web app

Runs in a few seconds on a laptop CPU; needs scikit-learn, Pillow and matplotlib.
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import precision_recall_curve, roc_curve
from sklearn.model_selection import train_test_split

import trackhooks


def grid(images: np.ndarray, side: int = 4) -> np.ndarray:
    """side × side 8×8 digits in one grey image (values in [0, 1]), one pixel apart."""
    out = np.ones((side * 9 - 1, side * 9 - 1))
    for i, img in enumerate(images[: side * side]):
        r, c = divmod(i, side)
        out[r * 9: r * 9 + 8, c * 9: c * 9 + 8] = 1 - img.reshape(8, 8) / 16
    return out


def main() -> None:
    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3, random_state=0)
    clf = SGDClassifier(loss="log_loss", alpha=1e-3, random_state=0)
    with trackhooks.start_run("digits-media", "sgd-log-loss", params={"alpha": 1e-3}) as run:
        for epoch in range(12):
            clf.partial_fit(X_train, y_train, classes=np.arange(10))
            pred = clf.predict(X_val)
            run.log_metric("val_acc", float((pred == y_val).mean()), step=epoch, epoch=epoch)
            run.log_confusion_matrix("val_confusion_matrix", y_val, pred, labels=list(range(10)), step=epoch,
                                     epoch=epoch)
            run.log_image("val_samples", grid(X_val), step=epoch, epoch=epoch,
                          caption="predicted " + " ".join(str(p) for p in pred[:16]))
            run.log_histogram("weights/coef", clf.coef_, step=epoch, epoch=epoch)
        proba = clf.predict_proba(X_val)
        positive = y_val == 8  # the hardest digit here: one-vs-rest curves for it
        fpr, tpr, _ = roc_curve(positive, proba[:, 8])
        run.log_curve("roc_curve/8", fpr, tpr, x_label="false positive rate", y_label="true positive rate")
        precision, recall, _ = precision_recall_curve(positive, proba[:, 8])
        run.log_curve("precision_recall_curve/8", recall[::-1], precision[::-1], x_label="recall",
                      y_label="precision")
        p_true = proba[np.arange(len(y_val)), y_val]
        worst = np.argsort(p_true)[:20]
        run.log_table("worst_predictions", [{"index": int(i), "true": int(y_val[i]), "predicted": int(pred[i]),
                                             "p_true": float(p_true[i])} for i in worst])
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return
        fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
        per_class = [float((pred[y_val == c] == c).mean()) for c in range(10)]
        ax.bar(range(10), per_class, color="#4e79a7")
        ax.set_xticks(range(10))
        ax.set_xlabel("digit")
        ax.set_ylabel("recall")
        ax.set_ylim(0, 1)
        fig.tight_layout()
        run.log_figure("per_class_recall", fig)
        plt.close(fig)
    print(f"logged run {run.id[:8]}; now: trackhooks report --experiment digits-media -o media-report.html")


if __name__ == "__main__":
    main()
