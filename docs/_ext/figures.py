"""The figures of the documentation, computed with the library and written as small SVG files.

Run ``python docs/_ext/figures.py`` after a change that moves them; the output
(docs/figures/*.svg) is committed, and tests/test_docs.py checks that it is what this script
writes. The SVG is written by hand (polylines, axes, labels; no matplotlib), with fixed
precision, so the files are small and the same on every machine.

* ``js-beta.svg``: the generalised Jensen-Shannon divergence ``js(p, q, beta=b)`` of one
  pair against ``b``, the swapped pair, and the bound ``H(b, 1 - b)`` (api/core.md).
* ``kl-vs-reverse-kl.svg``: the Gaussian closest to a bimodal target in ``KL(p || q)``
  (covers both modes) and in ``KL(q || p)`` (sits on one), found by a grid search over the
  mean and the standard deviation with :func:`divergences.kl` (conventions.md).
"""

from __future__ import annotations

import html
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import divergences as dv

OUT = Path(__file__).resolve().parents[1] / "figures"

WIDTH, HEIGHT = 560, 300
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 16, 44
INK, GRID, MUTED = "#222", "#ddd", "#888"
BLUE, ORANGE, GREEN = "#1f5fa8", "#d1591b", "#2e8540"


def _f(v: float) -> str:
    """A coordinate with two decimals, without a trailing zero or ``-0``."""
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


class Plot:
    """One pair of axes in an SVG of ``WIDTH`` x ``HEIGHT`` user units."""

    def __init__(self, xlim: tuple[float, float], ylim: tuple[float, float],
                 title: str, description: str) -> None:
        self.xlim, self.ylim = xlim, ylim
        self.parts: list[str] = []
        self.title, self.description = title, description

    def x(self, v: float) -> float:
        lo, hi = self.xlim
        return LEFT + (v - lo) / (hi - lo) * (WIDTH - LEFT - RIGHT)

    def y(self, v: float) -> float:
        lo, hi = self.ylim
        return HEIGHT - BOTTOM - (v - lo) / (hi - lo) * (HEIGHT - TOP - BOTTOM)

    def text(self, x: float, y: float, s: str, anchor: str = "start", **attrs: str) -> None:
        extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
        self.parts.append(f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}"{extra}>'
                          f"{html.escape(s)}</text>")

    def axes(self, xticks: Sequence[float], yticks: Sequence[float], xlabel: str,
             ylabel: str, fmt: str = "{:g}") -> None:
        x0, x1 = self.x(self.xlim[0]), self.x(self.xlim[1])
        y0, y1 = self.y(self.ylim[0]), self.y(self.ylim[1])
        for t in yticks:
            self.parts.append(f'<line x1="{_f(x0)}" x2="{_f(x1)}" y1="{_f(self.y(t))}" '
                              f'y2="{_f(self.y(t))}" stroke="{GRID}"/>')
            self.text(x0 - 6, self.y(t) + 4, fmt.format(t), "end")
        for t in xticks:
            self.parts.append(f'<line x1="{_f(self.x(t))}" x2="{_f(self.x(t))}" y1="{_f(y0)}" '
                              f'y2="{_f(y0 + 4)}" stroke="{INK}"/>')
            self.text(self.x(t), y0 + 17, fmt.format(t), "middle")
        self.parts.append(f'<polyline points="{_f(x0)},{_f(y1)} {_f(x0)},{_f(y0)} '
                          f'{_f(x1)},{_f(y0)}" fill="none" stroke="{INK}"/>')
        self.text((x0 + x1) / 2, HEIGHT - 6, xlabel, "middle")
        self.text(14, (y0 + y1) / 2, ylabel, "middle",
                  transform=f"rotate(-90 14 {_f((y0 + y1) / 2)})")

    def line(self, xs: np.ndarray, ys: np.ndarray, color: str, dash: str | None = None,
             width: float = 2.0, fill: str | None = None) -> None:
        pts = " ".join(f"{_f(self.x(a))},{_f(self.y(b))}" for a, b in zip(xs, ys))
        if fill is not None:   # close the area down to y = 0
            pts = (f"{_f(self.x(xs[0]))},{_f(self.y(0))} {pts} "
                   f"{_f(self.x(xs[-1]))},{_f(self.y(0))}")
            self.parts.append(f'<polygon points="{pts}" fill="{fill}" stroke="none"/>')
            return
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" '
                          f'stroke-width="{width:g}" stroke-linejoin="round"{dashed}/>')

    def dot(self, x: float, y: float, color: str) -> None:
        self.parts.append(f'<circle cx="{_f(self.x(x))}" cy="{_f(self.y(y))}" r="3.5" '
                          f'fill="{color}"/>')

    def legend(self, x: float, y: float, entries: Sequence[tuple[str, str, str | None]]) -> None:
        """``(label, color, dash)`` rows from the top left corner ``(x, y)`` (user units)."""
        for i, (label, color, dash) in enumerate(entries):
            yy = y + 18 * i
            if dash == "area":
                self.parts.append(f'<rect x="{_f(x)}" y="{_f(yy - 6)}" width="22" height="10" '
                                  f'fill="{color}"/>')
            else:
                dashed = f' stroke-dasharray="{dash}"' if dash else ""
                self.parts.append(f'<line x1="{_f(x)}" x2="{_f(x + 22)}" y1="{_f(yy)}" '
                                  f'y2="{_f(yy)}" stroke="{color}" stroke-width="2"{dashed}/>')
            self.text(x + 28, yy + 4, label)

    def svg(self) -> str:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
                f'width="{WIDTH}" height="{HEIGHT}" role="img" font-family="sans-serif" '
                f'font-size="12" fill="{INK}">')
        return "\n".join([
            head, f"<title>{html.escape(self.title)}</title>",
            f"<desc>{html.escape(self.description)}</desc>",
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
            *self.parts, "</svg>", ""])


