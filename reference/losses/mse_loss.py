"""mse_loss: l = (input - target)^2, differentiable in both input and target."""
from __future__ import annotations

import mpmath
import numpy as np

from ..lossdef import Arg, Call, LossDef, SweepDef
from ..sampling import cast, finfo, log_uniform, normal, ordinal_uniform
from ._elementwise import TermsKernel, brute_reduce, brute_upstream, prepare_pair, span_bits
from ._families import reduction
from ._numpy import elementwise_upstream, reduce_elementwise


class MseKernel(TermsKernel):
    def terms(self, ns, rows):
        d = ns.asarray(rows["x"][:, 0]) - ns.asarray(rows["y"][:, 0])
        return [(d, d)]

    def d(self, ns, rows, wrt):
        two = ns.const(2) if wrt == "input" else ns.const(-2)
        return two * (ns.asarray(rows["x"][:, 0]) - ns.asarray(rows["y"][:, 0]))

    def exact_prec(self, rows, wrt, grad_output):
        """(x - y)^2, 2 (x - y) g: sums and products of the inputs, exact at span_bits."""
        return span_bits(rows["x"], rows["y"], grad_output)

    def scales(self, rows):
        x, y = rows["x"][:, 0], rows["y"][:, 0]
        with np.errstate(all="ignore"):
            cond = self.term_magnitude(rows) + 2 * np.abs(x - y) * (np.abs(x) + np.abs(y))
            scale = (np.abs(x) + np.abs(y)) ** 2
        return cond, scale, np.ones(x.shape, np.int64)

    def grad_scales(self, rows, gof, wrt):
        x, y = rows["x"][:, 0], rows["y"][:, 0]
        with np.errstate(all="ignore"):
            cond = self.grad_abs(rows, gof, wrt) + 2 * np.abs(gof) * (np.abs(x) + np.abs(y))
        return cond[:, None], cond[:, None], np.ones((x.shape[0], 1), np.int64)


class MseLoss(LossDef):
    name = "mse_loss"
    positional = (Arg("input", "input", required=True, differentiable=True),
                  Arg("target", "ftarget", required=True, differentiable=True))
    options = (Arg("reduction", "reduction", "mean"),)
    summary = "(x - y)^2"
    sweep = SweepDef(grid=(("target", (0, 1, -1, 0.5, "min_subnormal")),))
    notes = """\
- torch differentiates both arguments: `grad:input` is 2(x - y)·g, `grad:target` is -2(x - y)·g.
- The exact mean of squares can be finite where each square overflows the format (mse.overflow):
  torch squares in the storage dtype first and returns inf there (a documented known failure).
"""

    def prepare(self, args, kwargs):
        return prepare_pair(self, args, kwargs)

    def kernel(self, problem):
        return MseKernel(problem)

    def strategy(self, dtype=None, max_size: int = 6, reductions=("none", "sum", "mean"), max_abs: float = 1e3):
        """mse_loss: inputs and targets in [-max_abs, max_abs]."""
        from ._strategies import pair_strategy

        return pair_strategy(dtype, max_size, reductions, False, False, (-max_abs, max_abs), (-max_abs, max_abs))

    def numpy_value(self, nx, input, target, reduction="mean"):
        X, Y = nx.work(input), nx.work(target)
        big = not nx.naive and reduction != "none" and np.nanmax(
            np.abs(np.where(np.isinf(X - Y), 0, X - Y)), initial=0.0) > 2.0**500
        if not big:
            return reduce_elementwise(nx, nx.squared_difference(X, Y), reduction)
        # squares beyond float64's range can still have a finite mean: square 2^-k-scaled inputs
        k = 520
        per = nx.squared_difference(np.ldexp(X, -k), np.ldexp(Y, -k))
        return nx.unscale(reduce_elementwise(nx, per, reduction), 2 * k)

    def numpy_grads(self, nx, input, target, grad_output, reduction="mean"):
        X, Y = nx.work(input), nx.work(target)
        g = 2.0 * (X - Y) * elementwise_upstream(nx, grad_output, reduction, X.size)
        return {"input": g, "target": -g}


    def brute(self, args, kwargs, *, grad_output=None, wrt=None):
        """Plain loops (see LossDef.brute): (x - y)^2 per element, fsum and division by the count;
        gradients 2 (x - y) g and -2 (x - y) g."""
        mpf = mpmath.mpf
        x = np.asarray(args[0]).astype(np.float64)
        y = np.asarray(args[1]).astype(np.float64)
        red = kwargs.get("reduction", "mean")
        diffs = [mpf(float(a)) - mpf(float(b)) for a, b in zip(x.reshape(-1), y.reshape(-1))]
        if wrt is None:
            return brute_reduce([dd * dd for dd in diffs], red, x.shape)
        gs = brute_upstream(grad_output, red, x.shape)
        two = mpf(2) if wrt == "input" else mpf(-2)
        return np.array([two * dd * g for dd, g in zip(diffs, gs)], dtype=object).reshape(x.shape)


