"""Side-by-side benchmark runner: our functions and their peers, in one run, on one machine.

A *suite* is a module that exposes

``NAME``
    the suite's name on the command line;
``DESCRIPTION``
    one line for ``--help``;
``QUICK``
    a dict of configuration overrides that make every case tiny (``--quick``);
``add_arguments(parser)``
    adds the suite's own flags (sizes, seeds) to an :mod:`argparse` parser;
``config_from_args(args) -> dict``
    the JSON-serialisable configuration those flags give;
``describe(config) -> str``
    one line that states the configuration in the results file;
``make_cases(config) -> list[Case]``
    the cases. Each :class:`Case` builds its inputs once and lists its :class:`Impl` s: ours
    (``ours=True``) and the peers. Every implementation of a case must compute the same
    quantity; the runner checks that it does.

For every case the runner

1. **checks agreement**: runs each implementation once and compares its output with the first
   of ours (:func:`discrepancy`); a discrepancy above the case's ``rtol`` fails the run;
2. **times** each implementation in this process: ``warmup`` untimed calls, then the median
   (and minimum) wall-clock time of ``repeats`` calls, with the torch thread count fixed;
3. **measures peak memory** of each implementation in a *fresh subprocess*
   (:func:`measure_peak`): the child imports the suite, runs the implementation once on tiny
   inputs (so lazy library initialisation is not counted), allocates the full inputs, takes
   its baseline resident set size (``VmRSS`` in ``/proc/self/status``), runs the
   implementation once and reads the peak resident set size (``VmHWM``). The reported number
   is ``VmHWM - baseline``: the peak memory the call needs above its inputs, outputs and
   gradients included. ``VmHWM`` only grows, so before the baseline the child resets it by
   writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0). Where that reset is refused, the
   child reads ``VmHWM`` before the call instead; suites allocate their inputs in place so that
   this value equals the baseline, and if the call never pushes ``VmHWM`` above it the number
   is only a lower bound and is marked ``<=``. ``tracemalloc`` and ``ru_maxrss`` are not used:
   the first does not see torch's allocator, the second cannot be reset;
4. **reports** a Markdown table (also printed) with the time and memory ratios of ours to each
   peer, a verdict against the fastest peer, and the machine (CPU model, cores, memory, thread
   count, library versions, load average), and appends it to a results file.

Outputs are dicts of arrays (NumPy or torch). ``"value"`` (the per-row divergence) is compared
elementwise, relative to ``|reference|``; every other key (gradients) is compared in the max
norm, ``max|a - b| / max|b|``, since elementwise relative error is meaningless for entries
near zero.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import gc
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
DEFAULT_THREADS = 2
MIB = 1024 * 1024

Output = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Impl:
    """One implementation of a case.

    ``run(inputs)`` performs the measured work once and returns its output (a dict of arrays,
    see the module notes). ``ours`` marks our library's implementations; the first of ours is
    the reference for the agreement check and for the ratios.
    """

    name: str
    run: Callable[[Any], Output]
    ours: bool = False


@dataclasses.dataclass(frozen=True)
class Case:
    """A measured operation: ``setup()`` builds the inputs, each :class:`Impl` consumes them.

    ``warmup_setup()`` builds tiny inputs of the same kind: the memory child runs each
    implementation on them first, so that one-off library initialisation is not counted.
    """

    name: str
    setup: Callable[[], Any]
    impls: tuple[Impl, ...]
    warmup_setup: Callable[[], Any] | None = None
    rtol: float = 1e-4

    def impl(self, name: str) -> Impl:
        for im in self.impls:
            if im.name == name:
                return im
        raise KeyError(f"case {self.name!r} has no implementation {name!r}")

    @property
    def reference(self) -> Impl:
        for im in self.impls:
            if im.ours:
                return im
        raise ValueError(f"case {self.name!r} has no implementation marked ours=True")


@dataclasses.dataclass
class Row:
    """The measurements of one implementation of one case."""

    case: str
    impl: str
    ours: bool
    times_s: list[float]
    discrepancy: float | None = None  # None for the reference itself
    peak_bytes: int | None = None
    peak_is_lower_bound: bool = False
    memory_error: str | None = None

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def min_s(self) -> float:
        return min(self.times_s)


@dataclasses.dataclass
class Options:
    repeats: int = 5
    warmup: int = 1
    threads: int = DEFAULT_THREADS
    memory: bool = True
    cases: tuple[str, ...] = ()  # see selected(); empty means every case
    memory_timeout_s: float = 600.0


class DiscrepancyError(AssertionError):
    """Two implementations of a case computed different quantities."""


# --------------------------------------------------------------------------------------------
# Agreement
# --------------------------------------------------------------------------------------------


def _as_float64_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu()
        return x.double().numpy() if x.numel() * 8 <= 64 * MIB else x.numpy()
    return np.asarray(x)


def _max_abs_diff_and_max_abs(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Blockwise so that large gradients are not copied to float64 whole."""
    a2 = a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(-1, 1)
    b2 = b.reshape(b.shape[0], -1) if b.ndim > 1 else b.reshape(-1, 1)
    step = max(1, (4 * MIB) // max(1, a2.shape[1]))
    diff = top = 0.0
    for s in range(0, a2.shape[0], step):
        x = a2[s : s + step].astype(np.float64)
        y = b2[s : s + step].astype(np.float64)
        diff = max(diff, float(np.max(np.abs(x - y), initial=0.0)))
        top = max(top, float(np.max(np.abs(y), initial=0.0)))
    return diff, top


def discrepancy(out: Output, ref: Output) -> float:
    """Largest relative disagreement of ``out`` with ``ref`` over their common keys.

    ``"value"`` elementwise: ``max |out - ref| / |ref|`` (``|ref|`` floored at 1e-30, and a
    NaN anywhere gives ``inf``); other keys in the max norm: ``max|out - ref| / max|ref|``.
    """
    keys = sorted(set(out) & set(ref))
    if not keys:
        raise ValueError("outputs share no key to compare")
    worst = 0.0
    for key in keys:
        a = _as_float64_numpy(out[key])
        b = _as_float64_numpy(ref[key])
        if a.shape != b.shape:
            raise DiscrepancyError(f"{key!r}: shapes differ, {a.shape} vs {b.shape}")
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            return math.inf
        if key == "value":
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            rel = np.abs(a64 - b64) / np.maximum(np.abs(b64), 1e-30)
            worst = max(worst, float(np.max(rel, initial=0.0)))
        else:
            diff, top = _max_abs_diff_and_max_abs(a, b)
            worst = max(worst, diff / top if top > 0 else (0.0 if diff == 0 else math.inf))
    return worst


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------


def time_impl(impl: Impl, inputs: Any, *, repeats: int, warmup: int,
              collect: bool = True) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls after ``warmup`` untimed ones.

    As in :mod:`timeit`, the cyclic garbage collector is off while the calls run (after one
    collection unless ``collect=False``), so that a collection of unrelated objects never
    lands inside a timed call.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1; got {repeats}")
    if collect:
        gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(warmup):
            out = impl.run(inputs)
            del out
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = impl.run(inputs)
            times.append(time.perf_counter() - start)
            del out
    finally:
        if enabled:
            gc.enable()
    return times


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not found in /proc/self/status")


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def measure_peak(case: Case, impl: Impl) -> dict[str, Any]:
    """Peak resident memory of one call of ``impl`` above its inputs, in *this* process.

    Call it in a fresh process (:func:`measure_peak_subprocess`): what ran before in the
    process (other implementations, freed arrays) would otherwise hide in the allocator.
    """
    if not Path("/proc/self/status").exists():
        raise OSError("peak memory needs Linux /proc/self/status")
    if case.warmup_setup is not None:
        small = case.warmup_setup()
        impl.run(small)
        del small
    gc.collect()
    inputs = case.setup()
    gc.collect()
    reset = _reset_hwm()
    base_kib = _status_kib("VmRSS")
    hwm_before_kib = _status_kib("VmHWM")
    out = impl.run(inputs)
    hwm_after_kib = _status_kib("VmHWM")
    del out
    lower_bound = (not reset) and hwm_after_kib <= hwm_before_kib
    return {
        "peak_bytes": max(0, hwm_after_kib - base_kib) * 1024,
        "baseline_bytes": base_kib * 1024,
        "lower_bound": lower_bound,
        "hwm_reset": reset,
    }


def _child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT)] + [p for p in sys.path if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    return env


def measure_peak_subprocess(
    suite: str, config: dict[str, Any], case: str, impl: str, *, threads: int,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Run :func:`measure_peak` for ``(case, impl)`` of suite module ``suite`` in a new process."""
    payload = json.dumps({"suite": suite, "config": config, "case": case, "impl": impl,
                          "threads": threads})
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks._runner", "--child", payload],
        cwd=ROOT, env=_child_env(threads), capture_output=True, text=True, timeout=timeout_s,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"memory child for {case}/{impl} failed (exit {proc.returncode}): "
                           + " | ".join(tail))
    return json.loads(lines[-1])


def _child_main(payload: str) -> int:
    spec = json.loads(payload)
    module = importlib.import_module(spec["suite"])
    if "torch" in sys.modules:  # suites without torch do not pay for importing it
        set_threads(spec["threads"])
    cases = {c.name: c for c in module.make_cases(spec["config"])}
    case = cases[spec["case"]]
    result = measure_peak(case, case.impl(spec["impl"]))
    print(json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# Machine
# --------------------------------------------------------------------------------------------


def set_threads(threads: int) -> None:
    """Fix torch's intra-op thread count (and the OpenMP/BLAS ones for children)."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1; got {threads}")
    import torch

    torch.set_num_threads(threads)


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version()}
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cpu"] = cpu
    info["logical_cpus"] = os.cpu_count()
    try:
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["usable_cpus"] = os.cpu_count()
    try:
        with open("/proc/meminfo") as fh:
            kib = int(fh.readline().split()[1])
        info["memory_gib"] = round(kib / MIB, 1)
    except (OSError, ValueError, IndexError):
        info["memory_gib"] = None
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        info["load_average"] = None
    versions = {}
    for mod in ("torch", "numpy", "scipy", "divergences"):
        try:
            versions[mod] = importlib.import_module(mod).__version__
        except Exception:  # a missing library is recorded, not fatal
            versions[mod] = "not installed"
    info["versions"] = versions
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch_threads"] = None
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10, check=False)
        info["commit"] = rev.stdout.strip() if rev.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        info["commit"] = None
    return info


