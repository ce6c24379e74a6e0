r"""Text as distributions: n-gram distributions of corpora, divergences between them, compression.

Corpora
-------
A *corpus* is one document or a list of documents:

* ``unit="char"`` and ``unit="word"``: a ``str`` (one document) or a list/tuple of ``str``;
* ``unit="token"``: integer token ids: a 1-D array or list of ints (one document), a 2-D
  array (one document per row), or a list of 1-D arrays/lists (documents of any length).
  NumPy arrays and torch tensors (moved to the CPU) are accepted.

Units: ``"char"`` n-grams are substrings of length ``n``; ``"word"`` n-grams are tuples of
``n`` consecutive words, a word being a maximal run of Unicode word characters (the regular
expression ``\w+``; punctuation and whitespace separate words and are dropped); ``"token"``
n-grams are tuples of ``n`` consecutive ids. N-grams never cross a document boundary.
``lowercase=True`` folds case first (char and word units).

Divergences between corpora are plug-in estimates: the divergence between the two empirical
n-gram distributions over the union of their vocabularies, computed by the f-divergence
registry (:func:`divergences.f_divergence`), with optional additive smoothing. Their
uncertainty comes from a bootstrap over documents (see :func:`ngram_divergence`).

Compression (the KoLMogorov Test's measures): :func:`compression_rate` and
:func:`normalized_compression_distance` under ``lzma``, ``gzip`` (DEFLATE) or ``bz2``.
"""

from __future__ import annotations

import bz2
import lzma
import math
import re
import zlib
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy import sparse

from . import discrete, fdiv
from ._arrays import check_choice, check_range, log_base

if TYPE_CHECKING:  # the estimate layer is imported lazily, when a divergence is computed
    from .estimate import Estimate

__all__ = [
    "NgramDistribution",
    "Selection",
    "compression_rate",
    "ngram_distribution",
    "ngram_divergence",
    "normalized_compression_distance",
    "select_by_divergence",
]

UNITS = ("char", "word", "token")
SMOOTHING = ("none", "laplace", "add_k")
COMPRESSORS = ("lzma", "gzip", "bz2")
STRATEGIES = ("rank", "greedy")

_WORD = re.compile(r"\w+")
# Dense (rows x vocabulary) blocks are formed at most this many entries at a time.
_BLOCK_ENTRIES = 1 << 22


# --------------------------------------------------------------------------------------------
# Corpora -> n-gram counts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NgramDistribution:
    """The n-gram counts of a corpus.

    ``vocabulary``
        The distinct n-grams, sorted: ``str`` of length ``n`` for ``unit="char"``, tuples of
        ``n`` words (``str``) for ``"word"``, tuples of ``n`` ints for ``"token"``.
    ``counts``
        Occurrences of each n-gram (int64, aligned with ``vocabulary``).
    ``n``, ``unit``
        The n-gram order and unit.

    ``probs`` is ``counts / total`` (the maximum-likelihood distribution, no smoothing);
    ``total`` the number of n-gram occurrences; ``len()`` the vocabulary size.
    """

    vocabulary: tuple[Hashable, ...]
    counts: np.ndarray
    n: int
    unit: str

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def probs(self) -> np.ndarray:
        return self.counts / self.counts.sum()

    def __len__(self) -> int:
        return len(self.vocabulary)

    def __repr__(self) -> str:
        return (f"NgramDistribution(n={self.n}, unit={self.unit!r}, vocabulary size "
                f"{len(self)}, total {self.total})")


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be a positive integer; got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be a positive integer; got {n}")
    return int(n)


def _token_doc(doc: Any, name: str) -> tuple[int, ...]:
    if isinstance(doc, torch.Tensor):
        doc = doc.detach().cpu().numpy()
    arr = np.asarray(doc)
    if arr.size == 0:
        return ()
    if not np.issubdtype(arr.dtype, np.integer) or arr.ndim != 1:
        raise TypeError(f"{name}: token documents must be 1-D sequences of integer ids; got "
                        f"dtype {arr.dtype} with shape {arr.shape}")
    return tuple(int(v) for v in arr)


