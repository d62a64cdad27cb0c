"""The per-tensor report of a quantized network: Markdown, CSV, JSON, and the Pareto plot."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from .._typing import Axes

COLUMNS = (
    "name",
    "shape",
    "method",
    "bits_per_weight",
    "weight_error",
    "output_error",
    "bytes_before",
    "bytes_after",
    "seconds",
    "note",
)


def _fmt(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return str(value)


class Report:
    """Per-tensor rows and totals of a quantized network.

    Parameters
    ----------
    rows : list of dict
        One dict per tensor with the keys of :attr:`COLUMNS`.
    recipe : dict, optional
        ``{"unmatched": [...], "multiple": {name: [rule indices]}}``.
    pareto : dict, optional
        ``{"bits_per_weight": [...], "error": [...]}`` of the budget's
        Pareto curve, when a budget was given.

    Attributes
    ----------
    rows : list of dict
        ``name``, ``shape``, ``method`` (``"float"`` when kept), ``bits_per_weight``
        (stored bits, scales and codebooks included, per element),
        ``weight_error`` (:math:`\\|W - \\hat W\\|^2 / \\|W\\|^2`),
        ``output_error`` (:math:`\\operatorname{tr}(\\Delta W H \\Delta W^\\top) /
        \\operatorname{tr}(W H W^\\top)` on the calibration inputs, or None),
        ``bytes_before``, ``bytes_after``, ``seconds``, ``note``.
    totals : dict
        ``n_tensors``, ``n_quantized``, ``bytes_before``, ``bytes_after``,
        ``compression_ratio``, ``bits_per_weight`` (over the quantized tensors).

    See Also
    --------
    quantize : Builds the report.

    Examples
    --------
    >>> from qtoolkit.network import Report
    >>> r = Report([{"name": "w", "shape": [2, 2], "method": "uniform", "bits_per_weight": 4.0,
    ...              "weight_error": 0.01, "output_error": None, "bytes_before": 16,
    ...              "bytes_after": 2, "seconds": 0.0, "note": ""}])
    >>> r.totals["compression_ratio"]
    8.0
    """

    COLUMNS = COLUMNS

    def __init__(
        self,
        rows: list[dict[str, Any]],
        recipe: dict[str, Any] | None = None,
        pareto: dict[str, Any] | None = None,
    ) -> None:
        self.rows = [dict(r) for r in rows]
        self.recipe = recipe or {"unmatched": [], "multiple": {}}
        self.pareto = pareto

    @property
    def totals(self) -> dict[str, Any]:
        before = sum(r["bytes_before"] for r in self.rows)
        after = sum(r["bytes_after"] for r in self.rows)
        q = [r for r in self.rows if r["method"] != "float"]
        n_q = sum(math.prod(r["shape"]) for r in q)
        return {
            "n_tensors": len(self.rows),
            "n_quantized": len(q),
            "bytes_before": before,
            "bytes_after": after,
            "compression_ratio": before / after if after else math.inf,
            "bits_per_weight": (8 * sum(r["bytes_after"] for r in q) / n_q) if n_q else None,
        }

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON types.

        Returns
        -------
        report : dict
            ``{"rows": [...], "totals": {...}, "recipe": {...}, "pareto": ... }``.

        Examples
        --------
        >>> from qtoolkit.network import Report
        >>> Report([]).to_dict()["totals"]["n_tensors"]
        0
        """
        return {
            "rows": self.rows,
            "totals": self.totals,
            "recipe": self.recipe,
            "pareto": self.pareto,
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text.

        Parameters
        ----------
        indent : int or None, default=2
            As :func:`json.dumps`.

        Returns
        -------
        text : str

        Examples
        --------
        >>> from qtoolkit.network import Report
        >>> Report([]).to_json(indent=None)[:9]
        '{"rows": '
        """
        return json.dumps(self.to_dict(), indent=indent, default=_fmt)

    def to_csv(self) -> str:
        """One CSV line per tensor (header first).

        Returns
        -------
        text : str

        Examples
        --------
        >>> from qtoolkit.network import Report
        >>> Report([]).to_csv().splitlines()[0].split(",")[:3]
        ['name', 'shape', 'method']
        """
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in self.rows:
            w.writerow([_fmt(r.get(c)) for c in COLUMNS])
        return buf.getvalue()

    def to_markdown(self) -> str:
        """A Markdown table of the tensors, then the totals and the recipe warnings.

        Returns
        -------
        text : str

        Examples
        --------
        >>> from qtoolkit.network import Report
        >>> print(Report([]).to_markdown().splitlines()[0])
        | name | shape | method | bits/weight | weight err | output err | bytes | time (s) | note |
        """
        head = (
            "| name | shape | method | bits/weight | weight err | output err | bytes | time (s) "
            "| note |"
        )
        lines = [head, "|" + "---|" * 9]
        for r in self.rows:
            cells = [
                r["name"],
                _fmt(r["shape"]),
                r["method"],
                _fmt(r["bits_per_weight"]),
                _fmt(r["weight_error"]),
                _fmt(r["output_error"]),
                f"{r['bytes_before']} -> {r['bytes_after']}",
                f"{r['seconds']:.3f}",
                r.get("note") or "",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        t = self.totals
        lines.append("")
        bpw = "n/a" if t["bits_per_weight"] is None else f"{t['bits_per_weight']:.3f}"
        lines.append(
            f"{t['n_quantized']} of {t['n_tensors']} tensors quantized; {t['bytes_before']} -> "
            f"{t['bytes_after']} bytes (compression {t['compression_ratio']:.2f}x); "
            f"{bpw} bits per quantized weight"
        )
        if self.recipe.get("unmatched"):
            lines.append(
                f"unmatched (kept in floating point): {', '.join(self.recipe['unmatched'])}"
            )
        for name, idx in self.recipe.get("multiple", {}).items():
            lines.append(f"{name} matched rules {idx}; the first applies")
        return "\n".join(lines) + "\n"

    def plot_pareto(self, ax: Axes | None = None) -> Axes:
        """Plot total error against bits per weight for the budget's Pareto curve.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on (a new figure if None).

        Returns
        -------
        ax : matplotlib.axes.Axes

        Raises
        ------
        ValueError
            If the network was quantized without a budget (no curve).

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from qtoolkit.network import Report
        >>> r = Report([], pareto={"bits_per_weight": [2.0, 4.0], "error": [1.0, 0.1],
        ...                        "budget": 3.0, "chosen": [2.0, 1.0]})
        >>> r.plot_pareto().get_xlabel()
        'bits per weight'
        """
        if not self.pareto:
            raise ValueError("this report has no Pareto curve: quantize with a budget first")
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        p = self.pareto
        ax.step(p["bits_per_weight"], p["error"], where="post", marker=".", label="Pareto curve")
        if p.get("chosen"):
            ax.plot(*p["chosen"], "o", color="C3", label=f"chosen (budget {p['budget']:g})")
        ax.set_yscale("log")
        ax.set_xlabel("bits per weight")
        ax.set_ylabel("total error")
        ax.legend()
        return ax
