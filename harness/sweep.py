"""Exhaustive sweeps (``losscheck sweep``): every value of a format, against the oracle, in chunks.

A sweep enumerates every value of the input format (NaN payloads collapsed to one NaN; +-0,
subnormals and +-inf included; a loss's declared domain narrows it) -- or every pair of values for
a two-class row -- times the grid its loss declares for the other arguments
(``LossDef.sweep``).  Point indices are cut into chunks; each chunk is computed in two tasks:

1. :func:`oracle_chunk`, in a process that never loads a backend (the runner's isolation rule);
2. :func:`backend_chunk`, in a process that loads the backend and judges its outputs with the
   gate's own figures and ladder (harness/metrics.py, harness/verdict.py);

and written by the driver as one npz file, atomically (tmp + rename), so a killed sweep resumes
without losing or repeating a chunk.  The engines (a process pool, or Dask distributed) only move
those two tasks; the files and the summary are the same whichever ran them (docs/sweeps.md).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import sys
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npformat

from harness.verdict import RUNG_SEVERITY, RUNGS  # the rung arrays of chunk files index RUNGS

# the chunk files' format (docs/CONTRACTS.md, "Sweep directory"): its names and its one reader
from reports.sweep import CHUNK_SCHEMA, MANIFEST_SCHEMA, SweepDataError
from reports.sweep import read_chunk as _read_chunk

MANIFEST = "manifest.json"
SUMMARY = "summary.jsonl"


class SweepError(Exception):
    """Bad usage of a sweep (unknown loss, a manifest that does not match): a one-line message."""


# ---------------------------------------------------------------------------------------------------
# the domain: every value of a format, as index ranges of bit patterns

@dataclass(frozen=True)
class Domain:
    """The values a sweep enumerates, in order: +0 up to +inf, -0 down to -inf, one NaN (or the
    part of that inside ``bounds``).  ``segments`` are (first bit pattern, count) runs."""

    dtype: str
    segments: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, dtype: str, bounds: tuple[float, float] | None = None) -> Domain:
        from reference.formats import FORMATS

        fmt = FORMATS[dtype]
        width = 8 * fmt.uint.itemsize
        sign = 1 << (width - 1)
        inf = int(np.array(np.inf, fmt.np_dtype).view(fmt.uint))
        if bounds is None:
            return cls(dtype, ((0, inf + 1), (sign, inf + 1), (inf + (1 << (fmt.p - 2)), 1)))

        def bits(v: float) -> int:
            return int(np.array(abs(v), fmt.np_dtype).view(fmt.uint))

        lo, hi = (float(np.array(b, fmt.np_dtype).astype(np.float64)) for b in bounds)
        segs = []
        if hi >= 0:
            segs.append((bits(max(lo, 0.0)), bits(hi) - bits(max(lo, 0.0)) + 1))
        if lo <= 0:  # -0 counts as inside [lo, hi] whenever 0 does
            top = bits(min(hi, 0.0))
            segs.append((sign | top, bits(lo) - top + 1))
        return cls(dtype, tuple(s for s in segs if s[1] > 0))

    @property
    def size(self) -> int:
        return sum(n for _, n in self.segments)

    def bits(self, idx: np.ndarray) -> np.ndarray:
        """Bit patterns (the format's unsigned integer) of the values at these indices."""
        from reference.formats import FORMATS

        idx = np.asarray(idx, np.int64)
        out = np.zeros(idx.shape, np.uint64)
        start = 0
        for first, n in self.segments:
            inside = (idx >= start) & (idx < start + n)
            out[inside] = np.uint64(first) + (idx[inside] - start).astype(np.uint64)
            start += n
        return out.astype(FORMATS[self.dtype].uint)

    def values(self, idx: np.ndarray) -> np.ndarray:
        from reference.formats import FORMATS

        return self.bits(idx).view(FORMATS[self.dtype].np_dtype)


# ---------------------------------------------------------------------------------------------------
# what is swept

@dataclass(frozen=True)
class SweepSpec:
    """One sweep's parameters: everything its chunk files depend on (the manifest holds them)."""

    loss: str
    dtype: str
    backend: str
    grid: tuple[tuple[str, tuple], ...]
    chunk_size: int = 4096
    grad: bool = True
    device: str = "cpu"
    tolerances: dict = field(default_factory=dict)  # the output dtype's DtypeTolerance fields

    @classmethod
    def declared(cls, loss: str, dtype: str, backend: str = "torch", *, chunk_size: int = 4096,
                 grid: dict[str, Sequence[Any]] | None = None, grad: bool = True, device: str = "cpu",
                 tolerances: Any = None) -> SweepSpec:
        """The sweep ``loss`` declares (its LossDef.sweep), with grid axes replaced by ``grid``."""
        from dataclasses import asdict

        from reference import registry
        from reference.lossdef import sweep_value

        try:
            d = registry.get(loss)
        except ValueError as exc:
            raise SweepError(str(exc)) from None
        if d.sweep is None:
            sweepable = [n for n, x in registry.REGISTRY.items() if x.sweep is not None]
            raise SweepError(f"{loss} declares no sweep; sweepable: {', '.join(sweepable)}")
        if dtype not in d.dtypes:
            raise SweepError(f"{loss} is not checked in {dtype} (checked: {', '.join(d.dtypes)})")
        axes = dict(d.sweep.grid)
        for name, values in (grid or {}).items():
            if name not in axes:
                raise SweepError(f"--grid {name}: {loss}'s sweep has no grid axis {name!r}"
                                 f" (axes: {', '.join(axes) or 'none'})")
            if not values:
                raise SweepError(f"--grid {name}: no values")
            axes[name] = tuple(values)
        try:  # resolved and rounded to the format now: the manifest holds the numbers swept
            resolved = tuple((name, tuple(_in_format(sweep_value(v, dtype), dtype) for v in values))
                             for name, values in axes.items())
        except ValueError as exc:
            raise SweepError(str(exc)) from None
        if chunk_size < 1:
            raise SweepError(f"--chunk-size must be at least 1, got {chunk_size}")
        if tolerances is None:
            from harness.tolerances import DEFAULTS

            tolerances = DEFAULTS
        tol = asdict(tolerances.for_dtype(dtype) if hasattr(tolerances, "for_dtype") else tolerances[dtype])
        return cls(loss, dtype, backend, resolved, chunk_size, grad, device, tol)

    @property
    def definition(self) -> Any:
        from reference import registry

        return registry.get(self.loss).sweep

    @property
    def domain(self) -> Domain:
        return Domain.of(self.dtype, self.definition.domain)

    @property
    def width(self) -> int:
        return self.definition.width

    @property
    def points(self) -> int:
        """Swept points per grid point: the domain's size, to the width-th power."""
        return self.domain.size ** self.width

    @property
    def grid_points(self) -> list[dict[str, Any]]:
        names = [n for n, _ in self.grid]
        return [dict(zip(names, combo)) for combo in itertools.product(*(v for _, v in self.grid))]

    @property
    def nchunks(self) -> int:
        return -(-self.points // self.chunk_size)

    def checks(self) -> list[str]:
        """The checks of every grid point: the value, and a gradient per differentiable argument
        of the first grid point's call (the grid changes values, not which arguments are tensors)."""
        from reference import registry

        d = registry.get(self.loss)
        args, kwargs = self.call(np.array([0], np.int64), self.grid_points[0])
        return list(d.checks_for(args, kwargs)) if self.grad else ["value"]

    def inputs(self, lo: int, hi: int) -> np.ndarray:
        """The swept values of points [lo, hi): (n,) or (n, width)."""
        idx = np.arange(lo, hi, dtype=np.int64)
        dom = self.domain
        if self.width == 1:
            return dom.values(idx)
        cols, rest = [], idx
        for _ in range(self.width):
            rest, col = np.divmod(rest, dom.size)
            cols.append(col)
        return np.stack([dom.values(c) for c in reversed(cols)], axis=1)

    def call(self, idx: np.ndarray, point: dict[str, Any]) -> tuple[tuple, dict]:
        from reference import registry

        lo, hi = (int(idx[0]), int(idx[-1]) + 1) if len(idx) else (0, 0)
        return registry.get(self.loss).sweep_call(self.inputs(lo, hi), point)

    def chunk_range(self, k: int) -> tuple[int, int]:
        return k * self.chunk_size, min(self.points, (k + 1) * self.chunk_size)

    def to_dict(self) -> dict:
        return {"loss": self.loss, "dtype": self.dtype, "backend": self.backend,
                "grid": [[n, list(v)] for n, v in self.grid], "chunk_size": self.chunk_size, "grad": self.grad,
                "device": self.device, "tolerances": self.tolerances}

    @classmethod
    def from_dict(cls, d: dict) -> SweepSpec:
        return cls(d["loss"], d["dtype"], d["backend"], tuple((n, tuple(v)) for n, v in d["grid"]),
                   int(d["chunk_size"]), bool(d["grad"]), d.get("device", "cpu"), dict(d.get("tolerances", {})))

    @property
    def sweep_id(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _in_format(v: Any, dtype: str) -> Any:
    """A grid number as the format holds it (0.1 in float16 is 0.0999755859375); None and
    integers (class indices) as given."""
    from reference.formats import np_dtype

    if v is None or (isinstance(v, int) and not isinstance(v, bool)):
        return v
    return float(np.array(v, np.float64).astype(np_dtype(dtype)).astype(np.float64))


# ---------------------------------------------------------------------------------------------------
# the two tasks of a chunk (top level: worker processes and Dask workers import them by name)

#: backends this process has loaded: a process that holds one never computes an oracle value
_LOADED: dict[tuple[str, str], Any] = {}

#: the exact-value fields a chunk keeps from the oracle (its cond/scale/nterms only judge)
_ORACLE_FIELDS = ("rounded", "hi", "lo", "undetermined", "cond", "scale", "nterms")


def oracle_chunk(spec_dict: dict, k: int) -> dict[str, np.ndarray]:
    """The oracle's answers for chunk ``k``: per check ``c`` and field ``f`` of
    :data:`_ORACLE_FIELDS`, ``c{c}_{f}`` of shape (grid points, elements) -- the output (or
    gradient) flattened, so a two-logit row's input gradient has two elements per point.  Refuses
    to run in a process that has loaded a backend."""
    import warnings

    import reference
    from reference.formats import FORMATS

    if _LOADED:
        raise RuntimeError("oracle asked of a process that has loaded a backend")
    spec = SweepSpec.from_dict(spec_dict)
    lo, hi = spec.chunk_range(k)
    idx = np.arange(lo, hi, dtype=np.int64)
    checks, points = spec.checks(), spec.grid_points
    uint = FORMATS[spec.dtype].uint
    out: dict[str, list] = {f"c{c}_{f}": [] for c in range(len(checks)) for f in _ORACLE_FIELDS}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # the oracle meets inf and NaN on purpose
        for point in points:
            args, kwargs = spec.call(idx, point)
            go = np.ones(len(idx), np.float64)
            for c, check in enumerate(checks):
                ex = (reference.evaluate(spec.loss, *args, **kwargs) if check == "value" else
                      reference.evaluate_grad(spec.loss, *args, grad_output=go, wrt=check.partition(":")[2],
                                              **kwargs))
                h, lw = ex.hilo()
                got = {"rounded": np.ascontiguousarray(ex.rounded).view(uint), "hi": h, "lo": lw,
                       "undetermined": ex.undetermined, "cond": ex.cond, "scale": ex.scale, "nterms": ex.nterms}
                for f in _ORACLE_FIELDS:
                    out[f"c{c}_{f}"].append(np.asarray(got[f]).reshape(-1))
    res = {key: np.stack(v) for key, v in out.items()}
    res["oracle_pid"] = np.array(os.getpid(), np.int64)
    res["oracle_saw_torch"] = np.array("torch" in sys.modules)  # the backend's library, never imported here
    return res


def _backend(spec: SweepSpec) -> Any:
    key = (spec.backend, spec.device)
    if key not in _LOADED:
        from harness.backends import load

        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        _LOADED[key] = load(spec.backend, spec.device)
        if "torch" in sys.modules:  # one thread per worker: the workers already fill the cores
            sys.modules["torch"].set_num_threads(1)
    return _LOADED[key]


def backend_chunk(spec_dict: dict, k: int, oracle: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The backend's outputs for chunk ``k`` judged against ``oracle`` (:func:`oracle_chunk`'s):
    the chunk file's arrays.  Never raises for the backend's trouble: a grid point whose
    evaluation fails has a status and message (``status``/``message``, (grid points, checks))
    instead of figures.  Outputs are judged in the input's format (a sweep is --strict-dtype)."""
    import warnings

    from cases.model import make_case
    from harness.backends.base import one_line
    from harness.metrics import figures
    from harness.tolerances import DtypeTolerance
    from harness.verdict import classify
    from reference.exact import Exact
    from reference.formats import FORMATS
    from reference.fpu import oracle_state

    spec = SweepSpec.from_dict(spec_dict)
    lo, hi = spec.chunk_range(k)
    idx = np.arange(lo, hi, dtype=np.int64)
    n = len(idx)
    checks, points = spec.checks(), spec.grid_points
    fmt = FORMATS[spec.dtype]
    tol = DtypeTolerance(**spec.tolerances)
    res: dict[str, np.ndarray] = {
        "schema": np.array(CHUNK_SCHEMA), "chunk": np.array(k, np.int64), "first": np.array(lo, np.int64),
        "inputs": np.ascontiguousarray(spec.inputs(lo, hi)).view(fmt.uint),
        "status": np.full((len(points), len(checks)), "ok", dtype="<U12"),
        "message": np.full((len(points), len(checks)), "", dtype="<U200"),
        "oracle_pid": oracle["oracle_pid"], "oracle_saw_torch": oracle["oracle_saw_torch"],
        "backend_pid": np.array(os.getpid(), np.int64)}
    for c in range(len(checks)):
        shape = oracle[f"c{c}_hi"].shape
        for f in ("rounded", "hi", "lo", "undetermined"):
            res[f"c{c}_{f}"] = oracle[f"c{c}_{f}"]
        res[f"c{c}_observed"] = np.zeros(shape, fmt.uint)
        res[f"c{c}_ulp"] = np.full(shape, np.nan)
        res[f"c{c}_bits"] = np.full(shape, np.nan, np.float32)
        res[f"c{c}_rung"] = np.full(shape, RUNGS.index("undetermined"), np.int8)
    status, message = res["status"], res["message"]
    try:
        backend, load_error = _backend(spec), None
    except Exception as exc:  # noqa: BLE001 - a backend failing to load is its error
        backend, load_error = None, f"loading backend: {one_line(exc)}"
    for g, point in enumerate(points):
        args, kwargs = spec.call(idx, point)
        obs, problem = None, None
        if load_error:
            problem = ("error", load_error)
        else:
            try:
                go = np.ones(n, fmt.np_dtype) if spec.grad else None
                case = make_case(spec.loss, args, kwargs, family="sweep.exhaustive", grad=spec.grad, grad_output=go)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    obs = backend.evaluate(case)
            except Exception as exc:  # noqa: BLE001 - backend code is untrusted
                problem = ("unsupported" if type(exc).__name__ == "Unsupported" else "error", one_line(exc))
        for c, check in enumerate(checks):
            if problem is not None:
                status[g, c], message[g, c] = problem[0], problem[1][:200]
                continue
            size = oracle[f"c{c}_hi"].shape[1]
            want = (n,) if size == n else (n, size // n)
            got = obs.observed(check) if hasattr(obs, "observed") else None
            if not isinstance(got, np.ndarray) or got.shape != want or str(got.dtype) != spec.dtype:
                what = "nothing" if got is None else (f"{got.dtype}{list(got.shape)}" if isinstance(got, np.ndarray)
                                                      else type(got).__name__)
                status[g, c] = "bad_output"
                message[g, c] = f"bad output: expected {spec.dtype}{list(want)}, got {what}"[:200]
                continue
            got = got.reshape(-1)
            ex = Exact(np.full(size, None, object), oracle[f"c{c}_rounded"][g].view(fmt.np_dtype),
                       oracle[f"c{c}_undetermined"][g], oracle[f"c{c}_cond"][g], oracle[f"c{c}_scale"][g],
                       oracle[f"c{c}_nterms"][g], spec.dtype, hi=oracle[f"c{c}_hi"][g], lo=oracle[f"c{c}_lo"][g])
            with oracle_state(), np.errstate(all="ignore"):
                figs = figures(ex, got)
                rungs = classify(ex, got, figs, tol)
            res[f"c{c}_observed"][g] = np.ascontiguousarray(got).view(fmt.uint)
            res[f"c{c}_ulp"][g], res[f"c{c}_bits"][g] = figs["ulp"], figs["bits"]
            res[f"c{c}_rung"][g] = _rung_index(rungs)
    return res


def _rung_index(rungs: np.ndarray) -> np.ndarray:
    """Rung names -> their index in RUNGS (int8, what chunk files hold)."""
    out = np.zeros(rungs.shape, np.int8)
    for i, name in enumerate(RUNGS):
        out[rungs == name] = i
    return out


# ---------------------------------------------------------------------------------------------------
# the sweep directory

def chunk_path(root: Path, k: int) -> Path:
    return root / "chunks" / f"chunk-{k:08d}.npz"


def write_chunk(root: Path, k: int, arrays: dict[str, np.ndarray]) -> Path:
    """Write one chunk file atomically: a reader (or a resumed sweep) sees it whole or not at all."""
    path = chunk_path(root, k)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        # what np.savez_compressed writes, at deflate level 1: a float32 chunk of 2^20 points (243 MB
        # of arrays) took 35 s at savez_compressed's level 6 on the loaded development machine and
        # 6 s at level 1, 3 % larger -- the driver's compression was most of a float32 sweep's time
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True) as z:
            for name, a in arrays.items():
                with z.open(f"{name}.npy", "w", force_zip64=True) as member:
                    npformat.write_array(member, np.asanyarray(a), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_chunk(path: Path) -> dict[str, np.ndarray]:
    """A chunk file's arrays (reports.sweep.read_chunk; its error as a SweepError)."""
    try:
        return _read_chunk(path)
    except SweepDataError as exc:
        raise SweepError(str(exc)) from None


def finished_chunks(root: Path) -> set[int]:
    out = set()
    for p in (root / "chunks").glob("chunk-*.npz"):
        try:
            out.add(int(p.stem.split("-")[1]))
        except (IndexError, ValueError):
            continue
    return out


def manifest(spec: SweepSpec) -> dict:
    from harness.results_file import versions
    from reference import ORACLE_VERSION

    return {"schema": MANIFEST_SCHEMA, "sweep_id": spec.sweep_id, "spec": spec.to_dict(),
            "oracle_version": ORACLE_VERSION, "versions": versions(), "points": spec.points,
            "domain": [list(s) for s in spec.domain.segments], "width": spec.width,
            "grid_points": spec.grid_points, "checks": spec.checks(), "nchunks": spec.nchunks,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}


#: manifest fields a resumed sweep must match (its chunks were computed with them)
_MUST_MATCH = ("schema", "sweep_id", "oracle_version")


def prepare_dir(root: Path, spec: SweepSpec, resume: bool, overwrite: bool) -> dict:
    """Create (or check, on resume) the sweep directory and its manifest; return the manifest.

    Without ``resume`` an existing sweep is refused unless ``overwrite``; with it, a manifest of
    another sweep (parameters, oracle version, backend or torch version) is refused."""
    import shutil

    want = manifest(spec)
    path = root / MANIFEST
    exists = path.exists() or (root / "chunks").exists()
    if exists and not resume:
        if not overwrite:
            raise SweepError(f"{root}: holds a sweep already; pass --resume to continue it or --overwrite "
                             "to replace it")
        for sub in ("chunks",):
            shutil.rmtree(root / sub, ignore_errors=True)
        for f in (MANIFEST, SUMMARY):
            (root / f).unlink(missing_ok=True)
    elif exists:
        try:
            have = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SweepError(f"{path}: unreadable manifest ({exc}); --overwrite starts over") from None
        if not isinstance(have, dict):
            raise SweepError(f"{path}: not a sweep manifest; --overwrite starts over")
        differs = [k for k in _MUST_MATCH if have.get(k) != want.get(k)]
        vh, vw = have.get("versions", {}), want["versions"]
        differs += [f"{d} version" for d in ("torch", "numpy", "mpmath") if vh.get(d) != vw.get(d)]
        if differs:
            raise SweepError(f"cannot resume {root}: it was swept with other {', '.join(differs)} "
                             "(--overwrite starts over)")
        return have
    root.mkdir(parents=True, exist_ok=True)
    _atomic_text(path, json.dumps(want, indent=1, allow_nan=False) + "\n")
    return want


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------
# engines: who runs the two tasks of each chunk

class PoolEngine:
    """Two process pools: oracle workers that never load a backend (spawned: fresh interpreters,
    not forks of a server that has imported torch), backend workers that never compute an oracle
    value (forkserver where there is one, never a fork of a process that has run torch)."""

    name = "process pool"

    def __init__(self, jobs: int) -> None:
        import concurrent.futures as cf
        import multiprocessing as mp

        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        self.nbackend = max(1, jobs // 4)
        self.noracle = max(1, jobs - self.nbackend)
        self.oracle = cf.ProcessPoolExecutor(self.noracle, mp_context=mp.get_context("spawn"))
        self.backend = cf.ProcessPoolExecutor(self.nbackend, mp_context=mp.get_context(method))
        self.workers = self.noracle + self.nbackend

    def run(self, spec: SweepSpec, chunks: Sequence[int], on_done: Callable[[int, dict], None]) -> None:
        import concurrent.futures as cf

        sd = spec.to_dict()
        todo = list(chunks)
        in_flight: dict[cf.Future, tuple[str, int]] = {}
        window = 2 * self.workers + 2

        def fill() -> None:
            while todo and sum(1 for kind, _ in in_flight.values() if kind == "oracle") < window:
                k = todo.pop(0)
                in_flight[self.oracle.submit(oracle_chunk, sd, k)] = ("oracle", k)

        fill()
        while in_flight:
            done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                kind, k = in_flight.pop(fut)
                result = _result(fut, kind, k)
                if kind == "oracle":
                    in_flight[self.backend.submit(backend_chunk, sd, k, result)] = ("backend", k)
                else:
                    on_done(k, result)
            fill()

    def close(self, wait: bool = True) -> None:
        """Shut the pools down; without ``wait`` (^C, an error) their workers are ended now."""
        for ex in (self.oracle, self.backend):
            if not wait:
                for proc in list((getattr(ex, "_processes", None) or {}).values()):
                    proc.terminate()
            ex.shutdown(wait=wait, cancel_futures=True)

    def worker_pids(self) -> dict[str, int]:
        return {f"{name}-{pid}": pid for name, ex in (("oracle", self.oracle), ("backend", self.backend))
                for pid in (getattr(ex, "_processes", None) or {})}


def _result(fut: Any, kind: str, k: int) -> Any:
    """A task's result, or a SweepError naming the chunk (finished chunks are on disk already)."""
    from harness.backends.base import one_line

    try:
        return fut.result()
    except Exception as exc:  # noqa: BLE001 - one line for the CLI, whatever the engine raised
        died = type(exc).__name__ in ("BrokenProcessPool", "KilledWorker")
        what = "a worker process died" if died else one_line(exc)
        raise SweepError(f"chunk {k}, {kind} task: {what}; the finished chunks are kept "
                         "(--resume continues)") from None


class DaskEngine:
    """Dask distributed: oracle tasks on workers with the resource ``oracle``, backend tasks on
    workers with the resource ``backend``; no worker has both (the isolation rule).
    ``scheduler`` "local" starts a LocalCluster of worker processes (nannies restart a dead one);
    an address uses an existing cluster whose workers were started with ``--resources``."""

    name = "dask"

    def __init__(self, scheduler: str, workers: int) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise SweepError("--scheduler needs Dask distributed: pip install 'losscheck[dask]'") from None
        import logging

        logging.getLogger("distributed").setLevel(logging.ERROR)  # worker start/stop chatter
        self.cluster = None
        if scheduler == "local":
            self.cluster = _local_cluster(max(2, workers))
            self.client = Client(self.cluster)
        else:
            try:
                self.client = Client(scheduler, timeout=30)
            except (OSError, TimeoutError, ValueError) as exc:
                raise SweepError(f"--scheduler {scheduler}: cannot connect ({str(exc).splitlines()[0]})") from None
        info = self.client.scheduler_info(n_workers=-1) if _takes_n_workers(self.client) else \
            self.client.scheduler_info()
        res = [w.get("resources", {}) for w in info.get("workers", {}).values()]
        both = [r for r in res if r.get("oracle") and r.get("backend")]
        if both or not any(r.get("oracle") for r in res) or not any(r.get("backend") for r in res):
            self.close()
            raise SweepError(f"--scheduler {scheduler}: the cluster needs workers with the resource oracle and "
                             "others with the resource backend, none with both (dask worker ADDRESS --resources "
                             "oracle=1, and --resources backend=1): the oracle never runs where a backend is loaded")
        self.workers = len(res)

    def run(self, spec: SweepSpec, chunks: Sequence[int], on_done: Callable[[int, dict], None]) -> None:
        from distributed import as_completed

        sd = spec.to_dict()
        todo = list(chunks)
        window = 2 * self.workers + 2
        tag = uuid.uuid4().hex[:8]

        def submit(k: int) -> Any:
            o = self.client.submit(oracle_chunk, sd, k, resources={"oracle": 1}, key=f"oracle-{tag}-{k}",
                                   retries=2)
            return self.client.submit(backend_chunk, sd, k, o, resources={"backend": 1},
                                      key=f"backend-{tag}-{k}", retries=2)

        start = [submit(todo.pop(0)) for _ in range(min(window, len(todo)))]
        ac = as_completed(start, with_results=False)
        for fut in ac:
            k = int(str(fut.key).rsplit("-", 1)[1])
            on_done(k, _result(fut, "backend or oracle", k))
            fut.release()
            if todo:
                ac.add(submit(todo.pop(0)))

    def worker_pids(self) -> dict[str, int]:
        return dict(self.client.run(os.getpid))

    def close(self, wait: bool = True) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _takes_n_workers(client: Any) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False


def _local_cluster(n: int) -> Any:
    """A LocalCluster of ``n`` single-threaded worker processes under nannies: a quarter of them
    (at least one) with the resource ``backend``, the rest with ``oracle``."""
    from distributed import LocalCluster, Nanny

    nbackend = max(1, n // 4)
    cluster = LocalCluster(n_workers=0, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=40)
    for i in range(n):
        kind = "backend" if i < nbackend else "oracle"
        cluster.worker_spec[f"{kind}-{i}"] = {"cls": Nanny, "options": {
            "nthreads": 1, "resources": {kind: 1}, "memory_limit": 0, "silence_logs": 40,
            "env": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                    "DASK_LOGGING__DISTRIBUTED": "error"}}}
    cluster.scale(n)
    cluster.sync(cluster._correct_state)
    cluster.wait_for_workers(n, timeout=120)
    return cluster


# ---------------------------------------------------------------------------------------------------
# the driver

@dataclass
class SweepResult:
    root: Path
    manifest: dict
    done: int  # chunks computed by this call
    skipped: int  # chunks found finished
    wanted: list[int]
    wall: float
    records: list[dict] = field(default_factory=list)
    complete: bool = False


class _Progress:
    """``losscheck: sweep 12/16 chunks (75 %), 8,424 evaluations/s, 47 s elapsed, ETA 16 s`` on
    stderr at every 10 % and at least every ``every_s`` seconds (a thread: a slow chunk must not
    look like a hang)."""

    def __init__(self, total: int, per_chunk: int, enabled: bool, every_s: float = 30.0) -> None:
        import threading

        self.total, self.per_chunk, self.enabled, self.every_s = total, per_chunk, enabled and total > 0, every_s
        self.t0 = self.last = time.monotonic()
        self.done = self.decile = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if self.enabled:
            self._thread = threading.Thread(target=self._heartbeat, name="losscheck-sweep-progress", daemon=True)
            self._thread.start()

    def step(self) -> None:
        with self._lock:
            self.done += 1
            decile = 10 * self.done // max(self.total, 1)
            if self.enabled and (decile > self.decile or self.done == self.total):
                self.decile = decile
                self._line()

    def _line(self) -> None:
        now = time.monotonic()
        spent = now - self.t0
        text = f"losscheck: sweep {self.done:,}/{self.total:,} chunks ({100 * self.done // self.total} %)"
        if self.done:
            text += f", {self.done * self.per_chunk / max(spent, 1e-9):,.0f} evaluations/s"
        text += f", {spent:.0f} s elapsed"
        if 0 < self.done < self.total:
            text += f", ETA {(self.total - self.done) * spent / self.done:.0f} s"
        try:
            print(text, file=sys.stderr, flush=True)
        except (OSError, ValueError):  # a closed stderr must not end the sweep
            self.enabled = False
        self.last = now

    def _heartbeat(self) -> None:
        while not self._stop.wait(min(1.0, self.every_s / 4)):
            with self._lock:
                if self.enabled and time.monotonic() - self.last >= self.every_s and self.done < self.total:
                    self._line()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def parse_chunks(text: str | None, nchunks: int) -> list[int]:
    """``--chunks A:B`` (Python slice bounds, either may be left out) -> chunk indices."""
    if not text:
        return list(range(nchunks))
    a, sep, b = text.partition(":")
    try:
        lo = int(a) if a.strip() else 0
        hi = int(b) if b.strip() else nchunks
    except ValueError:
        raise SweepError(f"--chunks {text!r}: expected A:B (chunk indices, e.g. 0:8)") from None
    if not sep or lo < 0 or hi > nchunks or lo >= hi:
        raise SweepError(f"--chunks {text!r}: expected A:B with 0 <= A < B <= {nchunks}")
    return list(range(lo, hi))


def run_sweep(spec: SweepSpec, root: str | Path, *, resume: bool = False, overwrite: bool = False,
              jobs: int = 2, scheduler: str | None = None, chunks: str | None = None, progress: bool = False,
              on_chunk: Callable[[Any, int], None] | None = None) -> SweepResult:
    """Compute every missing chunk of ``spec`` (or of the ``chunks`` slice ``A:B``) into ``root``;
    then, when the whole sweep is there, write its summary (results format) to ``root/summary.jsonl``.

    ``on_chunk(engine, k)`` is called in this process after each chunk file is written (tests use
    it to kill a worker mid-sweep)."""
    t0 = time.perf_counter()
    root = Path(root)
    wanted = parse_chunks(chunks, spec.nchunks)
    man = prepare_dir(root, spec, resume, overwrite)
    have = finished_chunks(root)
    todo = [k for k in wanted if k not in have]
    per_chunk = spec.chunk_size * len(spec.grid_points) * len(spec.checks())
    done = 0
    if todo:
        engine = DaskEngine(scheduler, jobs) if scheduler else PoolEngine(jobs)
        bar = _Progress(len(todo), per_chunk, progress)

        def on_done(k: int, arrays: dict) -> None:
            nonlocal done
            write_chunk(root, k, arrays)
            done += 1
            bar.step()
            if on_chunk is not None:
                on_chunk(engine, k)

        finished = False
        try:
            engine.run(spec, todo, on_done)
            finished = True
        finally:
            bar.close()
            engine.close(wait=finished)
    result = SweepResult(root, man, done, len(wanted) - len(todo), wanted, time.perf_counter() - t0)
    result.complete = finished_chunks(root) >= set(range(spec.nchunks))
    if result.complete:
        result.records = write_summary(root, spec, man)
    return result


# ---------------------------------------------------------------------------------------------------
# the summary: one results-format record per (grid point, check)

def iter_chunks(root: Path, nchunks: int) -> Iterator[dict[str, np.ndarray]]:
    for k in range(nchunks):
        path = chunk_path(root, k)
        if path.exists():
            yield read_chunk(path)


def _case_id(spec: SweepSpec, point: dict) -> str:
    text = json.dumps({"sweep": 1, "loss": spec.loss, "dtype": spec.dtype, "grid": point,
                       "domain": spec.definition.domain, "width": spec.width}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def point_text(spec: SweepSpec, point: dict) -> str:
    """``target=0.25, pos_weight=3`` (None axes left out): how reports name a grid point."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items()
                     if v is not None) or "declared defaults"


def summary_records(root: Path, spec: SweepSpec) -> list[dict]:
    """The sweep's results-format records, from its chunk files: counts per rung, the ulp figures
    and the worst point of each (grid point, check), judged exactly as the gate judges a check."""
    from harness.check import COUNT_KEYS, _message, json_float
    from harness.symptoms import symptom
    from harness.verdict import record_verdict
    from reference import registry

    points, checks = spec.grid_points, spec.checks()
    acc = {(g, c): _Acc() for g in range(len(points)) for c in range(len(checks))}
    statuses: dict[tuple[int, int], tuple[str, str]] = {}
    for ch in iter_chunks(root, spec.nchunks):
        for (g, c), a in acc.items():
            st = str(ch["status"][g, c])
            if st != "ok":
                statuses.setdefault((g, c), (st, str(ch["message"][g, c])))
            else:
                a.add(ch, g, c, spec)
    d = registry.get(spec.loss)
    out = []
    for g, point in enumerate(points):
        cid = _case_id(spec, point)
        args1, kwargs1 = spec.call(np.array([0]), point)
        for c, check in enumerate(checks):
            rec: dict[str, Any] = {
                "type": "result", "backend": spec.backend, "case_id": cid, "loss": spec.loss,
                "family": "sweep.exhaustive", "options": d.option_family(args1, kwargs1), "dtype": spec.dtype,
                "check": check, "reduction": "none" if d.has_reduction else None, "shape": [spec.points],
                "meta": {"sweep": {"grid": point, "point": point_text(spec, point), "width": spec.width,
                                   "domain": spec.definition.domain}}}
            if (g, c) in statuses:
                st, msg = statuses[(g, c)]
                verdict = {"unsupported": "unsupported", "bad_output": "fail"}.get(st, "error")
                rec.update(status=st, verdict=verdict, n=0, message=msg)
                out.append(rec)
                continue
            a = acc[(g, c)]
            cnt = {k: int(a.counts[RUNGS.index(k)]) for k in COUNT_KEYS}
            n = int(a.counts.sum())
            m = n - cnt["undetermined"]
            allu = np.concatenate(a.ulps) if a.ulps else np.zeros(0)
            rec.update(status="ok", n=n, counts=cnt,
                       max_ulp=json_float(a.max_ulp) if m else None,
                       median_ulp=json_float(np.median(allu)) if allu.size else None,
                       max_bits=json_float(a.max_bits) if m else None, max_rel_u=None,
                       frac_correctly_rounded=float(a.same / m) if m else None,
                       frac_le_1ulp=float(a.le1 / m) if m else None, ulp_hist=[int(h) for h in a.hist])
            w = a.worst_record(spec, d, point, check) if a.worst is not None else None
            rec["worst"] = w
            rec["message"] = _message(cnt, n, w, rec["max_ulp"], spec.dtype)
            if w is not None and cnt["fail"] + cnt["special"] + cnt["absolute"] + cnt["flushed"]:
                rec["symptom"] = symptom(w)
            present = np.array([k for k in RUNGS if a.counts[RUNGS.index(k)]])
            rec["verdict"] = record_verdict(present) if present.size else "undetermined"
            out.append(rec)
    return out


class _Acc:
    """One (grid point, check)'s figures, accumulated chunk by chunk."""

    #: beyond this many points the median is left out (it would hold every ulp in memory)
    median_limit = 1 << 24

    def __init__(self) -> None:
        self.counts = np.zeros(len(RUNGS), np.int64)
        self.hist = np.zeros(5, np.int64)
        self.max_ulp = self.max_bits = -np.inf
        self.same = self.le1 = self.seen = 0
        self.ulps: list[np.ndarray] = []
        self.worst: tuple | None = None

    def add(self, ch: dict, g: int, c: int, spec: SweepSpec) -> None:
        from reference.formats import FORMATS

        fmt = FORMATS[spec.dtype]
        r = ch[f"c{c}_rung"][g]
        self.counts += np.bincount(r, minlength=len(RUNGS))
        det = r != RUNGS.index("undetermined")
        u = ch[f"c{c}_ulp"][g][det]
        self.seen += u.size
        if self.seen <= self.median_limit:
            self.ulps.append(u)
        else:
            self.ulps = []
        if u.size:
            self.max_ulp = max(self.max_ulp, float(np.max(u)))
            self.max_bits = max(self.max_bits, float(np.max(ch[f"c{c}_bits"][g][det])))
            self.hist += [np.count_nonzero(u == 0), np.count_nonzero((u > 0) & (u <= 1)),
                          np.count_nonzero((u > 1) & (u <= 2)), np.count_nonzero((u > 2) & (u <= 3)),
                          np.count_nonzero(u > 3)]
            ob = ch[f"c{c}_observed"][g][det]
            rd = ch[f"c{c}_rounded"][g][det]
            both_nan = np.isnan(ob.view(fmt.np_dtype).astype(np.float64)) & np.isnan(rd.view(fmt.np_dtype).astype(np.float64))
            self.same += int(np.count_nonzero((ob == rd) | both_nan))
            self.le1 += int(np.count_nonzero(u <= 1))
        sev = np.array([RUNG_SEVERITY[x] for x in RUNGS])[r]
        un = np.nan_to_num(ch[f"c{c}_ulp"][g], nan=-1.0, posinf=np.inf)
        i = int(np.lexsort((-un, -sev))[0])  # the worst rung first, then the largest ulp
        key = (int(sev[i]), float(un[i]))
        if self.worst is None or key > self.worst[0]:
            per = r.size // len(ch["inputs"])  # elements per point (2: a two-logit row's gradient)
            fields = {f: ch[f"c{c}_{f}"][g][i] for f in ("observed", "rounded", "hi", "lo", "ulp", "rung",
                                                         "undetermined")}
            self.worst = (key, int(ch["first"]) + i // per, i % per, per, fields, ch["inputs"][i // per])

    def worst_record(self, spec: SweepSpec, d: Any, point: dict, check: str) -> dict:
        import mpmath

        from harness.check import json_float
        from reference.exact import pair_to_mpf
        from reference.formats import FORMATS

        fmt = FORMATS[spec.dtype]
        _, pidx, j, per, f, inp = self.worst
        obs = float(np.array(f["observed"]).view(fmt.np_dtype).astype(np.float64))
        rnd = float(np.array(f["rounded"]).view(fmt.np_dtype).astype(np.float64))
        xs = np.atleast_1d(np.array(inp).view(fmt.np_dtype)).reshape(1, -1)
        args, kwargs = d.sweep_call(xs if spec.width > 1 else xs[:, 0], point)
        exact = ("undetermined" if bool(f["undetermined"]) else
                 mpmath.nstr(pair_to_mpf(float(f["hi"]), float(f["lo"])), 17))
        return {"index": [pidx] + ([j] if per > 1 else []), "exact": exact, "observed": _num(obs),
                "rounded": _num(rnd), "ulp": json_float(float(f["ulp"])), "rung": RUNGS[int(f["rung"])],
                "input": _describe(d, args, kwargs, check, j if per > 1 else None)}


def _describe(d: Any, args: tuple, kwargs: dict, check: str, j: int | None = None) -> str:
    """The inputs of one point, as its loss describes them (the describe of the worst element)."""
    try:
        text = d.describe(args, kwargs, check, (0,) if j is None else (0, j))
    except (IndexError, ValueError, TypeError):
        text = None
    if text is None:
        text = "input " + ", ".join(f"{float(v):.6g}" for v in np.asarray(args[0]).reshape(-1))
    return text


def _num(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)


def write_summary(root: Path, spec: SweepSpec, man: dict) -> list[dict]:
    """``root/summary.jsonl``: a run header (suite "sweep", the manifest under "sweep") and the
    summary records -- a results file ``losscheck report`` and ``compare`` read as any other."""
    from harness.results_file import SCHEMA
    from harness.task import jsonable

    records = [jsonable(r) for r in summary_records(root, spec)]
    header = {"type": "run", "schema": SCHEMA, "run_id": man["sweep_id"], "started": man.get("created"),
              "suite": "sweep", "seed": 0, "backends": [spec.backend], "versions": man.get("versions", {}),
              "tolerances": {spec.dtype: spec.tolerances}, "grad": spec.grad, "strict": False,
              "oracle_version": man.get("oracle_version"), "device": spec.device, "strict_dtype": True,
              "sweep": {k: man[k] for k in ("sweep_id", "spec", "points", "nchunks", "checks", "grid_points")}}
    lines = [json.dumps(jsonable(header), allow_nan=False)] + [json.dumps(r, allow_nan=False) for r in records]
    _atomic_text(root / SUMMARY, "\n".join(lines) + "\n")
    return records