def _documents(corpus: Any, unit: str, name: str, lowercase: bool) -> list[Sequence[Hashable]]:
    """The corpus as a list of documents, each a sequence of units."""
    if unit == "token":
        if isinstance(corpus, str):
            raise TypeError(f"{name}: unit='token' needs integer token ids, not a string")
        if isinstance(corpus, torch.Tensor):
            corpus = corpus.detach().cpu().numpy()
        if isinstance(corpus, np.ndarray):
            if corpus.ndim == 1:
                return [_token_doc(corpus, name)]
            if corpus.ndim == 2:
                return [_token_doc(row, name) for row in corpus]
            raise ValueError(f"{name}: a token array must be 1-D or 2-D; got shape "
                             f"{corpus.shape}")
        if not isinstance(corpus, Sequence):
            raise TypeError(f"{name} must be a sequence of token ids or of documents; got "
                            f"{type(corpus).__name__}")
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in corpus):
            return [_token_doc(np.asarray(corpus, dtype=np.int64), name)]
        return [_token_doc(d, name) for d in corpus]
    if isinstance(corpus, str):
        docs = [corpus]
    elif isinstance(corpus, Sequence) and not isinstance(corpus, (bytes, bytearray)):
        docs = list(corpus)
        bad = [type(d).__name__ for d in docs if not isinstance(d, str)]
        if bad:
            raise TypeError(f"{name} must be a string or a sequence of strings for "
                            f"unit={unit!r}; got an element of type {bad[0]}")
    else:
        raise TypeError(f"{name} must be a string or a sequence of strings for unit={unit!r}; "
                        f"got {type(corpus).__name__}")
    if lowercase:
        docs = [d.lower() for d in docs]
    if unit == "word":
        return [_WORD.findall(d) for d in docs]
    return docs


def _ngrams(doc: Sequence[Hashable], n: int, unit: str) -> list[Hashable]:
    if unit == "char":
        s = doc  # a str
        return [s[i:i + n] for i in range(len(s) - n + 1)]  # type: ignore[index]
    return [tuple(doc[i:i + n]) for i in range(len(doc) - n + 1)]


def _unit_counters(corpus: Any, n: int, unit: str, name: str, lowercase: bool,
                   n_blocks: int) -> tuple[list[Counter], str]:
    """Counters of the resampling units: documents, or blocks of a single document.

    Documents without any n-gram are dropped. A corpus of one document is cut into
    ``n_blocks`` contiguous blocks of n-gram *start positions* (each n-gram belongs to the block
    where it starts, so the blocks' counts add up to the document's).
    """
    docs = _documents(corpus, unit, name, lowercase)
    grams = [g for g in (_ngrams(d, n, unit) for d in docs) if g]
    if not grams:
        raise ValueError(f"{name} has no {unit} {n}-grams (empty, or every document is "
                         f"shorter than n={n})")
    if len(grams) == 1 and n_blocks > 1:
        g = grams[0]
        m = min(n_blocks, len(g))
        edges = np.linspace(0, len(g), m + 1).round().astype(int)
        return [Counter(g[edges[i]:edges[i + 1]]) for i in range(m)], "blocks"
    return [Counter(g) for g in grams], "documents"


