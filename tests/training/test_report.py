"""Pictures of a run (``onespec.training.report``) from whatever a data set names its classes
and whatever a diverging run logged."""
import math

import numpy as np

from onespec.training import report


def test_confusion_plot_draws_any_class_name(tmp_path):
    """Folder names that were not UTF-8 (surrogate escapes), lone surrogates, control characters
    and mathtext all reach the plot as plain text (matplotlib refused the first with a TypeError
    and parsed ``$...$`` as a formula)."""
    names = ["caf\udce9", "a\x85b\ud800", r"$\frac{$", "$x$", "tab\tname", "n" * 300]
    logits = np.eye(len(names))[[0, 1, 2, 3, 4, 5, 5]]
    res = report.classification(logits, np.array([0, 1, 2, 3, 4, 5, 0]), names)
    report.confusion(res, str(tmp_path / "c.png"), "odd names")
    assert (tmp_path / "c.png").stat().st_size > 5_000
    assert report.label("caf\udce9") == r"caf\xe9" and report.label("$x$") == r"\$x\$"
    assert len(report.label("n" * 300)) == 40


def test_curves_leave_out_rows_that_are_not_finite(tmp_path):
    rows = [{"kind": "step", "epoch": 0, "step": s, "loss": 2.0 / s, "lr": 0.1, "grad_norm": 1.0} for s in range(1, 9)]
    rows += [{"kind": "step", "epoch": 0, "step": 9, "loss": math.nan, "lr": 0.1, "grad_norm": math.inf},
             {"kind": "epoch", "epoch": 0, "step": 9, "train_loss": math.nan, "train_acc": 0.5, "val_loss": 1.0,
              "val_acc": 0.5, "val_top5": 1.0, "lr": 0.1}]
    report.curves(rows, str(tmp_path / "curves.png"), "diverged")
    assert (tmp_path / "curves.png").stat().st_size > 10_000