# --------------------------------------------------------------------------------------------
# Running a suite
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Report:
    suite: str
    config: dict[str, Any]
    description: str
    options: Options
    machine: dict[str, Any]
    rows: list[Row]
    started: str
    memory_method: str

    def case_names(self) -> list[str]:
        return list(dict.fromkeys(r.case for r in self.rows))

    def verdicts(self) -> list[dict[str, Any]]:
        """Per case: ours (first of ours) against the fastest peer."""
        out = []
        for name in self.case_names():
            rows = [r for r in self.rows if r.case == name]
            ours = next((r for r in rows if r.ours), None)
            peers = [r for r in rows if not r.ours]
            if ours is None or not peers:
                continue
            fastest = min(peers, key=lambda r: r.median_s)
            verdict: dict[str, Any] = {
                "case": name, "ours": ours.impl, "peer": fastest.impl,
                "time_ratio": ours.median_s / fastest.median_s,
            }
            if ours.peak_bytes is not None and fastest.peak_bytes is not None:
                verdict["memory_ratio"] = _ratio(ours.peak_bytes, fastest.peak_bytes)
                leanest = min((p for p in peers if p.peak_bytes is not None),
                              key=lambda r: r.peak_bytes or 0)
                verdict["leanest_peer"] = leanest.impl
                verdict["memory_ratio_leanest"] = _ratio(ours.peak_bytes, leanest.peak_bytes)
                verdict["met"] = (verdict["time_ratio"] <= 1.5
                                  and ours.peak_bytes <= fastest.peak_bytes)
            else:
                verdict["met"] = None
            out.append(verdict)
        return out