def ngram_distribution(
    corpus: Any,
    n: int = 1,
    unit: str = "char",
    *,
    lowercase: bool = False,
) -> NgramDistribution:
    r"""The n-gram counts and maximum-likelihood distribution of a corpus.

    :math:`\hat p(g) = c(g) / \sum_{g'} c(g')`, with :math:`c(g)` the occurrences of the n-gram
    :math:`g` summed over the documents (n-grams never cross documents). See the module
    docstring for what a corpus and each ``unit`` are.

    >>> from divergences.text import ngram_distribution
    >>> d = ngram_distribution("abab", n=2)
    >>> d.vocabulary, d.counts.tolist(), d.probs.tolist()
    (('ab', 'ba'), [2, 1], [0.6666666666666666, 0.3333333333333333])
    >>> ngram_distribution(["The cat.", "the dog"], unit="word", lowercase=True).vocabulary
    (('cat',), ('dog',), ('the',))
    >>> ngram_distribution([[1, 2, 3], [2, 3]], n=2, unit="token").counts.tolist()
    [1, 2]
    """
    n = _check_n(n)
    check_choice(unit, "unit", UNITS)
    counters, _ = _unit_counters(corpus, n, unit, "corpus", lowercase, n_blocks=1)
    total: Counter = Counter()
    for c in counters:
        total.update(c)
    vocab = tuple(sorted(total))
    counts = np.array([total[g] for g in vocab], dtype=np.int64)
    return NgramDistribution(vocabulary=vocab, counts=counts, n=n, unit=unit)


def _count_matrices(*counter_lists: list[Counter]) -> tuple[tuple[Hashable, ...], list[sparse.csr_matrix]]:
    """Sparse (units x vocabulary) count matrices over the sorted union vocabulary."""
    vocab_set: set[Hashable] = set()
    for counters in counter_lists:
        for c in counters:
            vocab_set.update(c)
    vocab = tuple(sorted(vocab_set))
    index = {g: i for i, g in enumerate(vocab)}
    mats = []
    for counters in counter_lists:
        rows, cols, vals = [], [], []
        for r, c in enumerate(counters):
            for g, v in c.items():
                rows.append(r)
                cols.append(index[g])
                vals.append(v)
        mats.append(sparse.csr_matrix((np.asarray(vals, dtype=np.float64), (rows, cols)),
                                      shape=(len(counters), len(vocab))))
    return vocab, mats


def _smoothing_k(smoothing: str, k: float) -> float:
    check_choice(smoothing, "smoothing", SMOOTHING)
    if smoothing == "none":
        return 0.0
    if smoothing == "laplace":
        return 1.0
    return check_range(k, "k", 0.0, low_open=True)


def _normalise(counts: np.ndarray, k: float) -> np.ndarray:
    """Rows of counts to probabilities, with add-``k`` smoothing over the columns."""
    c = counts + k
    return c / c.sum(axis=-1, keepdims=True)


def _divergence_rows(pa: np.ndarray, pb: np.ndarray, fd: fdiv.FDivergence,
                     base: float | None) -> np.ndarray:
    """``D_f(pa_i || pb_i)`` row by row through the registry, in blocks of rows."""
    pa, pb = np.broadcast_arrays(np.atleast_2d(pa), np.atleast_2d(pb))
    rows = max(1, _BLOCK_ENTRIES // max(1, pa.shape[-1]))
    out = [np.atleast_1d(discrete.f_divergence(np.ascontiguousarray(pa[i:i + rows]),
                                               np.ascontiguousarray(pb[i:i + rows]), fd,
                                               base=base))
           for i in range(0, pa.shape[0], rows)]
    return np.concatenate(out)


# --------------------------------------------------------------------------------------------
# Divergence between corpora
# --------------------------------------------------------------------------------------------


def _check_bootstrap(bootstrap: Any) -> int:
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)):
        raise TypeError(f"bootstrap must be an integer; got {type(bootstrap).__name__}")
    if bootstrap != 0 and bootstrap < 2:
        raise ValueError(f"bootstrap must be 0 (no interval) or >= 2; got {bootstrap}")
    return int(bootstrap)


def _check_blocks(n_blocks: Any) -> int:
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, (int, np.integer)):
        raise TypeError(f"n_blocks must be an integer; got {type(n_blocks).__name__}")
    if n_blocks < 2:
        raise ValueError(f"n_blocks must be >= 2; got {n_blocks}")
    return int(n_blocks)