LOSS = MseLoss()
MSE = LOSS.name


@LOSS.family("mse.random")
def mse_random(rng, dtype, size):
    """N(0, sigma^2) inputs and targets, sigma in {1, min(100, sqrt(max)/32)}.

    Bounded so that no square and no sum of the batch overflows (float16: sigma 8); overflow is
    mse.overflow's job."""
    out, i = [], 0
    shape = (size.batch, 6)
    for sigma in (1.0, min(100.0, float(np.sqrt(float(finfo(dtype).max))) / 32)):
        for _ in range(3 * size.repeats):
            out.append(Call((normal(rng, sigma, shape, dtype), normal(rng, sigma, shape, dtype)),
                            {"reduction": reduction(i)}, meta={"note": f"sigma {sigma:g}"}))
            i += 1
    return out


@LOSS.family("mse.overflow")
def mse_overflow(rng, dtype, size):
    """Squares near and past overflow: elementwise results may be inf exactly; a mean of squares
    that each overflow the format can still be finite (an accumulation test of its own)."""
    big = float(np.sqrt(float(finfo(dtype).max)))
    shape = (size.batch, 5)
    out = []
    for r in range(3):
        x = log_uniform(rng, big / 8, big * 2, shape, dtype, signed=True)
        y = log_uniform(rng, big / 8, big * 2, shape, dtype, signed=True)
        out.append(Call((x, y), {"reduction": reduction(r)}, meta={"note": "large: squares near overflow"}))
    # one square at 2.25 * max among small ones: inf elementwise, a finite exact mean
    x = normal(rng, 1.0, shape, dtype).astype(np.float64)
    x[0, 0] = 1.5 * big
    for red in ("none", "sum", "mean"):
        out.append(Call((cast(x, dtype), cast(np.zeros(shape), dtype)), {"reduction": red},
                        meta={"note": "one square past overflow, finite mean"}))
    return out


@LOSS.family("mse.magnitudes")
def mse_magnitudes(rng, dtype, size):
    """Small (squares underflow), nearly equal (cancellation) and ordinal-uniform values."""
    fi = finfo(dtype)
    small = float(np.sqrt(float(fi.smallest_subnormal)))
    shape = (size.batch, 5)
    x_near = normal(rng, 10.0, shape, dtype)
    steps = rng.integers(-3, 4, size=shape).astype(np.float64)
    lim = min(1e3, float(np.sqrt(float(fi.max))) / 8)
    variants = [
        ("small: squares underflow", log_uniform(rng, small / 4, small * 64, shape, dtype, signed=True),
         cast(np.zeros(shape), dtype)),
        ("nearly equal: y = x +- few ulps", x_near,
         cast(x_near.astype(np.float64) * (1 + steps * float(fi.eps)), dtype)),
        # bounded so no square overflows (float16: +-32); overflow is mse.overflow's job
        ("ordinal-uniform over +-min(1e3, sqrt(max)/8)", ordinal_uniform(rng, -lim, lim, shape, dtype),
         ordinal_uniform(rng, -lim, lim, shape, dtype)),
    ]
    out = []
    for i, (note, x, y) in enumerate(variants):
        for r in range(3):
            out.append(Call((x, y), {"reduction": reduction(i + r)}, meta={"note": note}))
    return out
