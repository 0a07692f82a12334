"""Inline SVG charts and HTML fragments for the audit report (``streams.report_html``).

Everything here returns :class:`Html`: markup built only from escaped text, so a label that holds
``<script>`` comes out as text. Charts draw in fixed pixel coordinates (no scripts, fonts or external
resources); each ``<svg>`` carries ``class="chart"`` and ``data-chart`` naming what it shows.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

#: Series colours (Okabe-Ito, distinguishable with the common colour-vision deficiencies).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
WIDTH = 760


class Html(str):
    """A string that is already safe markup (built by the helpers here); anything else gets escaped."""

    __slots__ = ()


def esc(value: Any) -> Html:
    """``value`` as escaped text (``Html`` passes through unchanged)."""
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def tag(name: str, body: Any = "", **attrs: Any) -> Html:
    """``<name attrs>body</name>``; attribute values and a non-``Html`` body are escaped.
    ``class_`` stands for ``class``; underscores in other names become dashes (``data_chart``)."""
    parts = [name]
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        attr = "class" if key == "class_" else key.replace("_", "-")
        parts.append(attr if value is True else f'{attr}="{esc(value)}"')
    return Html(f"<{' '.join(parts)}>{esc(body)}</{name}>")


def join(fragments: Iterable[Any]) -> Html:
    return Html("".join(esc(f) for f in fragments))


def fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.{digits}f}%"


def interval(bounds: Sequence[float] | None, as_pct: bool = False, digits: int = 3) -> str:
    if not bounds or any(b is None or not math.isfinite(b) for b in bounds):
        return "n/a"
    low, high = bounds
    if as_pct:
        return f"[{pct(low)}, {pct(high)}]"
    return f"[{fmt(low, digits)}, {fmt(high, digits)}]"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], class_: str = "data") -> Html:
    head = tag("tr", join(tag("th", h, scope="col") for h in headers))
    body = join(tag("tr", join(tag("td", cell) for cell in row)) for row in rows)
    return tag(
        "div", tag("table", join([tag("thead", head), tag("tbody", body)]), class_=class_), class_="scroll"
    )


def no_data(text: str) -> Html:
    return tag("p", text, class_="no-data")


def legend(names: Sequence[str]) -> Html:
    items = (
        tag("li", join([tag("span", "", class_="swatch", style=f"background:{colour(i)}"), esc(name)]))
        for i, name in enumerate(names)
    )
    return tag("ul", join(items), class_="legend")


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _text(x: float, y: float, body: str, anchor: str = "middle", class_: str = "axis") -> Html:
    return tag("text", body, x=f"{x:.1f}", y=f"{y:.1f}", text_anchor=anchor, class_=class_)


def _line(x1: float, y1: float, x2: float, y2: float, class_: str) -> Html:
    return tag("line", "", x1=f"{x1:.1f}", y1=f"{y1:.1f}", x2=f"{x2:.1f}", y2=f"{y2:.1f}", class_=class_)


def line_chart(
    name: str,
    title: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    y_label: str,
    height: int = 300,
) -> Html:
    """One line per series over the categorical x axis ``x_labels``; ``None`` values leave a gap.

    The y axis runs from a little below the smallest value to 1: agreement near 1 stays readable
    instead of hugging the top edge.
    """
    left, right, top, bottom = 56, 16, 16, 48
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    values = [v for _, ys in series for v in ys if v is not None and math.isfinite(v)]
    y_min = min(max(0.0, math.floor(min(values, default=0.0) * 20) / 20 - 0.05), 0.95)
    span = 1.0 - y_min
    n = max(len(x_labels), 1)

    def x_at(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y_at(v: float) -> float:
        return top + plot_h * (1.0 - (min(max(v, y_min), 1.0) - y_min) / span)

    parts: list[Html] = []
    for k in range(5):
        v = y_min + span * k / 4
        parts.append(_line(left, y_at(v), left + plot_w, y_at(v), "grid"))
        # exact: a quarter of a span of 0.05s needs up to 4 decimals (0.925 printed as 0.92 before)
        parts.append(_text(left - 6, y_at(v) + 4, f"{round(v, 6):g}", anchor="end"))
    step = max(1, math.ceil(n / 8))  # at most about 8 x labels
    for i in range(0, len(x_labels), step):
        parts.append(_text(x_at(i), top + plot_h + 18, x_labels[i]))
    parts.append(_text(left + plot_w / 2, height - 6, "bucket start (UTC)"))
    mid = top + plot_h / 2
    parts.append(
        tag("text", y_label, x="14", y=f"{mid:.1f}", transform=f"rotate(-90 14 {mid:.1f})", class_="axis")
    )
    for s, (label, ys) in enumerate(series):
        run: list[str] = []
        runs: list[list[str]] = [run]
        for i, y in enumerate(ys):
            if y is None or not math.isfinite(y):
                run = []
                runs.append(run)
                continue
            run.append(f"{x_at(i):.1f},{y_at(y):.1f}")
            parts.append(
                tag(
                    "circle",
                    tag("title", f"{label} {x_labels[i]}: {y:.3f}"),
                    cx=f"{x_at(i):.1f}",
                    cy=f"{y_at(y):.1f}",
                    r="3",
                    fill=colour(s),
                )
            )
        for points in runs:
            if len(points) > 1:
                parts.append(tag("polyline", "", points=" ".join(points), fill="none", stroke=colour(s)))
    return _svg(name, title, height, parts)


def interval_chart(
    name: str,
    title: str,
    rows: Sequence[tuple[str, float | None, Sequence[float] | None]],
    as_pct: bool = True,
    upper: float | None = None,
) -> Html:
    """Horizontal bars (estimate) with whiskers (interval), one row per ``(label, estimate, interval)``.

    The axis spans zero and every bound (at most ``upper``), so negative values (a lift) draw left of
    the zero line.
    """
    left, right, top, row_h = 320, 24, 12, 24
    height = top + row_h * len(rows) + 36
    plot_w = WIDTH - left - right
    bounds = [0.0]
    for _, est, iv in rows:
        bounds.extend(v for v in (est, *(iv or ())) if v is not None and math.isfinite(v))
    step = nice_step(max(bounds) - min(bounds))
    lo, hi = math.floor(min(bounds) / step) * step, math.ceil(max(bounds) / step) * step
    if upper is not None:
        hi = max(min(hi, upper), lo + step)
    hi = max(hi, lo + step)  # every bound 0 (no estimate yet): still an axis, not a division by zero

    def x_at(v: float) -> float:
        return left + plot_w * (v - lo) / (hi - lo)

    label_of = pct if as_pct else fmt
    parts: list[Html] = []
    for k in range(round((hi - lo) / step) + 1):
        v = lo + step * k
        tick = f"{round(v * 100, 9):g}%" if as_pct else f"{round(v, 9):g}"
        parts.append(_line(x_at(v), top, x_at(v), top + row_h * len(rows), "grid"))
        parts.append(_text(x_at(v), top + row_h * len(rows) + 16, tick))
    parts.append(_line(x_at(0.0), top, x_at(0.0), top + row_h * len(rows), "zero"))
    for i, (label, est, iv) in enumerate(rows):
        y = top + row_h * i
        short = label if len(label) <= 46 else label[:45] + "…"
        parts.append(_text(left - 8, y + row_h / 2 + 4, short, anchor="end", class_="label"))
        if est is not None and math.isfinite(est):
            x0, x1 = sorted((x_at(0.0), x_at(est)))
            tip = f"{label}: {label_of(est)} {interval(iv, as_pct=as_pct)}"
            parts.append(
                tag(
                    "rect",
                    tag("title", tip),
                    x=f"{x0:.1f}",
                    y=f"{y + 5:.1f}",
                    width=f"{max(x1 - x0, 1.0):.1f}",
                    height=f"{row_h - 10}",
                    fill=colour(0),
                )
            )
        if iv and all(b is not None and math.isfinite(b) for b in iv):
            mid = y + row_h / 2
            parts.append(_line(x_at(iv[0]), mid, x_at(iv[1]), mid, "whisker"))
            for b in iv:
                parts.append(_line(x_at(b), mid - 6, x_at(b), mid + 6, "whisker"))
    return _svg(name, title, height, parts)


def nice_step(span: float) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) that cuts ``span`` into 2 to 5 ticks.

    >>> nice_step(0.0668), nice_step(1.0), nice_step(0.0)
    (0.02, 0.25, 0.25)
    """
    if not span > 0 or not math.isfinite(span):
        return 0.25
    raw = span / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))


def _svg(name: str, title: str, height: int, parts: Sequence[Html]) -> Html:
    return tag(
        "svg",
        join([tag("title", title), *parts]),
        class_="chart",
        data_chart=name,
        role="img",
        aria_label=title,
        viewBox=f"0 0 {WIDTH} {height}",
        width=str(WIDTH),
        height=str(height),
    )