def _boot_counts(mat: sparse.csr_matrix, rng: np.random.Generator, reps: int) -> np.ndarray:
    """Counts of ``reps`` with-replacement resamples of the rows of ``mat`` (dense)."""
    m = mat.shape[0]
    idx = rng.integers(0, m, size=(reps, m))
    weights = np.zeros((reps, m))
    np.add.at(weights, (np.arange(reps)[:, None], idx), 1.0)
    return np.asarray((mat.T @ weights.T).T)


def ngram_divergence(
    corpus_a: Any,
    corpus_b: Any,
    n: int = 1,
    unit: str = "char",
    *,
    divergence: str | fdiv.FDivergence = "js",
    smoothing: str = "none",
    k: float = 1.0,
    base: float | None = None,
    bootstrap: int = 200,
    seed: int | None = 0,
    level: float = 0.95,
    n_blocks: int = 20,
    lowercase: bool = False,
    **params: float,
) -> Estimate:
    r"""Divergence between the n-gram distributions of two corpora, with a bootstrap interval.

    .. math:: \hat D = D_f(\hat p_A \,\|\, \hat p_B), \qquad
              \hat p(g) = \frac{c(g) + k}{\sum_{g'} c(g') + k V},

    over the union vocabulary of the two corpora (size :math:`V`), with ``D_f`` the registry
    member ``divergence`` (``"js"``, ``"kl"`` = :math:`\mathrm{KL}(A\|B)`, ``"tv"``... any name
    of :func:`divergences.fdiv.names`, with its ``params`` such as ``beta=``) computed by
    :func:`divergences.f_divergence`. ``corpus_a`` is the first argument (the numerator of the
    density ratio).

    ``smoothing``: ``"none"`` (``k = 0``; KL is ``inf`` when an n-gram of A never occurs in B),
    ``"laplace"`` (``k = 1``) or ``"add_k"`` (the given ``k > 0``).

    Units: nats by default; ``base=2`` gives bits (the value is divided by ``ln base`` as in
    :func:`divergences.f_divergence`, so leave ``base`` unset for log-free members such as
    ``"tv"``). The returned :class:`~divergences.estimate.Estimate` records ``base``.

    Uncertainty (``bootstrap`` replicates, ``seed``): the resampling unit is the *document*:
    each replicate draws the documents of A with replacement and, independently, those of B,
    and recomputes the plug-in divergence. A corpus that is a single document is cut into
    ``n_blocks`` contiguous blocks (by n-gram start position) that are resampled instead.
    ``stderr`` is the replicates' standard deviation. The interval is the replicates'
    ``level`` percentile interval *shifted by the bootstrap bias* (``mean(replicates) -
    value``): the plug-in divergence is biased upward and resampling adds that bias a second
    time, so the unshifted percentile interval would sit above the estimate (and above 0 for
    identical corpora). The interval is then floored at 0. ``bootstrap=0`` skips resampling
    (``stderr``, ``ci_low``, ``ci_high`` are NaN). If the value or a replicate is infinite
    the interval is the plain percentile interval without interpolation.

    ``n`` of the result is the number of n-gram occurrences in both corpora; ``details`` holds
    the vocabulary size, per-corpus totals and resampling units, ``n_boot``, the bias and the
    unshifted percentiles.

    >>> from divergences.text import ngram_divergence
    >>> e = ngram_divergence(["abcabc", "abab"], ["abcabc", "abab"], bootstrap=50)
    >>> e.value, e.ci_low
    (0.0, 0.0)
    >>> round(ngram_divergence("aaab", "abbb", base=2, bootstrap=0).value, 4)   # JS in bits
    0.1887
    """
    n = _check_n(n)
    check_choice(unit, "unit", UNITS)
    kk = _smoothing_k(smoothing, k)
    fd = fdiv.get(divergence, **params)
    log_base(base)
    reps = _check_bootstrap(bootstrap)
    blocks = _check_blocks(n_blocks)
    lvl = check_range(level, "level", 0.0, 1.0, low_open=True, high_open=True)

    ua, kind_a = _unit_counters(corpus_a, n, unit, "corpus_a", lowercase, blocks)
    ub, kind_b = _unit_counters(corpus_b, n, unit, "corpus_b", lowercase, blocks)
    vocab, (ma, mb) = _count_matrices(ua, ub)
    ca = np.asarray(ma.sum(axis=0)).ravel()
    cb = np.asarray(mb.sum(axis=0)).ravel()
    value = float(_divergence_rows(_normalise(ca, kk), _normalise(cb, kk), fd, base)[0])

    from .estimate._result import Estimate  # lazy: the estimate layer sits beside this one

    details: dict[str, Any] = {
        "divergence": fd.name, "unit": unit, "order": n, "smoothing": smoothing, "k": kk,
        "vocabulary_size": len(vocab), "total_a": int(ca.sum()), "total_b": int(cb.sum()),
        "resampling_units_a": ma.shape[0], "resampling_units_b": mb.shape[0],
        "resampling_a": kind_a, "resampling_b": kind_b,
        "n_boot": reps,
    }
    total = int(ca.sum() + cb.sum())
    if reps == 0:
        nan = math.nan
        return Estimate(value=value, stderr=nan, ci_low=nan, ci_high=nan,
                        method="ngram-plugin", n=total, base=base, level=lvl,
                        ci_method="none", details=details)
    for mat, name in ((ma, "corpus_a"), (mb, "corpus_b")):
        if mat.shape[0] < 2:
            raise ValueError(f"{name} has a single resampling unit (one document with one "
                             "n-gram); a bootstrap needs at least two")
    rng = np.random.default_rng(seed)
    values = np.empty(reps)
    step = max(1, _BLOCK_ENTRIES // max(1, len(vocab)))
    for start in range(0, reps, step):
        r = min(step, reps - start)
        pa = _normalise(_boot_counts(ma, rng, r), kk)
        pb = _normalise(_boot_counts(mb, rng, r), kk)
        values[start:start + r] = _divergence_rows(pa, pb, fd, base)
    alpha = (1.0 - lvl) / 2.0
    if math.isfinite(value) and bool(np.isfinite(values).all()):
        stderr = float(np.std(values, ddof=1))
        lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
        bias = float(values.mean() - value)
        ci = (max(0.0, float(lo) - bias), max(0.0, float(hi) - bias))
        details.update(bias=bias, percentile_low=float(lo), percentile_high=float(hi))
    else:
        stderr = math.inf
        lo, hi = np.quantile(values, [alpha, 1.0 - alpha], method="inverted_cdf")
        ci = (float(lo), float(hi))
        details.update(bias=math.nan, percentile_low=ci[0], percentile_high=ci[1])
    return Estimate(value=value, stderr=stderr, ci_low=ci[0], ci_high=ci[1],
                    method="ngram-plugin", n=total, base=base, level=lvl,
                    ci_method="bootstrap", details=details)


# --------------------------------------------------------------------------------------------
# Data selection (PassTSL)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Selection:
    """The result of :func:`select_by_divergence`.

    ``indices``
        Positions in ``pool`` of the selected documents, in the order they were chosen
        (best first).
    ``scores``
        The divergence behind each choice: the document's own divergence to the target
        (``strategy="rank"``), or that of the union of the documents selected so far
        (``strategy="greedy"``, non-increasing only when adding helps).
    """

    indices: np.ndarray
    scores: np.ndarray


def select_by_divergence(
    pool: Any,
    target: Any,
    k: int,
    *,
    divergence: str | fdiv.FDivergence = "js",
    n: int = 1,
    unit: str = "char",
    strategy: str = "rank",
    smoothing: str = "none",
    add_k: float = 1.0,
    lowercase: bool = False,
    **params: float,
) -> Selection:
    r"""Pick the ``k`` documents of ``pool`` whose n-grams are closest to a target corpus.

    PassTSL selects fine-tuning passwords from a large pool by their Jensen-Shannon divergence
    to the target data set's distribution. The paper's abstract describes the rule only as "a
    heuristic approach ... based on JS divergence"; we could not read the exact procedure, so
    both natural readings are offered:

    ``strategy="rank"`` (default)
        Score every pool document by :math:`D_f(\hat p_{\mathrm{doc}} \| \hat p_{\mathrm{target}})`
        and keep the ``k`` lowest (ties by position). One divergence per document; documents
        with no n-gram score ``inf`` and come last.
    ``strategy="greedy"``
        Forward selection: at each step add the document that makes the pooled counts of the
        selection closest to the target, :math:`D_f(\hat p_{S \cup \{d\}} \| \hat p_{\mathrm{target}})`.
        ``k`` steps over the pool: :math:`O(k \cdot |\mathrm{pool}| \cdot V)`.

    ``pool`` is a list of documents (each a string, or a sequence of ids for
    ``unit="token"``, where a 2-D array is one document per row); ``target`` any corpus. Distributions live on the union vocabulary of
    pool and target, smoothed by ``smoothing`` (``"none"``, ``"laplace"``, ``"add_k"`` with
    ``add_k``); ``divergence`` and ``params`` are as in :func:`ngram_divergence`.

    >>> from divergences.text import select_by_divergence
    >>> pool = ["zzzz", "abab", "zzab", "baba"]
    >>> select_by_divergence(pool, "abba abab", 2).indices.tolist()
    [1, 3]
    """
    check_choice(strategy, "strategy", STRATEGIES)
    n = _check_n(n)
    check_choice(unit, "unit", UNITS)
    kk = _smoothing_k(smoothing, add_k)
    fd = fdiv.get(divergence, **params)
    if unit == "token" and isinstance(pool, (np.ndarray, torch.Tensor)) and pool.ndim == 2:
        pool = list(pool)   # one document per row
    if isinstance(pool, (str, np.ndarray, torch.Tensor)) or not isinstance(pool, Sequence):
        raise TypeError(f"pool must be a list of documents; got {type(pool).__name__}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer; got {type(k).__name__}")
    if not 1 <= k <= len(pool):
        raise ValueError(f"k must lie in [1, len(pool)] = [1, {len(pool)}]; got {k}")
    docs = [_documents([d], unit, "pool", lowercase)[0] for d in pool]
    pool_counters = [Counter(_ngrams(d, n, unit)) for d in docs]
    target_counters, _ = _unit_counters(target, n, unit, "target", lowercase, n_blocks=1)
    vocab, (mp, mt) = _count_matrices(pool_counters, target_counters)
    pt = _normalise(np.asarray(mt.sum(axis=0)).ravel(), kk)
    if strategy == "rank":
        scores = _candidate_scores(mp, np.zeros(len(vocab)), pt, fd, kk)
        order = np.argsort(scores, kind="stable")[:k]
        return Selection(indices=order.astype(np.int64), scores=scores[order])
    chosen: list[int] = []
    chosen_scores: list[float] = []
    current = np.zeros(len(vocab))
    available = np.ones(len(pool), dtype=bool)
    for _ in range(k):
        cand = np.flatnonzero(available)
        sc = _candidate_scores(mp[cand], current, pt, fd, kk)
        best = int(np.argmin(sc))
        idx = int(cand[best])
        chosen.append(idx)
        chosen_scores.append(float(sc[best]))
        available[idx] = False
        current = current + mp[idx].toarray().ravel()
    return Selection(indices=np.asarray(chosen, dtype=np.int64),
                     scores=np.asarray(chosen_scores))


def _candidate_scores(rows: sparse.csr_matrix, base_counts: np.ndarray, target: np.ndarray,
                      fd: fdiv.FDivergence, k: float) -> np.ndarray:
    """``D_f(normalise(base + row) || target)`` per sparse row, densified a block at a time.

    A candidate without any count scores ``inf``.
    """
    m, v = rows.shape
    scores = np.full(m, math.inf)
    step = max(1, _BLOCK_ENTRIES // max(1, v))
    for start in range(0, m, step):
        block = rows[start:start + step].toarray() + base_counts
        ok = block.sum(axis=1) > 0
        if ok.any():
            scores[start:start + step][ok] = _divergence_rows(_normalise(block[ok], k), target,
                                                              fd, None)
    return scores


# --------------------------------------------------------------------------------------------
# Compression
# --------------------------------------------------------------------------------------------


def _as_bytes(data: Any, name: str) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"{name} must be bytes or str; got {type(data).__name__}")


def _compress(data: bytes, compressor: str) -> bytes:
    if compressor == "lzma":
        # Preset 9 with the dictionary cut to the input's size (a power of two between 4 KiB
        # and preset 9's 64 MiB): the same stream, without allocating ~700 MB per call.
        dict_size = min(1 << 26, max(1 << 12, 1 << (len(data) - 1).bit_length()))
        filters = [{"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": dict_size}]
        return lzma.compress(data, format=lzma.FORMAT_RAW, filters=filters)
    if compressor == "gzip":
        c = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw DEFLATE: no gzip/zlib header
        return c.compress(data) + c.flush()
    return bz2.compress(data, 9)


def compression_rate(data: bytes | str, compressor: str = "lzma") -> float:
    r"""Compressed size over raw size, in bits per bit: :math:`8|C(x)| / (8|x|)`.

    ``data`` is ``bytes`` or ``str`` (encoded as UTF-8). ``compressor``: ``"lzma"`` (raw
    LZMA2 stream, preset 9, dictionary no larger than needed), ``"gzip"`` (raw DEFLATE at level 9, the algorithm inside gzip,
    without gzip's 18-byte container) or ``"bz2"`` (level 9, with its 4-byte header). Container
    headers are left out where the library allows, so short inputs are not dominated by them;
    a few bytes of stream overhead remain, so incompressible data give a rate slightly above 1.
    Lower means more regular; it estimates an upper bound on the entropy rate in bits per bit.

    >>> from divergences.text import compression_rate
    >>> compression_rate("ab" * 5000) < 0.01
    True
    """
    check_choice(compressor, "compressor", COMPRESSORS)
    raw = _as_bytes(data, "data")
    if not raw:
        raise ValueError("data must not be empty")
    return len(_compress(raw, compressor)) / len(raw)


def normalized_compression_distance(x: bytes | str, y: bytes | str,
                                    compressor: str = "lzma") -> float:
    r"""Normalised compression distance :math:`\frac{C(xy) - \min(C(x), C(y))}{\max(C(x), C(y))}`.

    :math:`C` is the compressed length in bytes under ``compressor`` (see
    :func:`compression_rate`); :math:`xy` is the concatenation. About 0 for identical inputs
    and about 1 (it can slightly exceed 1) for unrelated incompressible ones. ``str`` inputs
    are encoded as UTF-8; neither input may be empty. DEFLATE (``"gzip"``) only sees 32 KiB
    back and bz2 works in 900 kB blocks, so for longer inputs they cannot find ``x`` inside
    ``y``: prefer ``"lzma"`` there.

    >>> from divergences.text import normalized_compression_distance as ncd
    >>> text = "the quick brown fox jumps over the lazy dog " * 20
    >>> ncd(text, text) < 0.1
    True
    """
    check_choice(compressor, "compressor", COMPRESSORS)
    bx, by = _as_bytes(x, "x"), _as_bytes(y, "y")
    if not bx or not by:
        raise ValueError("x and y must not be empty")
    cx = len(_compress(bx, compressor))
    cy = len(_compress(by, compressor))
    cxy = len(_compress(bx + by, compressor))
    return (cxy - min(cx, cy)) / max(cx, cy)