def _ratio(a: int | None, b: int | None) -> float:
    if a is None or b is None:
        return math.nan
    if b == 0:
        return 1.0 if a == 0 else math.inf
    return a / b


def selected(name: str, patterns: Sequence[str]) -> bool:
    """Whether case ``name`` is selected: no pattern, or one equal to it or to a leading part
    of it that ends at a ``/`` (``kl`` selects ``kl/forward`` and ``kl/forward+backward``)."""
    return not patterns or any(name == p or name.startswith(p.rstrip("/") + "/")
                               for p in patterns)


def run_suite(module: Any, config: dict[str, Any], options: Options,
              log: Callable[[str], None] = print) -> Report:
    """Check, time and measure every case of ``module`` under ``config``.

    Torch's thread count is ``options.threads`` during the run and restored afterwards.
    """
    import torch

    before = torch.get_num_threads()
    set_threads(options.threads)
    try:
        return _run_suite(module, config, options, log)
    finally:
        torch.set_num_threads(before)


def _run_suite(module: Any, config: dict[str, Any], options: Options,
               log: Callable[[str], None]) -> Report:
    started = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_info()
    cases = [c for c in module.make_cases(config) if selected(c.name, options.cases)]
    if not cases:
        raise ValueError(f"no case of suite {module.NAME!r} matches {list(options.cases)}")
    rows: list[Row] = []
    hwm_reset = None
    for case in cases:
        log(f"[{case.name}] building inputs")
        inputs = case.setup()
        ref_impl = case.reference
        ref_out = ref_impl.run(inputs)
        case_rows = []
        for impl in case.impls:
            if impl is ref_impl:
                disc = None
            else:
                out = impl.run(inputs)
                disc = discrepancy(out, ref_out)
                del out
                log(f"[{case.name}] {impl.name}: max relative discrepancy vs "
                    f"{ref_impl.name} = {disc:.2e}")
                if not disc <= case.rtol:
                    raise DiscrepancyError(
                        f"case {case.name!r}: {impl.name} disagrees with {ref_impl.name} by "
                        f"{disc:.3g} (relative), above rtol={case.rtol:g}: they do not compute "
                        "the same quantity")
            case_rows.append(Row(case.name, impl.name, impl.ours, [], disc))
        del ref_out
        gc.collect()  # once per case: a full collection can take a second in a big process
        for row, impl in zip(case_rows, case.impls):
            row.times_s = time_impl(impl, inputs, repeats=options.repeats,
                                    warmup=options.warmup, collect=False)
            log(f"[{case.name}] {impl.name}: median {row.median_s * 1e3:.1f} ms")
        del inputs
        if options.memory:
            for row in case_rows:
                try:
                    res = measure_peak_subprocess(module.__name__, config, case.name, row.impl,
                                                  threads=options.threads,
                                                  timeout_s=options.memory_timeout_s)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    row.memory_error = str(exc)
                    log(f"[{case.name}] {row.impl}: memory not measured: {exc}")
                    continue
                row.peak_bytes = int(res["peak_bytes"])
                row.peak_is_lower_bound = bool(res["lower_bound"])
                hwm_reset = res["hwm_reset"] if hwm_reset is None else hwm_reset
                log(f"[{case.name}] {row.impl}: peak {row.peak_bytes / MIB:.1f} MiB above inputs")
        rows.extend(case_rows)
    if not options.memory:
        method = "not measured (--no-memory)"
    elif hwm_reset:
        method = ("peak RSS above the inputs: fresh subprocess per implementation, VmHWM reset "
                  "through /proc/self/clear_refs after the inputs are allocated, "
                  "VmHWM - VmRSS(baseline) after one call")
    else:
        method = ("peak RSS above the inputs: fresh subprocess per implementation, VmHWM could "
                  "not be reset, VmHWM after one call - VmRSS(baseline); '<=' marks lower bounds")
    return Report(suite=module.NAME, config=config, description=module.describe(config),
                  options=options, machine=machine, rows=rows, started=started,
                  memory_method=method)


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def _fmt_ratio(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf"
    return f"{x:.3g}x"


def _fmt_mem(row: Row) -> str:
    if row.peak_bytes is None:
        return "n/a"
    return ("<= " if row.peak_is_lower_bound else "") + f"{row.peak_bytes / MIB:.1f}"


def machine_line(m: dict[str, Any]) -> str:
    v = m["versions"]
    parts = [
        f"{m['cpu']}, {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable)",
        f"{m['memory_gib']} GiB RAM" if m.get("memory_gib") else "RAM unknown",
        m["platform"], f"Python {m['python']}",
        f"torch {v['torch']} (threads={m['torch_threads']})",
        f"numpy {v['numpy']}", f"scipy {v['scipy']}", f"divergences {v['divergences']}",
    ]
    if m.get("commit"):
        parts.append(f"commit {m['commit']}")
    if m.get("load_average"):
        parts.append("load average at start " + " / ".join(str(x) for x in m["load_average"]))
    return "; ".join(parts)


def to_markdown(report: Report, note: str | None = None, *, preliminary: bool = False) -> str:
    """One dated section: heading, note, machine, configuration, table and verdicts."""
    title = f"## {report.started} · suite `{report.suite}`"
    if preliminary:
        title += " · preliminary"
    lines = [title, ""]
    if note:
        lines += [f"*{note}*", ""]
    lines += [
        f"- Machine: {machine_line(report.machine)}",
        f"- Configuration: {report.description}; repeats={report.options.repeats}, "
        f"warm-up={report.options.warmup}, threads={report.options.threads}",
        f"- Time: median (min) wall clock of {report.options.repeats} calls after "
        f"{report.options.warmup} warm-up call(s), all implementations in one process",
        f"- Memory: {report.memory_method}",
        "",
        "| case | implementation | median ms | min ms | peak MiB above inputs "
        "| ours/this time | ours/this memory | max rel. discrepancy vs ours |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in report.case_names():
        rows = [r for r in report.rows if r.case == name]
        ours = next((r for r in rows if r.ours), None)
        for r in rows:
            if r.ours or ours is None:
                t_ratio = m_ratio = "-"
            else:
                t_ratio = _fmt_ratio(ours.median_s / r.median_s)
                m_ratio = _fmt_ratio(_ratio(ours.peak_bytes, r.peak_bytes))
            disc = "reference" if r.discrepancy is None else f"{r.discrepancy:.1e}"
            impl = f"**{r.impl}**" if r.ours else r.impl
            lines.append(f"| {name} | {impl} | {r.median_s * 1e3:.1f} | {r.min_s * 1e3:.1f} | "
                         f"{_fmt_mem(r)} | {t_ratio} | {m_ratio} | {disc} |")
    lines.append("")
    verdicts = report.verdicts()
    if verdicts:
        lines.append("Target: ours within 1.5x of the fastest peer in time and not above it in "
                     "peak memory.")
        lines.append("")
        for v in verdicts:
            text = (f"- `{v['case']}`: {v['ours']} takes {_fmt_ratio(v['time_ratio'])} the time "
                    f"of the fastest peer ({v['peer']})")
            if "memory_ratio" in v:
                text += (f" and {_fmt_ratio(v['memory_ratio'])} its peak memory "
                         f"({_fmt_ratio(v['memory_ratio_leanest'])} that of the leanest peer, "
                         f"{v['leanest_peer']}): target "
                         + ("met" if v["met"] else "**missed**"))
            else:
                text += "; memory not measured"
            lines.append(text)
        lines.append("")
    return "\n".join(lines) + "\n"


RESULTS_HEADER = """# Benchmark results

Each section is one run of `python -m benchmarks <suite>` (newest last), written by the runner
itself: the machine, the configuration, the table and the verdict against the target. See
`benchmarks/README.md` for the method. Timings from a busy machine are marked preliminary.

"""


def append_results(path: Path, markdown: str) -> None:
    """Append a section to the results file, creating it with its header if needed."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    if not text.strip():
        text = RESULTS_HEADER
    if not text.endswith("\n\n"):
        text = text.rstrip("\n") + "\n\n"
    path.write_text(text + markdown)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("runner")
    g.add_argument("--repeats", type=int, default=5, help="timed calls per implementation")
    g.add_argument("--warmup", type=int, default=1, help="untimed calls before timing")
    g.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help=f"torch intra-op threads (default {DEFAULT_THREADS})")
    g.add_argument("--quick", action="store_true",
                   help="tiny sizes, one repeat: checks the machinery, not the speed")
    g.add_argument("--no-memory", action="store_true",
                   help="skip the peak-memory subprocesses")
    g.add_argument("--cases", nargs="+", default=(),
                   help="run only these cases: a full name (kl/forward) or a leading part "
                   "of one ending at a '/' (kl)")
    g.add_argument("--results", type=Path, default=None,
                   help="Markdown file to append the results to (default benchmarks/RESULTS.md; "
                   "--quick runs are only recorded when --results is given)")
    g.add_argument("--no-record", action="store_true", help="print only; do not append")
    g.add_argument("--note", default=None, help="a note recorded with the results")
    g.add_argument("--preliminary", action="store_true",
                   help="mark the results preliminary (e.g. measured on a busy machine)")


def options_from_args(args: argparse.Namespace) -> Options:
    for name in ("repeats", "threads"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be at least 1; got {getattr(args, name)}")
    if args.warmup < 0:
        raise SystemExit(f"--warmup must be at least 0; got {args.warmup}")
    return Options(repeats=1 if args.quick else args.repeats,
                   warmup=min(args.warmup, 1) if args.quick else args.warmup,
                   threads=args.threads, memory=not args.no_memory, cases=tuple(args.cases))


def run_from_args(module: Any, args: argparse.Namespace,
                  log: Callable[[str], None] = print) -> Report:
    config = module.config_from_args(args)
    if args.quick:
        config.update(module.QUICK)
    report = run_suite(module, config, options_from_args(args), log=log)
    markdown = to_markdown(report, args.note, preliminary=args.preliminary)
    print()
    print(markdown)
    results = args.results if args.results is not None else (
        None if args.quick else DEFAULT_RESULTS)
    if results is not None and not args.no_record:
        append_results(results, markdown)
        print(f"appended to {results}")
    return report


def _main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 2 and argv[0] == "--child":
        return _child_main(argv[1])
    print("this module is the runner; run a suite with `python -m benchmarks <suite>`",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main())