# --------------------------------------------------------------------------------------------


# p on two outcomes, q spread over six: the curve leans towards beta = 1 (weight on p).
JS_P = np.array([0.6, 0.4, 0.0, 0.0, 0.0, 0.0])
JS_Q = np.array([0.05, 0.05, 0.225, 0.225, 0.225, 0.225])


def js_beta() -> str:
    betas = np.linspace(0.0, 1.0, 101)
    pq = np.array([float(dv.js(JS_P, JS_Q, beta=b)) for b in betas])
    qp = np.array([float(dv.js(JS_Q, JS_P, beta=b)) for b in betas])
    bound = np.array([float(dv.entropy([b, 1.0 - b])) for b in betas])
    top = int(np.argmax(pq))
    plot = Plot((0.0, 1.0), (0.0, 1.0),
                "Generalised Jensen-Shannon divergence against beta",
                f"js(p, q, beta) for p = (0.6, 0.4, 0, 0, 0, 0) and q = (0.05, 0.05, 0.225, "
                f"0.225, 0.225, 0.225) rises from 0 at beta = 0 to a maximum of "
                f"{pq[top]:.3f} at beta = {betas[top]:.2f} and falls back to 0 at beta = 1; "
                f"js(q, p, beta) is its mirror image about beta = 0.5, where the two meet "
                f"(js(p, q) = {pq[50]:.3f}); both stay under the entropy H(beta, 1 - beta), "
                f"which is log 2 at beta = 0.5.")
    plot.axes([0, 0.25, 0.5, 0.75, 1], [0, 0.2, 0.4, 0.6, 0.8, 1.0], "beta", "nats")
    plot.line(betas, bound, MUTED, dash="5 4", width=1.5)
    plot.line(betas, qp, ORANGE, dash="7 3")
    plot.line(betas, pq, BLUE)
    plot.dot(0.5, pq[50], INK)
    plot.text(plot.x(0.5), plot.y(pq[50]) - 10, f"js(p, q) = {pq[50]:.3f}", "middle")
    plot.legend(LEFT + 14, TOP + 10, [
        ("js(p, q, beta)", BLUE, None),
        ("js(q, p, beta) = js(p, q, 1 − beta)", ORANGE, "7 3"),
        ("bound H(beta, 1 − beta)", MUTED, "5 4"),
    ])
    return plot.svg()


