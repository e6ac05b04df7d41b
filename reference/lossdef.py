"""What a loss *is*: one :class:`LossDef` object per loss, in its own module under reference/losses/.

A LossDef owns everything that differs from one loss to the next, so that generic code (the
settling in reference/settle.py, case building in cases/, the runner, checks and reports) never
branches on a loss's name:

- its argument schema (:class:`Arg`: positional tensors, keyword options, which tensors torch
  differentiates) and ONE validator, :meth:`LossDef.prepare`, used when cases are built and when
  the oracle prepares a problem;
- the mapping into the oracle's *row form* (:class:`Problem`) and its :class:`Kernel`;
- :meth:`LossDef.option_family`, its case families (:meth:`LossDef.family`), its hypothesis
  strategy, its NumPy implementation (value and every gradient) and the semantic notes docs render.

Row form: for class-dim losses a (M, C) matrix (class dim last, batch and spatial positions
flattened into M rows), for elementwise losses a (M, 1) column with broadcast options.  Kernels only
see row form; the Problem knows how to put results back into torch's shapes.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .formats import FORMATS, dtype_name

DTYPES: tuple[str, ...] = tuple(FORMATS)
REDUCTIONS: tuple[str, ...] = ("none", "sum", "mean")


@dataclass(frozen=True)
class Arg:
    """One argument.  ``kind`` is one of:

    ``input``      floating tensor in the checked dtype
    ``target``     class indices (int64) or, where the loss allows, probabilities (input's dtype)
    ``ftarget``    floating target in the input's dtype, same shape as input
    ``weight``     optional floating tensor option in the input's dtype
    ``int``, ``float``, ``bool``  Python scalar options;  ``reduction`` one of the loss's reductions

    ``differentiable``: torch propagates a gradient to this tensor, so the harness checks
    ``grad:<name>`` for it.  ``torch_name``: the keyword torch.nn.functional's own function uses
    where it names the option differently (linear_cross_entropy's bias is torch's linear_bias).
    """

    name: str
    kind: str
    default: Any = None
    required: bool = False
    differentiable: bool = False
    torch_name: str | None = None


@dataclass(frozen=True)
class Call:
    """One call of a loss as a case family draws it; cases/ turns it into a content-hashed Case.

    ``grad`` None means "check gradients wherever the loss has them"; ``grad_output`` None means
    "draw one from the inputs' hash".
    """

    args: tuple
    kwargs: dict
    meta: dict = field(default_factory=dict)
    grad: bool | None = None
    grad_output: np.ndarray | None = None


@dataclass(frozen=True)
class FamilyDef:
    """A case family: ``fn(rng, dtype, size) -> list[Call]``; its docstring's first line is its doc."""

    name: str
    fn: Callable[..., list[Call]]
    doc: str


@dataclass(frozen=True)
class Variant:
    """A known semantic variant of a loss: another library's deliberate formula (a probability
    clip, a cap on the per-element loss), not an arithmetic error.  The verdict ladder labels an
    element that fails against torch's semantics but matches this formula "semantic difference"
    (still FAIL: the answer is another function's), naming both formulas.

    ``value(args, kwargs, check, dtype, grad_output)`` returns the variant's answer for ``check``
    (the value, or a gradient for the case's ``grad_output``) in the check's shape as float64 (NaN
    where it has none), or None where the variant does not apply to the call (other options, a
    gradient it does not declare).  ``dtype`` is the format the observation is judged in,
    the one the library computed in: a variant's constants are that format's numbers (Keras' clip
    at 1 - 1e-7 is 1 - 2^-23 in float32, and no clip at all in float16).  It is evaluated only for
    a record that already fails.
    """

    name: str  # "probability clip 1e-7 (Keras)"
    formula: str  # "-log(clip(p_t, 1e-7, 1 - 1e-7))"
    torch_formula: str  # "-log p_t"
    value: Callable[..., np.ndarray | None]


@dataclass(frozen=True)
class Convention:
    """The answers at a loss's special points where torch's (and the oracle's) answer is a
    convention and another library may rightly return the other one (the mathematical limit, or
    a 0/0 := 0 rule).  ``mask``: the elements concerned; ``values``: the other answer there
    (float64, output-shaped); ``text``: what the two answers are, for the record's note."""

    mask: np.ndarray
    values: np.ndarray
    text: str


@dataclass
class Problem:
    """One validated call in row form."""

    dtype: str  # the input's format (and by default the output's)
    reduction: str  # 'none' | 'sum' | 'mean' | 'batchmean' | 'elementwise' (softmax family)
    rows: dict[str, Any]  # float64 arrays (exact copies of the inputs) and int arrays, row form
    nclass: int  # C (1 for elementwise losses)
    unreduced_shape: tuple[int, ...]  # torch's output shape for reduction='none'
    input_shape: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    to_input: Callable[[np.ndarray], np.ndarray] | None = None  # (M, K) rows -> input's shape
    # (M, K) rows -> the shape of a differentiable argument other than input (default: input's)
    to_arg: dict[str, Callable[[np.ndarray], np.ndarray]] = field(default_factory=dict)
    # an output-shaped grad_output -> per-row factors: (M,) by default, (M, C) for elementwise
    grad_output_rows: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def reduced(self) -> bool:
        return self.reduction not in ("none", "elementwise")

    @property
    def out_shape(self) -> tuple[int, ...]:
        return () if self.reduced else self.unreduced_shape

    @property
    def m(self) -> int:
        return int(next(iter(self.rows.values())).shape[0]) if self.rows else 0

    def rows_to_output(self, a: np.ndarray) -> np.ndarray:
        """(M,) or (M, C) per-row results -> torch's unreduced output shape."""
        if self.reduction == "elementwise":
            return self.to_input(a)
        return np.asarray(a).reshape(self.unreduced_shape)

    def rows_to_arg(self, name: str, a: np.ndarray) -> np.ndarray:
        return self.to_arg.get(name, self.to_input)(a)

    def go_rows(self, go: np.ndarray) -> np.ndarray:
        if self.grad_output_rows is not None:
            return self.grad_output_rows(go)
        return np.asarray(go, np.float64).reshape(-1)


class Kernel(Protocol):
    """The oracle's formula for one loss on row form, written once against a numeric namespace
    ``ns`` (reference/numerics.py: float64, long double or mpmath) so that the same formula is
    evaluated at every precision of the settling (reference/settle.py).

    Errors must stay relative to the magnitudes the kernel reports: that is what the stage-0
    bound (16 + 4 ceil(log2 nterms)) u cond relies on.
    """

    def parts(self, ns, rows) -> list[tuple[Callable, Any, Any]]:
        """[(multiplier fn, value rows (M, K), magnitude rows)]: l = sum_k mult_k(ns) * value_k."""

    def denominator(self, ns, rows) -> tuple[Any, float]:
        """The mean's denominator and the sum of |terms| it adds (0 for an exact count)."""

    def scales(self, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cond, natural scale, nterms) per element, float64: see reference/exact.py."""

    def grad(self, ns, rows, gof, wrt: str) -> tuple[Any, Any]:
        """(VJP rows w.r.t. argument ``wrt``, magnitudes of its terms or None when ``ns`` is exact)."""

    def grad_scales(self, rows, gof, wrt: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cond, natural scale, nterms) of the gradient w.r.t. ``wrt``."""

    # Optional, read by settle.py with getattr (docs/oracle.md, "Settling"):
    #   exact_prec(rows, wrt, grad_output) -> bits | (bits, row mask) | None: rows that are sums and
    #     products of the inputs, exact at that precision;
    #   stage64 = True: float64 values may be accepted on their own for formats of <= 24 bits;
    #   split_bits(rows, wrt, gof) and split(ns, rows, wrt, gof) -> (mask, exact, coef, tail): an
    #     element as an exact part plus coef times a tail of relative error <= 4 u (the split stage).


#: the named points of a format a sweep grid may use (resolved per dtype by :func:`sweep_value`)
SWEEP_POINTS = ("min_subnormal", "min_normal", "1-ulp", "1+ulp", "max")


def sweep_value(v: Any, dtype: str) -> Any:
    """A declared grid value in ``dtype``: numbers as given, None (the argument is not passed), or
    one of :data:`SWEEP_POINTS`: the smallest subnormal, the smallest normal, the largest number
    below 1, the smallest above 1, the largest finite number."""
    if not isinstance(v, str):
        return v
    fmt = FORMATS[dtype]
    named = {"min_subnormal": 2.0 ** fmt.qmin, "min_normal": 2.0 ** fmt.emin, "1-ulp": 1.0 - fmt.u,
             "1+ulp": 1.0 + 2 * fmt.u, "max": fmt.max_finite}
    if v not in named:
        raise ValueError(f"unknown sweep point {v!r}; known: {', '.join(SWEEP_POINTS)}")
    return named[v]


@dataclass(frozen=True)
class SweepDef:
    """What ``losscheck sweep`` enumerates for a loss (docs/sweeps.md): data on the loss's
    LossDef, so the sweep engine never branches on a loss's name.

    ``width``   values of the first positional argument per point: 1 (an elementwise input, every
                value of the format), 2 (a row of two logits: every pair of values)
    ``grid``    ((argument, declared values), ...) for the other arguments: every combination is
                swept; a value is a number, None (not passed) or a name of :data:`SWEEP_POINTS`
    ``domain``  (lo, hi): only swept values in [lo, hi] (a loss that refuses the rest, such as
                binary_cross_entropy's probabilities); None: every value, +-inf and one NaN too
    """

    width: int = 1
    grid: tuple[tuple[str, tuple], ...] = ()
    domain: tuple[float, float] | None = None


# ------------------------------------------------------------------------------ validation helpers

def fail(arg: str, msg: str):
    """Every validation error names its argument first: ``ValueError("target: ...")``."""
    raise ValueError(f"{arg}: {msg}")


def float_array(name: str, a, dtype: str | None = None) -> np.ndarray:
    """A NumPy array of a supported float format (matching ``dtype`` when given)."""
    if not isinstance(a, np.ndarray):
        if np.isscalar(a) and not isinstance(a, (bool, str)):
            a = np.asarray(a)
        else:
            fail(name, f"expected a NumPy array, got {type(a).__name__}")
    try:
        got = dtype_name(a)
    except ValueError:
        fail(name, f"unsupported dtype {a.dtype.name!r}; supported: {', '.join(FORMATS)}")
    if dtype is not None and got != dtype:
        fail(name, f"dtype {got} does not match the input's dtype {dtype}")
    return a


def f64(a: np.ndarray) -> np.ndarray:
    """float64 copy: exact for every supported format."""
    return np.asarray(a).astype(np.float64)


def is_float_array(a) -> bool:
    a = np.asarray(a)
    return a.dtype.kind == "f" or a.dtype.name == "bfloat16"


def int_option(name: str, v, what: str = "must be an integer") -> int:
    if v is None or isinstance(v, bool):
        fail(name, f"{what}, got {v!r}")
    try:
        iv = int(v)
    except (TypeError, ValueError):
        fail(name, f"{what}, got {v!r}")
    if iv != v:
        fail(name, f"{what}, got {v!r}")
    return iv


def broadcast_option(name: str, w, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """An array option in the input's dtype, broadcast to ``shape`` (float64)."""
    w = float_array(name, w, dtype)
    try:
        return np.broadcast_to(f64(w), shape)
    except ValueError:
        fail(name, f"shape {w.shape} does not broadcast to the target's shape {shape}")


# ------------------------------------------------------------------------------ the definition

class LossDef:
    """Base class of a loss definition; subclasses live one per module in reference/losses/.

    Subclasses set the class attributes and implement :meth:`prepare`, :meth:`kernel`,
    :meth:`numpy_value` and :meth:`numpy_grads`; the rest has defaults an elementwise loss keeps.
    """

    name: str = ""
    positional: tuple[Arg, ...] = ()
    options: tuple[Arg, ...] = ()
    option_families: tuple[str, ...] = ("plain",)
    dtypes: tuple[str, ...] = DTYPES
    reductions: tuple[str, ...] = REDUCTIONS
    has_reduction: bool = True
    summary: str = ""  # one line: the formula
    notes: str = ""  # the semantic fine points, Markdown (rendered into docs/losses.md)
    sweep: SweepDef | None = None  # what an exhaustive sweep enumerates; None: not sweepable

    def __init__(self) -> None:
        self.families: dict[str, FamilyDef] = {}

    # -- schema ------------------------------------------------------------------------------
    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.options)

    @property
    def array_options(self) -> tuple[str, ...]:
        """Keyword options that carry tensors (converted like inputs by backends)."""
        return tuple(a.name for a in self.options if a.kind == "weight")

    @property
    def differentiable(self) -> tuple[str, ...]:
        """Names of the tensor arguments torch differentiates: one ``grad:<name>`` check each."""
        return tuple(a.name for a in self.positional + self.options if a.differentiable)

    def differentiable_for(self, args: tuple, kwargs: Mapping[str, Any]) -> tuple[str, ...]:
        """The differentiable arguments of one call: the declared ones it holds as floating arrays
        (a class-index target of cross_entropy has no gradient; a probability target has one)."""
        held = dict(zip((a.name for a in self.positional), args))
        held.update(kwargs)
        return tuple(n for n in self.differentiable if held.get(n) is not None and is_float_array(held[n]))

    def checks_for(self, args: tuple, kwargs: Mapping[str, Any]) -> tuple[str, ...]:
        return ("value",) + tuple(f"grad:{a}" for a in self.differentiable_for(args, kwargs))

    @property
    def has_grad(self) -> bool:
        return bool(self.differentiable)

    @property
    def checks(self) -> tuple[str, ...]:
        return ("value",) + tuple(f"grad:{a}" for a in self.differentiable)

    def torch_kwargs(self, kwargs: Mapping[str, Any], accepts: Callable[[str], bool]) -> dict[str, Any]:
        """A call's keyword options under the names a torch-style function takes: an option the
        function does not accept (``accepts(name)`` False) goes by its ``torch_name`` when it has
        one the function accepts."""
        alias = {a.name: a.torch_name for a in self.options if a.torch_name}
        return {(alias[k] if k in alias and not accepts(k) and accepts(alias[k]) else k): v
                for k, v in kwargs.items()}

    def defaults(self) -> dict[str, Any]:
        return {a.name: a.default for a in self.options if not a.required}

    def reduction_of(self, kwargs: Mapping[str, Any]) -> str:
        if not self.has_reduction:
            return "none"
        return kwargs.get("reduction", self.defaults().get("reduction", "mean"))

    # -- validation and row form --------------------------------------------------------------
    def check_call(self, args: tuple, kwargs: Mapping[str, Any]) -> None:
        """The generic part of validation: arity, known and required options, reduction, dtypes."""
        if len(args) != len(self.positional):
            fail(self.name, f"expected {len(self.positional)} positional array(s) "
                            f"({', '.join(a.name for a in self.positional)}), got {len(args)}")
        unknown = set(kwargs) - set(self.option_names)
        if unknown:
            fail(min(unknown), f"unexpected keyword argument for {self.name}")
        for a in self.options:
            if a.required and kwargs.get(a.name) is None:
                fail(a.name, f"{self.name} requires {a.name}")
        if self.has_reduction:
            r = kwargs.get("reduction", "mean")
            if r not in self.reductions:
                fail("reduction", f"unknown reduction {r!r}; expected one of {', '.join(self.reductions)}")
        x = float_array(self.positional[0].name, args[0])
        if dtype_name(x) not in self.dtypes:
            fail(self.positional[0].name, f"dtype {dtype_name(x)} is not checked for {self.name} "
                                          f"(checked: {', '.join(self.dtypes)})")
        for name in self.array_options:
            if kwargs.get(name) is not None:
                float_array(name, kwargs[name], dtype_name(x))

    def validate(self, args: tuple, kwargs: Mapping[str, Any]) -> None:
        """Refuse what torch would refuse (one validator: cases and the oracle both call this)."""
        self.prepare(tuple(args), dict(kwargs))

    def prepare(self, args: tuple, kwargs: dict) -> Problem:
        """Validate a call (calling :meth:`check_call` first) and bring it into row form."""
        raise NotImplementedError

    def kernel(self, problem: Problem) -> Kernel:
        raise NotImplementedError

    def exact(self, problem: Problem, fmt, grad_output=None, wrt: str | None = None):
        """The oracle's Exact for a loss whose outputs are not rows of its input (a matrix product
        first: linear_cross_entropy), or None to settle :meth:`kernel` on row form (the default)."""
        return

    # -- what a call is --------------------------------------------------------------------------
    def option_family(self, args: tuple, kwargs: Mapping[str, Any]) -> str:
        """The option family of a concrete call, derived from its arguments (never from a label):
        the array options in play, sorted and joined with '+', or 'plain'."""
        tags = sorted(n for n in self.array_options if kwargs.get(n) is not None)
        return "+".join(tags) or "plain"

    def output_shape(self, args: tuple, kwargs: Mapping[str, Any]) -> tuple[int, ...]:
        if self.has_reduction and self.reduction_of(kwargs) != "none":
            return ()
        return tuple(np.broadcast_shapes(*(np.shape(a) for a in args)))

    def arg_shape(self, name: str, args: tuple, kwargs: Mapping[str, Any]) -> tuple[int, ...]:
        """Shape of the gradient w.r.t. a differentiable argument: that argument's own."""
        for a, spec in zip(args, self.positional):
            if spec.name == name:
                return tuple(np.shape(a))
        return tuple(np.shape(kwargs[name]))

    # -- what the verdict ladder may need beyond the Exact (docs/verdicts.md) --------------------
    #: known semantic variants (:class:`Variant`): other libraries' deliberate formulas
    variants: tuple[Variant, ...] = ()

    def magnitude(self, args: tuple, kwargs: Mapping[str, Any], check: str) -> np.ndarray | None:
        """Per element of ``check``, the largest finite |input| the element depends on (the row's
        logits for a loss that is invariant under a shift of its rows), or None when the loss's
        natural ``scale`` already holds the inputs' magnitudes (elementwise losses: the default).
        The magnitude-dependent rung allows an error of a few u * max|x| * scale where this is
        given: what an algorithm that does not subtract the row max first commits."""
        return None

    def conventions(self, args: tuple, kwargs: Mapping[str, Any], check: str) -> Convention | None:
        """The other answer at the call's special points where torch's is a convention
        (:class:`Convention`), or None where the call has none (the default)."""
        return None

    def describe(self, args: tuple, kwargs: Mapping[str, Any], check: str, index: tuple) -> str | None:
        """The inputs behind one output element (for the worst element of a record), or None when
        the element depends on the whole input (a reduced value).  Elementwise default."""
        if check == "value" and self.reduction_of(kwargs) != "none":
            return None
        return ", ".join(f"{s.name} {float(np.asarray(a)[index]):.6g}" for a, s in zip(args, self.positional))

    def sweep_call(self, x: np.ndarray, point: Mapping[str, Any]) -> tuple[tuple, dict]:
        """The unreduced call of a sweep chunk: ``x`` (n,) or (n, width) values of the first
        positional argument, every other argument from the grid ``point`` (values already in the
        format: :func:`sweep_value`), broadcast by its kind (a floating tensor in x's dtype, a class
        index as int64, a scalar option as given; None leaves it out)."""
        n, dtype = x.shape[0], x.dtype
        args: list[Any] = [x]
        kwargs: dict[str, Any] = {"reduction": "none"} if self.has_reduction else {}

        def tensor(a: Arg, v: Any) -> np.ndarray:
            return np.full(n, v, np.int64 if a.kind == "target" else dtype)

        for a in self.positional[1:]:
            args.append(tensor(a, point[a.name]))
        for a in self.options:
            v = point.get(a.name)
            if v is not None and a.kind != "reduction":
                kwargs[a.name] = tensor(a, v) if a.kind == "weight" else v
        return tuple(args), kwargs

    # -- cases ---------------------------------------------------------------------------------
    def family(self, name: str):
        """Decorator registering a case family ``fn(rng, dtype, size) -> list[Call]``."""
        def deco(fn):
            if name in self.families:
                raise ValueError(f"{self.name}: family {name!r} registered twice")
            self.families[name] = FamilyDef(name, fn, (fn.__doc__ or "").strip().splitlines()[0])
            return fn
        return deco

    def strategy(self, **params):
        """A hypothesis strategy of :class:`Call` (small shapes, plain values: failures shrink)."""
        raise NotImplementedError(f"{self.name} has no hypothesis strategy")

    # -- the NumPy implementation (the ``numpy`` backend) ---------------------------------------
    def numpy_value(self, nx, *args, **kwargs) -> np.ndarray:
        """torch's semantics in the arithmetic ``nx`` (harness/backends/numpy_numerics.py)."""
        raise NotImplementedError

    def numpy_grads(self, nx, *args, grad_output, **kwargs) -> dict[str, np.ndarray]:
        """{argument name: VJP with grad_output} in float64 for every differentiable argument."""
        raise NotImplementedError

    # -- the independent formulation (reference/audit.py) ---------------------------------------
    def brute(self, args: tuple, kwargs: Mapping[str, Any], *, grad_output=None, wrt: str | None = None) -> np.ndarray:
        """The loss written a second, plain way, for the oracle's audit (reference/audit.py).

        Returns an object ndarray of mpf evaluated at the current mpmath precision (callers set it
        with ``mpmath.workprec``, >= 1000 bits so that float64 inputs convert exactly): the value in
        torch's output shape, or with ``wrt`` the gradient w.r.t. that argument, contracted with
        ``grad_output`` (ones when None), in the argument's shape.  It must not reuse the module's
        kernel nor its row form: loops over elements and rows, mpmath functions, fsum reductions
        and the analytic gradients, with the same semantics (special cases) as the oracle.
        """
        raise NotImplementedError(f"{self.name} has no brute-force formulation (LossDef.brute): "
                                  f"the audit cannot check its oracle")

    # -- the torch-shaped oracle function --------------------------------------------------------
    def signature(self) -> inspect.Signature:
        params = [inspect.Parameter(a.name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for a in self.positional]
        params += [inspect.Parameter(a.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                     default=inspect.Parameter.empty if a.required else a.default)
                   for a in self.options]
        params.append(inspect.Parameter("out_dtype", inspect.Parameter.KEYWORD_ONLY, default=None))
        return inspect.Signature(params)

    def __repr__(self) -> str:
        return f"<LossDef {self.name}>"
