"""Metrics and pictures of a run (matplotlib, Agg): training curves and the confusion matrix."""
from __future__ import annotations

import json
import math

import numpy as np

from ..weights import atomic_write


def classification(logits: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """Overall top-1/top-5, per-class accuracy and the confusion matrix (rows: true class)."""
    k = len(classes)
    pred = logits.argmax(1)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (labels, pred), 1)
    top5 = np.argsort(-logits, axis=1)[:, :min(5, k)]
    per = cm.diagonal() / np.maximum(cm.sum(1), 1)
    return {"samples": int(len(labels)), "top1": float((pred == labels).mean()),
            "top5": float((top5 == labels[:, None]).any(1).mean()),
            "per_class": {c: float(a) for c, a in zip(classes, per)},
            "per_class_samples": {c: int(n) for c, n in zip(classes, cm.sum(1))},
            "classes": list(classes), "confusion": cm.tolist()}


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def label(name: str, width: int = 40) -> str:
    """A class name as plain text matplotlib can draw: bytes that were not UTF-8 (file names
    decoded with surrogate escapes) as ``\\xNN``, control characters escaped, ``$`` not read as
    mathtext, long names cut."""
    text = "".join(c if c.isprintable() else f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF
                   else repr(c)[1:-1] for c in str(name)).replace("$", r"\$")
    return text if len(text) <= width else text[:width - 1] + "\u2026"


def save_png(fig, path: str) -> None:
    """Write matplotlib figure ``fig`` to ``path`` as a PNG, atomically."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), suffix=".png")


def curves(rows: list[dict], path: str, title: str) -> None:
    """Loss (per step and per epoch), accuracy (train and validation) and LR per step. Rows with a
    value that is not finite are left out (a diverged run stops before it commits one)."""
    plt = pyplot()
    rows = [r for r in rows if all(math.isfinite(v) for v in r.values() if isinstance(v, float))]
    steps = [r for r in rows if r["kind"] == "step"]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    if steps:
        s = np.array([r["step"] for r in steps])
        loss = np.array([r["loss"] for r in steps])
        ax[0].plot(s, loss, lw=0.6, alpha=0.4, color="C0", label="train loss (step)")
        w = max(1, len(loss) // 50)
        if w > 1:
            smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
            ax[0].plot(s[w - 1:], smooth, color="C0", label=f"train loss ({w}-step mean)")
        ax[2].plot(s, [r["lr"] for r in steps], color="C2")
        # the first steps' loss can be far above the rest; keep the body of the curve readable
        top = max(np.percentile(loss, 98), max((r["val_loss"] for r in rows if r["kind"] == "epoch"), default=0))
        ax[0].set_ylim(0, 1.1 * top)
    if epochs:
        es = [r["step"] for r in epochs]
        ax[0].plot(es, [r["val_loss"] for r in epochs], "o-", color="C1", label="validation loss")
        ep = [r["epoch"] + 1 for r in epochs]
        ax[1].plot(ep, [100 * r["train_acc"] for r in epochs], "o-", label="train")
        ax[1].plot(ep, [100 * r["val_acc"] for r in epochs], "o-", label="validation")
        ax[1].xaxis.set_major_locator(__import__("matplotlib.ticker", fromlist=["MaxNLocator"]).MaxNLocator(integer=True))
    ax[0].set(xlabel="step", ylabel="cross-entropy", title="loss")
    ax[1].set(xlabel="epoch", ylabel="top-1 accuracy (%)", title="accuracy")
    ax[2].set(xlabel="step", ylabel="learning rate", title="learning rate")
    for a in ax[:2]:
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
    for a in ax:
        a.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def confusion(result: dict, path: str, title: str) -> None:
    """Row-normalised confusion matrix with counts; per-class accuracy in the row labels."""
    plt = pyplot()
    cm = np.asarray(result["confusion"])
    classes = result["classes"]
    k = len(classes)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = min(max(5, 0.45 * k + 3), 24)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), [label(c) for c in classes], rotation=90 if k > 10 else 0, fontsize=8)
    ax.set_yticks(range(k), [f"{label(c)} ({100 * result['per_class'][c]:.0f}%)" for c in classes], fontsize=8)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true (per-class accuracy)",
           title=f"{title}\ntop-1 {100 * result['top1']:.2f}% of {result['samples']}")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def write_json(obj, path: str) -> None:
    text = json.dumps(obj, indent=1)
    atomic_write(path, lambda tmp: open(tmp, "w").write(text), suffix=".json")