# The fit is over a wide grid (truncation moves the fits by less than 0.005); the plot shows
# the middle of it.
GRID_X = np.linspace(-10.0, 10.0, 401)
SHOWN = np.abs(GRID_X) <= 6.0
TARGET = ((0.6, -2.0, 0.7), (0.4, 2.0, 0.7))   # (weight, mean, standard deviation)


def _gaussians(mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Rows of normal densities on ``GRID_X``, normalised to probabilities on the grid."""
    z = (GRID_X[None, :] - mu[:, None]) / sigma[:, None]
    w = np.exp(-0.5 * z * z)
    return w / w.sum(axis=1, keepdims=True)


def _fit(target: np.ndarray, reverse: bool) -> tuple[float, float]:
    """``(mu, sigma)`` of the grid Gaussian closest to ``target`` in KL(target || q), or in
    KL(q || target) with ``reverse``: a coarse grid search, then finer ones around the best."""
    best = (0.0, 1.0)
    mus, sigmas = np.arange(-4.0, 4.0 + 1e-9, 0.25), np.arange(0.3, 4.0, 0.1)
    for step, span in ((None, None), (0.02, 0.2), (0.005, 0.02)):
        if step is not None:
            mus = best[0] + np.arange(-span, span + 1e-9, step)
            sigmas = best[1] + np.arange(-span, span + 1e-9, step)
        mu, sigma = (a.ravel() for a in np.meshgrid(mus, sigmas, indexing="ij"))
        q = _gaussians(mu, sigma)
        d = dv.kl(q, target[None, :]) if reverse else dv.kl(target[None, :], q)
        i = int(np.argmin(d))
        best = (float(mu[i]), float(sigma[i]))
    return best


def _num(v: float) -> str:
    """Two decimals, with a typographic minus."""
    return f"{v:.2f}".replace("-", "\u2212")


def kl_vs_reverse_kl() -> str:
    target = sum(w * _gaussians(np.array([m]), np.array([s]))[0] for w, m, s in TARGET)
    target = target / target.sum()
    fwd, rev = _fit(target, reverse=False), _fit(target, reverse=True)
    dx = GRID_X[1] - GRID_X[0]
    dens = target / dx
    fwd_q = _gaussians(np.array([fwd[0]]), np.array([fwd[1]]))[0] / dx
    rev_q = _gaussians(np.array([rev[0]]), np.array([rev[1]]))[0] / dx
    plot = Plot((-6.0, 6.0), (0.0, 0.8),
                "Fitting one Gaussian to a bimodal target: KL against reverse KL",
                f"The target p is a mixture of two normals (weights 0.6 and 0.4, means -2 and "
                f"2, standard deviation 0.7). The normal q that minimises KL(p || q) has mean "
                f"{fwd[0]:.2f} and standard deviation {fwd[1]:.2f}: it spreads over both modes "
                f"and puts mass between them, where p has little. The one that minimises "
                f"KL(q || p) has mean {rev[0]:.2f} and standard deviation {rev[1]:.2f}: it "
                f"sits on the larger mode and ignores the other.")
    plot.axes([-6, -4, -2, 0, 2, 4, 6], [0, 0.2, 0.4, 0.6, 0.8], "x", "density")
    x = GRID_X[SHOWN]
    plot.line(x, dens[SHOWN], "", fill="#c9c9c9")
    plot.line(x, fwd_q[SHOWN], BLUE)
    plot.line(x, rev_q[SHOWN], ORANGE, dash="7 3")
    plot.legend(plot.x(-0.9), TOP + 10, [
        ("target p (two modes)", "#c9c9c9", "area"),
        (f"min KL(p ‖ q): mean {_num(fwd[0])}, sd {_num(fwd[1])}", BLUE, None),
        (f"min KL(q ‖ p): mean {_num(rev[0])}, sd {_num(rev[1])}", ORANGE, "7 3"),
    ])
    return plot.svg()


FIGURES = {"js-beta.svg": js_beta, "kl-vs-reverse-kl.svg": kl_vs_reverse_kl}


def render() -> dict[str, str]:
    """``{file name: SVG text}`` for every figure."""
    return {name: make() for name, make in FIGURES.items()}


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name} ({len(text.encode())} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
