"""What ``sense-perception eval`` writes and prints: eval.json, a precision-recall plot, tables."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .scoring import HEIGHT_BINS, Evaluation

EVAL_FILE, PLOT_FILE = "eval.json", "precision_recall.png"


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def to_dict(result: Evaluation, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of eval.json."""
    classes = {}
    for label, c in result.classes.items():
        classes[label] = {
            "gt": c.gt, "tp": c.tp, "fp": c.fp, "recall": _round(c.recall),
            "precision": _round(c.precision), "ap": _round(c.ap),
            "fp_per_image": _round(result.class_fp_per_image(label)),
            "recall_by_height": {name: {"found": f, "total": t, "recall": _round(f / t if t else None)}
                                 for name, (f, t) in c.recall_by_height.items()},
            "missed": [dict(name) for name in c.missed],
        }
    return {"images": result.images, "iou": result.iou, "fp": result.fp,
            "fp_per_image": _round(result.fp_per_image), "classes": classes,
            "not_scored": result.not_scored, **(meta or {})}


def write_json(result: Evaluation, out: Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``out/eval.json`` (replaced whole: a full disk keeps the earlier one); returns its
    path."""
    from ..fileio import write_result_json

    path = out / EVAL_FILE
    write_result_json(path, to_dict(result, meta), indent=2)
    return path


def plot_png(result: Evaluation, title: str = "") -> bytes | None:
    """The precision-recall curve per class with the operating point marked, as PNG bytes; None
    without a curve."""
    curves = {lb: (c, c.curve) for lb, c in result.classes.items() if c.curve is not None}
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display on a vehicle computer or in CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    for label, (c, (recall, precision)) in curves.items():
        (line,) = ax.plot(recall, precision, label=f"{label} (AP {c.ap:.3f})")
        if c.recall is not None and c.precision is not None:
            ax.plot([c.recall], [c.precision], "o", color=line.get_color(), markersize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    ax.set_title(title or f"IoU {result.iou:g}, {result.images} images (dots: operating point)")
    ax.legend(loc="lower left")
    fig.tight_layout()
    import io

    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    return png.getvalue()


def write_plot(result: Evaluation, out: Path, title: str = "") -> Path | None:
    """Write ``out/precision_recall.png`` (see :func:`plot_png`); None without a curve."""
    from ..fileio import atomic_write

    png = plot_png(result, title)
    if png is None:
        return None
    path = out / PLOT_FILE
    atomic_write(path, png, private=False)  # never a cut-off plot in place of a whole one
    return path


def render(result: Evaluation, console: Any) -> None:
    """Print the per-class table, recall by object height and false positives per image."""
    from rich.markup import escape
    from rich.table import Table

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f} %"

    images = f"{result.images} image{'' if result.images == 1 else 's'}"
    table = Table(title=f"detection quality (IoU {result.iou:g}, {images})")
    for column in ("class", "ground truth", "found", "false positives", "FP / image", "recall",
                   "precision", "AP"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for label, c in result.classes.items():
        table.add_row(escape(label), str(c.gt), str(c.tp), str(c.fp),
                      f"{result.class_fp_per_image(label):.2f}", pct(c.recall), pct(c.precision),
                      "-" if c.ap is None else f"{c.ap:.3f}")
    console.print(table)
    heights = Table(title="recall by object height (pixels)")
    heights.add_column("class")
    for name, _, _ in HEIGHT_BINS:
        heights.add_column(name, justify="right")
    for label, c in result.classes.items():
        cells = [f"{f}/{t} ({pct(f / t)})" if t else "-"
                 for f, t in (c.recall_by_height[n] for n, _, _ in HEIGHT_BINS)]
        heights.add_row(escape(label), *cells)
    console.print(heights)
    console.print(f"false positives per image: {result.fp_per_image:.2f} ({result.fp} in "
                  f"{images})")
    if result.not_scored:
        console.print(f"not scored (classes the detector does not have): "
                      f"{escape(', '.join(result.not_scored))}", highlight=False)
