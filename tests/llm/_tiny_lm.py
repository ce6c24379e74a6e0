"""A character-level n-gram language model trained (by counting) inside the tests.

Text comes from the standard library's documentation (``pydoc_data.topics``), which ships with
every Python installation. The model is an add-``alpha`` smoothed order-``n`` Markov chain over
96 characters; ``logits(ids)[t]`` scores ``ids[t]`` given the ``n - 1`` previous characters
(padded with newlines at the start).
"""

from __future__ import annotations

from pydoc_data.topics import topics

import numpy as np

CHARS = "\n" + "".join(chr(c) for c in range(32, 127))
V = len(CHARS)  # 96
_INDEX = {c: i for i, c in enumerate(CHARS)}
PAD = 0


def encode(text: str) -> np.ndarray:
    unknown = _INDEX["?"]
    return np.array([_INDEX.get(c, unknown) for c in text], dtype=np.int64)


def passages(length: int, count: int, start_topic: int = 0) -> list[np.ndarray]:
    """``count`` disjoint passages of ``length`` characters, topics in sorted order."""
    out: list[np.ndarray] = []
    for key in sorted(topics)[start_topic:]:
        ids = encode(topics[key])
        for s in range(0, len(ids) - length + 1, length):
            out.append(ids[s:s + length])
            if len(out) == count:
                return out
    raise ValueError("not enough text")


def corpus(topic_slice: slice) -> np.ndarray:
    return np.concatenate([encode(topics[k]) for k in sorted(topics)[topic_slice]])


class NGram:
    """Dense order-``order`` (2 or 3) or sparse (any order) add-``alpha`` character model."""

    def __init__(self, order: int, alpha: float) -> None:
        self.order, self.alpha = order, alpha
        self.counts: dict[tuple[int, ...], np.ndarray] = {}
        self._rows: dict[tuple[int, ...], np.ndarray] = {}

    def fit(self, docs: list[np.ndarray]) -> NGram:
        k = self.order - 1
        for ids in docs:
            padded = np.concatenate([np.full(k, PAD), ids])
            for t in range(len(ids)):
                ctx = tuple(padded[t:t + k].tolist())
                row = self.counts.get(ctx)
                if row is None:
                    row = self.counts[ctx] = np.zeros(V)
                row[padded[t + k]] += 1
        return self

    def _row(self, ctx: tuple[int, ...]) -> np.ndarray:
        """Normalised log-probabilities after ``ctx`` (cached; call after :meth:`fit`)."""
        out = self._rows.get(ctx)
        if out is None:
            row = self.counts.get(ctx)
            out = np.log((row if row is not None else 0.0) + self.alpha + np.zeros(V))
            out = self._rows[ctx] = out - np.logaddexp.reduce(out)
        return out

    def logits(self, ids: np.ndarray) -> np.ndarray:
        """``[T, V]`` log-probabilities; row ``t`` scores ``ids[t]``."""
        k = self.order - 1
        padded = np.concatenate([np.full(k, PAD), ids])
        lists = padded.tolist()
        return np.stack([self._row(tuple(lists[t:t + k])) for t in range(len(ids))])

    def sample(self, n: int, length: int, rng: np.random.Generator,
               temperature: float = 1.0) -> np.ndarray:
        """``n`` sequences of ``length`` ids drawn from the model (ancestral sampling)."""
        k = self.order - 1
        seqs = np.full((n, k + length), PAD, dtype=np.int64)
        cache: dict[tuple[int, ...], np.ndarray] = {}
        for t in range(length):
            u = rng.random(n)
            for i in range(n):
                ctx = tuple(seqs[i, t:t + k].tolist())
                cum = cache.get(ctx)
                if cum is None:
                    lp = self._row(ctx) / temperature
                    p = np.exp(lp - lp.max())
                    cum = cache[ctx] = np.cumsum(p / p.sum())
                seqs[i, t + k] = min(int(np.searchsorted(cum, u[i])), V - 1)
        return seqs[:, k:]
