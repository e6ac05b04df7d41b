"""linear_cross_entropy: logits = hidden @ weight.T (+ bias), then cross_entropy on them.

The fused linear cross-entropy of LLM training (Liger-Kernel's fused_linear_cross_entropy,
cut-cross-entropy's linear_cross_entropy): the (N, V) logits are never materialised by those
kernels, so a checker must know the loss of the *exact* product.  The oracle works in three steps:

1. the logits exactly, by reference/matmul.py (integer slices on float64 BLAS, no mpmath per
   product), as float64 pairs; rows whose exact logits do not fit pairs are reported undetermined;
2. the loss, or d loss / d logits (``G``), from cross_entropy's own kernel on those logits,
   settled as usual (reference/settle.py) -- ``G`` settled to 36 bits, so each stored entry is
   within 2^-45 |G| of the exact one (docs/oracle.md); logits that are float64 pairs hi + lo
   rather than float64 numbers enter as hi, with a rigorous bound on what lo changes;
3. for the gradients, G @ weight, G.T @ hidden and G's column sums on float64 BLAS, enclosed by
   the product's rounding bound gamma_k |G| @ |B| plus G's own radius propagated through |B|;
   an element is settled when its enclosure rounds to one value, undetermined otherwise.
"""
from __future__ import annotations

import math

import mpmath
import numpy as np

from ..exact import Exact
from ..formats import FORMATS, Format, dtype_name, round_float, ulp_of_value
from ..lossdef import Arg, Call, LossDef, Problem, f64, fail, float_array, int_option
from ..matmul import exact_matmul_t
from ..numerics import F64
from ..sampling import cast, class_targets, normal
from ..settle import FIGURE_ULP, Evaluation, settle
from ._families import reduction
from ._softcap import np_capped
from .cross_entropy import CE_LOSS

# d loss / d logits (and a value over logits that are float64 pairs) is settled in this 36-bit
# format: long double settles nearly all of it in one vectorised stage, and a settled entry is
# within FIGURE_ULP * ulp_36 <= 2^-45 |G| of the exact one (plus 2^-1083 near underflow)
G_FORMAT = Format("g36", 36, -1022, 1023, np.dtype(np.float64), np.dtype(np.uint64))
_CE_OPTIONS = ("ignore_index", "reduction", "label_smoothing", "softcap", "z_loss")


class LinearCrossEntropy(LossDef):
    name = "linear_cross_entropy"
    # "input": the hidden states, by torch's name (F.linear_cross_entropy(input, linear_weight, ...))
    positional = (Arg("input", "input", required=True, differentiable=True),
                  Arg("weight", "weight", required=True, differentiable=True),
                  Arg("target", "target", required=True))
    options = (Arg("bias", "weight", None, differentiable=True, torch_name="linear_bias"),
               Arg("ignore_index", "int", -100),
               Arg("reduction", "reduction", "mean"),
               Arg("label_smoothing", "float", 0.0),
               Arg("softcap", "float", None),
               Arg("z_loss", "float", 0.0))
    # float64 hidden states make logits that rarely fit float64 pairs: not checked (yet)
    dtypes = ("float16", "bfloat16", "float32")
    option_families = ("plain", "bias", "ignore_index", "label_smoothing", "ignore_index+label_smoothing",
                       "softcap", "z_loss", "ignore_index+label_smoothing+softcap+z_loss")
    summary = "cross_entropy(hidden @ weight.T + bias, target): the fused linear cross-entropy"
    notes = """\
- input: the hidden states (N, D); weight (V, D) (the classifier / LM head, *not* class weights), target (N,) int64
  class indices, bias (V,) optional; all floating tensors in one dtype.  Liger-Kernel and
  cut-cross-entropy name it so; torch.nn.functional.linear_cross_entropy (torch >= 2.13) takes
  (input, linear_weight, target, linear_bias=...), which the torch backend maps.  Then cross_entropy with
  ignore_index, label_smoothing, reduction and the losscheck extensions softcap and z_loss, with
  exactly cross_entropy's semantics (see there): the mean divides by the number of kept positions.
- `grad:input` = G @ weight, `grad:weight` = G.T @ input, `grad:bias` = G summed over positions,
  with G = d loss / d logits (the VJP with grad_output).
- The oracle needs the logits exactly: hidden @ weight.T is computed by integer slices on float64
  BLAS (reference/matmul.py) as float64 pairs hi + lo.  cross_entropy's kernel runs on hi, and
  what lo (|lo| <= 2^-53 |z|) changes is bounded rigorously (first-order bounds through the
  softmax, the soft-cap and the z-loss) and added to the enclosure.  A position whose exact logits
  do not fit pairs (inputs whose magnitudes within a row span hundreds of binades) is reported
  undetermined, as is a reduced value or weight/bias gradient that depends on it.
- A gradient element is settled from an enclosure: the float64 product's rounding bound
  gamma_k |G| @ |B| plus G's own radius; where the enclosure straddles a rounding boundary the
  element is undetermined (never guessed).
- The error yardstick (cond) of the value adds the logits' own rounding in a backward-stable
  product: sum_v |dl/dz_v| * sum_d |h_d w_vd|; of a gradient, (|G| + cond_G) @ |B|.
- float64 inputs are not checked: their exact logits rarely fit float64 pairs.
"""

    # -- validation -------------------------------------------------------------------------------
    def prepare(self, args, kwargs):
        self.check_call(args, kwargs)
        h = float_array("input", args[0])
        dtype = dtype_name(h)
        w = float_array("weight", args[1], dtype)
        t = args[2]
        if h.ndim != 2:
            fail("input", f"expected shape (N, D) (the hidden states), got {h.shape}")
        if w.ndim != 2 or w.shape[1] != h.shape[1]:
            fail("weight", f"expected shape (V, {h.shape[1]}) (one row per class), got {w.shape}")
        if w.shape[0] < 1:
            fail("weight", "the class dimension is empty (V = 0)")
        if not isinstance(t, np.ndarray) or t.dtype != np.int64:
            fail("target", f"expected int64 class indices, got "
                           f"{getattr(getattr(t, 'dtype', None), 'name', type(t).__name__)}")
        if t.shape != (h.shape[0],):
            fail("target", f"expected shape ({h.shape[0]},), got {t.shape}")
        bias = kwargs.get("bias")
        if bias is not None:
            bias = float_array("bias", bias, dtype)
            if bias.shape != (w.shape[0],):
                fail("bias", f"expected shape ({w.shape[0]},), got {bias.shape}")
        ii = int_option("ignore_index", kwargs.get("ignore_index", -100))
        bad = (t != ii) & ((t < 0) | (t >= w.shape[0]))
        if bad.any():
            fail("target", f"class index {int(t[bad][0])} is out of range [0, {w.shape[0]}) and is not "
                           f"ignore_index ({ii})")
        ce_kw = self._ce_kwargs(kwargs)
        # cross_entropy's own validator on a stand-in of the logits' shape checks the CE options
        CE_LOSS.validate((np.zeros((min(h.shape[0], 1), w.shape[0])), t[:1]), ce_kw)
        rows = {"h": f64(h), "t": t}
        opts = {"weight": f64(w), "bias": None if bias is None else f64(bias), "ce": ce_kw}
        return Problem(dtype=dtype, reduction=self.reduction_of(kwargs), rows=rows, nclass=w.shape[0],
                       unreduced_shape=(h.shape[0],), input_shape=h.shape, options=opts,
                       to_input=lambda a: np.asarray(a).reshape(h.shape))

    @staticmethod
    def _ce_kwargs(kwargs) -> dict:
        """The cross_entropy options of a call; softcap/z_loss only when set (defaults change nothing)."""
        out = {k: kwargs[k] for k in _CE_OPTIONS if kwargs.get(k) is not None}
        if not out.get("z_loss"):
            out.pop("z_loss", None)
        return out

    def option_family(self, args, kwargs):
        tags = []
        if kwargs.get("bias") is not None:
            tags.append("bias")
        if np.any(np.asarray(args[2]) == kwargs.get("ignore_index", -100)):
            tags.append("ignore_index")
        if float(kwargs.get("label_smoothing") or 0.0) > 0:
            tags.append("label_smoothing")
        if kwargs.get("softcap") is not None:
            tags.append("softcap")
        if float(kwargs.get("z_loss") or 0.0) > 0:
            tags.append("z_loss")
        return "+".join(sorted(tags)) or "plain"

    def output_shape(self, args, kwargs):
        return () if self.reduction_of(kwargs) != "none" else (int(np.shape(args[0])[0]),)

    def describe(self, args, kwargs, check, index):
        h, t = np.asarray(args[0]), np.asarray(args[2])
        if check == "value" and self.reduction_of(kwargs) != "none":
            return None
        if check in ("value", "grad:input"):
            n = index[0]
            row = h[n].astype(np.float64)
            return f"position {n}: |hidden| max {np.max(np.abs(row)):.6g}, target {int(t[n])}"
        if check == "grad:weight":
            return f"class {index[0]}, hidden dim {index[1]}"
        return f"class {index[0]}" if index else None

    # -- the oracle ------------------------------------------------------------------------------
    def kernel(self, problem):
        raise NotImplementedError("linear_cross_entropy settles through LossDef.exact")

    def exact(self, problem, fmt, grad_output=None, wrt=None) -> Exact:
        """The oracle's answer for one check (see the module docstring)."""
        o = problem.options
        hi, lo, ok = _logits(problem.rows["h"], o["weight"], o["bias"], FORMATS[problem.dtype].p)
        row_ok = np.all(ok, axis=1)
        # the CE kernel runs on hi; lo (|lo| <= ulp(hi)/2) is a perturbation bounded below
        m = np.where(row_ok, np.max(np.abs(np.where(ok, lo, 0.0)), axis=1, initial=0.0), 0.0)
        cp = CE_LOSS.prepare((hi, problem.rows["t"]), o["ce"])
        ck = CE_LOSS.kernel(cp)
        if wrt is None:
            return self._value(problem, fmt, cp, ck, row_ok, m)
        return self._grad(problem, fmt, cp, ck, row_ok, m, grad_output, wrt)

    @staticmethod
    def _logit_scale(problem) -> np.ndarray:
        """sum_d |h_nd w_vd| (+ |b_v|): the magnitude a backward-stable product errs relative to."""
        o = problem.options
        m = np.abs(problem.rows["h"]) @ np.abs(o["weight"]).T
        if o["bias"] is not None:
            m = m + np.abs(o["bias"])[None, :]
        return m

    def _perturbation(self, problem, cp, m):
        """Per position: (bound on |l_n(z) - l_n(hi)|, bound factors for G) where the logits
        z = hi + lo differ from hi by at most m_n (= max |lo|, ~2^-53 max |z|).

        With a_c the CE coefficients (sum a_c = A <= 1 here: no class weights), s = z_loss, c =
        softcap: |dl/dz_v| <= A p_v + a_v + 2 s |lse| p_v, so |dl| <= m (2A + 2s(|lse| + m)); the
        softmax moves by at most a factor e^(2m) over the segment, |dp_j| <= 2 p_j m e^(2m);
        soft-capping only shrinks differences (|d tanh| <= 1) and its derivative sech^2 varies by at
        most 0.77 m / c.  Factors of 1.01 and 2^-1000 absorb the float64 estimates of p and lse."""
        o = problem.options["ce"]
        s = float(o.get("z_loss") or 0.0)
        c = o.get("softcap")
        x = cp.rows["x"]
        kept = cp.rows["t"] != o.get("ignore_index", -100)
        with np.errstate(all="ignore"):
            zc = x if c is None else np_capped(x, c)
            top = np.max(np.where(np.isfinite(zc), np.abs(zc), 0.0), axis=1)
            lse = top + math.log(x.shape[1]) + 1.0  # >= |lse(z)| for finite rows
            mx = np.max(zc, axis=1, keepdims=True)
            p = np.exp(zc - mx)
            p = p / np.sum(p, axis=1, keepdims=True) * 1.01 + 2.0 ** -1000
            grow = np.exp(2 * m) * 1.01
            dval = np.where(kept, m * (2.0 + 2 * s * (lse + m)) * grow, 0.0)
            # |dG_j| / |gof| <= m e^(2m) [2 A p_j + 2 s (p_j + 2 (lse + m) p_j)]
            #                   + (softcap) 0.77 m / c (A p_j + a_j + 2 s (lse + m) p_j)
            dg = (m * grow)[:, None] * (2 * p + 2 * s * (p + 2 * (lse + m)[:, None] * p))
            if c is not None:
                dg = dg + (0.77 * m / c)[:, None] * (p + 1.0 + 2 * s * (lse + m)[:, None] * p) * 1.01
            dg = np.where(kept[:, None] & (m > 0)[:, None], dg, 0.0)
        return np.where(np.isfinite(dval), dval, np.inf), np.where(np.isfinite(dg), dg, np.inf)

    def _value(self, problem, fmt, cp, ck, row_ok, m) -> Exact:
        pairs = bool(np.any(m > 0))
        st = settle(Evaluation(cp, ck), G_FORMAT if pairs else fmt)
        n = problem.m
        with np.errstate(all="ignore"):
            g, _ = ck.grad(F64, cp.rows, np.ones(n), "input")
            g = np.where(np.isfinite(g), np.abs(g), 0.0)
            extra = np.sum(g * self._logit_scale(problem), axis=1)
        cond = np.asarray(st.cond, np.float64).copy()
        und = np.asarray(st.undetermined, bool).copy()
        d = 1.0
        if problem.reduced and problem.reduction == "mean":
            dd, _ = ck.denominator(F64, cp.rows)
            d = abs(float(dd)) if dd else math.inf
        if problem.reduced:
            cond = cond + float(np.sum(extra)) / d
            und |= not row_ok.all()
            shape = ()
        else:
            cond = cond + extra.reshape(cond.shape)
            und |= ~row_ok.reshape(und.shape)
            shape = (n,)
        nterms = np.asarray(st.nterms, np.int64) + problem.rows["h"].shape[1]
        if not pairs:
            return _exact_from(st, und, cond, shape, fmt)
        center, rad, s_und = _with_radius(st)
        dval, _ = self._perturbation(problem, cp, m)
        rad = rad + (np.sum(dval) / d if problem.reduced else dval.reshape(rad.shape))
        values, rounded, u2 = _round_interval(center, rad, fmt, und | s_und)
        return _product_exact(values.reshape(shape), rounded.reshape(shape), u2.reshape(shape),
                              cond.reshape(shape), nterms.reshape(shape), fmt)

    def _g(self, problem, cp, ck, m, grad_output):
        """d loss / d logits with a rigorous radius (shared by the three gradients of a call)."""
        key = (_digest(problem.rows["h"], problem.options["weight"], problem.options["bias"],
                       problem.rows["t"], grad_output), repr(sorted(problem.options["ce"].items())))
        if _G_CACHE.get("key") == key:
            return _G_CACHE["value"]
        ev = Evaluation(cp, ck, grad_output=grad_output, wrt="input")
        st = settle(ev, G_FORMAT)
        gd, rad, g_und = _with_radius(st)
        if np.any(m > 0):
            _, dg = self._perturbation(problem, cp, m)
            gof = np.abs(np.asarray(ev._gof(F64, None), np.float64)).reshape(-1, 1)
            rad = rad + np.where(g_und, 0.0, dg * gof)
        # the yardstick: G's own condition plus what a backward-stable product's logit errors
        # (u sum_d |h_d w_vd| each) move it by: |dG_j| <= |gof| A p_j (M_j + sum_k p_k M_k), with the
        # z-loss adding 2 s (|lse| + 1) of that (soft-capping only shrinks it)
        with np.errstate(all="ignore"):
            scale_m = self._logit_scale(problem)
            x = cp.rows["x"]
            c = problem.options["ce"].get("softcap")
            zc = x if c is None else np_capped(x, c)
            pr = np.exp(zc - np.max(zc, axis=1, keepdims=True))
            pr = pr / np.sum(pr, axis=1, keepdims=True)
            s_z = float(problem.options["ce"].get("z_loss") or 0.0)
            lse = np.max(np.abs(zc), axis=1, keepdims=True) + math.log(x.shape[1])
            gof = np.abs(np.asarray(ev._gof(F64, None), np.float64)).reshape(-1, 1)
            moved = gof * pr * (scale_m + np.sum(pr * scale_m, axis=1, keepdims=True)) * (1 + 2 * s_z * (lse + 1))
            cond_g = np.where(np.isfinite(st.cond), st.cond, 0.0) + np.where(np.isfinite(moved), moved, 0.0)
        out = (gd, rad, g_und, cond_g)
        _G_CACHE.update(key=key, value=out)
        return out

    def _grad(self, problem, fmt, cp, ck, row_ok, m, grad_output, wrt) -> Exact:
        gd, rad, g_und, cond_g = self._g(problem, cp, ck, m, grad_output)
        g_und = g_und | ~row_ok[:, None]
        o = problem.options
        h, w = problem.rows["h"], o["weight"]
        if wrt == "input":
            a, b, k = gd, w, w.shape[0]
            ca, ra, bad = cond_g, rad, np.any(g_und, axis=1)[:, None] & np.ones((1, w.shape[1]), bool)
        elif wrt == "weight":
            a, b, k = gd.T, h, h.shape[0]
            ca, ra = cond_g.T, rad.T
            bad = np.broadcast_to(np.any(g_und), (w.shape[0], h.shape[1]))
        elif wrt == "bias":
            a, b, k = gd.T, np.ones((h.shape[0], 1)), h.shape[0]
            ca, ra = cond_g.T, rad.T
            bad = np.broadcast_to(np.any(g_und), (w.shape[0], 1))
        else:
            raise ValueError(f"wrt: linear_cross_entropy has no gradient w.r.t. {wrt!r}")
        with np.errstate(all="ignore"):
            a0 = np.where(np.isfinite(a), a, 0.0)
            p = a @ b  # IEEE specials (a NaN G from a mean over nothing) come through as torch's
            mag = np.abs(a0) @ np.abs(b)
            prop = ra @ np.abs(b)
            # G held in the output format underflows by up to its smallest subnormal eta per entry,
            # which the product carries through |B|: (eta / u) sum_k |B_k| in units of u
            eta_u = 2.0 ** (fmt.qmin + fmt.p)
            cond = (np.abs(a0) + ca + eta_u) @ np.abs(b)
        values, rounded, und = _settle_product(p, mag, prop, k, fmt, np.asarray(bad, bool))
        if wrt == "bias":
            values, rounded, und, cond = (x.reshape(-1) for x in (values, rounded, und, cond))
        nterms = np.full(rounded.shape, k + problem.nclass, np.int64)
        return _product_exact(values, rounded, und, cond, nterms, fmt)

    # -- NumPy implementation ----------------------------------------------------------------------
    def _logits(self, nx, hidden, weight, bias):
        z = nx.work(hidden) @ nx.work(weight).T
        return z if bias is None else z + nx.work(bias)[None, :]

    def numpy_value(self, nx, input, weight, target, bias=None, ignore_index=-100, reduction="mean",
                    label_smoothing=0.0, softcap=None, z_loss=0.0):
        kw = self._ce_kwargs({"ignore_index": ignore_index, "reduction": reduction,
                                   "label_smoothing": label_smoothing, "softcap": softcap, "z_loss": z_loss})
        return CE_LOSS.numpy_value(nx, self._logits(nx, input, weight, bias), target, **kw)

    def numpy_grads(self, nx, input, weight, target, grad_output, bias=None, ignore_index=-100,
                    reduction="mean", label_smoothing=0.0, softcap=None, z_loss=0.0):
        kw = self._ce_kwargs({"ignore_index": ignore_index, "reduction": reduction,
                                   "label_smoothing": label_smoothing, "softcap": softcap, "z_loss": z_loss})
        z = self._logits(nx, input, weight, bias)
        g = CE_LOSS.numpy_grads(nx, z, target, grad_output=grad_output, **kw)["input"]
        out = {"input": g @ nx.work(weight), "weight": g.T @ nx.work(input)}
        if bias is not None:
            out["bias"] = np.sum(g, axis=0)
        return out

    # -- the independent formulation (reference/audit.py) -----------------------------------------
    def brute(self, args, kwargs, *, grad_output=None, wrt=None):
        """Logits by mpmath fsum of exact products (exact mpfs), cross_entropy's brute force on
        them, and the gradients contracted with fsum."""
        h = np.asarray(args[0]).astype(np.float64)
        w = np.asarray(args[1]).astype(np.float64)
        t = np.asarray(args[2])
        b = kwargs.get("bias")
        b = None if b is None else np.asarray(b).astype(np.float64)
        n, v = h.shape[0], w.shape[0]
        z = np.empty((n, v), dtype=object)
        with mpmath.workprec(4300):  # exact: D products of 53-bit numbers over float64's range
            for i in range(n):
                for j in range(v):
                    z[i, j] = mpmath.fsum([mpmath.mpf(float(x)) * mpmath.mpf(float(y)) for x, y in zip(h[i], w[j])]
                                          + ([mpmath.mpf(float(b[j]))] if b is not None else []))
        ce_kw = self._ce_kwargs(kwargs)
        if wrt is None:
            return CE_LOSS.brute((z, t), ce_kw, grad_output=grad_output)
        g = CE_LOSS.brute((z, t), ce_kw, grad_output=grad_output, wrt="input")  # (N, V) of mpf
        if wrt == "input":
            return np.array([[mpmath.fsum(g[i, j] * mpmath.mpf(float(w[j, d])) for j in range(v))
                              for d in range(h.shape[1])] for i in range(n)], dtype=object)
        if wrt == "weight":
            return np.array([[mpmath.fsum(g[i, j] * mpmath.mpf(float(h[i, d])) for i in range(n))
                              for d in range(h.shape[1])] for j in range(v)], dtype=object)
        return np.array([mpmath.fsum(g[i, j] for i in range(n)) for j in range(v)], dtype=object)

    # -- hypothesis ---------------------------------------------------------------------------------
    def strategy(self, dtype=None, max_tokens: int = 6, max_dim: int = 8, max_vocab: int = 12,
                 reductions=("none", "sum", "mean")):
        """linear_cross_entropy on small (N, D) x (V, D) problems, options drawn."""
        from hypothesis import strategies as st
        from hypothesis.extra import numpy as hnp

        from ._strategies import dtypes, floats

        asked = (dtype,) if isinstance(dtype, str) else tuple(dtype or self.dtypes)
        dts = dtypes(tuple(d for d in asked if d in self.dtypes) or asked)  # float64 is not checked

        @st.composite
        def strategy(draw):
            dt = draw(dts)
            n, d, v = (draw(st.integers(1, m)) for m in (max_tokens, max_dim, max_vocab))
            h = floats(draw, (n, d), dt, -4.0, 4.0)
            w = floats(draw, (v, d), dt, -2.0, 2.0)
            t = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, v - 1)))
            kw = {"reduction": draw(st.sampled_from(tuple(reductions)))}
            if draw(st.booleans()):
                t = np.where(draw(hnp.arrays(np.bool_, (n,))), -100, t).astype(np.int64)
            if draw(st.booleans()):
                kw["bias"] = floats(draw, (v,), dt, -1.0, 1.0)
            kw["label_smoothing"] = draw(st.sampled_from((0.0, 0.1)))
            return Call((h, w, t), kw)
        return strategy()


_LOGITS_CACHE: dict = {}
_G_CACHE: dict = {}


def _digest(*arrays) -> str:
    """Content hash of a call's arrays: the three gradient checks of one call share its exact
    logits and G (computed once per process, one call remembered)."""
    import hashlib

    hsh = hashlib.sha1()
    for a in arrays:
        if a is None:
            hsh.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        hsh.update(f"{a.dtype.str}{a.shape}".encode())
        hsh.update(a.view(np.uint8).reshape(-1) if a.size else b"")
    return hsh.hexdigest()


def _logits(h, w, b, bits):
    key = (_digest(h, w, b), bits)
    if _LOGITS_CACHE.get("key") != key:
        _LOGITS_CACHE.update(key=key, value=exact_matmul_t(h, w, b, bits=bits))
    return _LOGITS_CACHE["value"]


def _with_radius(st) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Settled G as float64 with a rigorous radius per entry, and its undetermined mask.

    A settled entry is within FIGURE_ULP ulp_36 <= 2^-45 |G| (+ 2^-1067 near underflow: ulp_36 is
    2^-1057 there) of the exact value (reference/settle.py); hi + lo is rounded to hi, adding |lo|."""
    und = np.asarray(st.undetermined, bool).copy()
    hi = np.asarray(st.hi, np.float64).copy()
    lo = np.asarray(st.lo, np.float64)
    rad = np.abs(np.where(np.isfinite(lo), lo, 0.0))
    vals = np.asarray(st.values, dtype=object)
    for i in zip(*np.nonzero(np.not_equal(vals, None) & ~und)):
        v = vals[i]
        if not mpmath.isfinite(v):
            hi[i], rad[i] = float(v), 0.0
            continue
        with mpmath.workprec(max(mpmath.mp.prec, 200)):
            f = float(v)
            hi[i], rad[i] = f, float(abs(v - f)) * (1 + 2.0 ** -40)
    with np.errstate(all="ignore"):
        rad = rad + 2.0 ** -44 * np.abs(np.where(np.isfinite(hi), hi, 0.0)) + 2.0 ** -1066
    # an entry with no terms (an ignored position's row) is settled with no error bound: exact 0
    rad = np.where((hi == 0) & (np.asarray(st.cond) == 0) & ~und, 0.0, rad)
    hi = np.where(und, np.nan, hi)
    return hi, np.where(und, 0.0, rad), und


def _settle_product(p, mag, prop, k, fmt, bad):
    """(values as float64, rounded, undetermined) of a product p = fl(A @ B) with mag = fl(|A| @ |B|)
    and prop = fl(radius(A) @ |B|): the exact product lies within
    b = (gamma_k mag + prop) / (1 - gamma_k) (1 + 2^-50) + k 2^-1073 of p (Higham's bound for any
    summation order, the computed nonnegative sums corrected by 1/(1 - gamma_k), and the
    underflow of each of the k products).  A product with no nonzero term is the float64 sum of
    signed zeros, exact."""
    u = 2.0 ** -53
    gamma = k * u / (1 - k * u)
    with np.errstate(all="ignore"):
        b = (gamma * mag + prop) / (1 - gamma) * (1 + 2.0 ** -50) + k * 2.0 ** -1073
        zero = (mag == 0) & (prop == 0) & (p == 0)
    return _round_interval(p, np.where(zero, 0.0, b), fmt, bad)


def _round_interval(p, b, fmt, bad):
    """(values, rounded, undetermined) for exact values known to lie in [p - b, p + b] (float64):
    settled when both ends round to one value of ``fmt`` and b is within FIGURE_ULP of an ulp
    (the figures' accuracy); b = 0 is exact.  Non-finite centres with b = 0 are IEEE specials."""
    bad = np.asarray(bad, bool)
    with np.errstate(all="ignore"):
        # float64 forms p -+ b rounded to nearest: widen by their own rounding so the ends enclose
        b2 = np.where(b == 0, 0.0, b + 2.0 ** -52 * (np.abs(p) + b) + 2.0 ** -1074)
        r = round_float(p, fmt)
        fin = np.isfinite(p) & np.isfinite(b2) & np.isfinite(r)
        ulp = ulp_of_value(np.where(fin, r, 0.0), fmt)
        # fast: [p - b2, p + b2] inside r's rounding interval (half the smaller spacing next to r;
        # |p - r| is exact in float64 for these formats' values), away from zero's sign question
        m, _ = np.frexp(np.where(fin, np.abs(r), 1.0))
        half = np.where((m == 0.5) & (np.abs(r) > np.ldexp(1.0, fmt.emin)), ulp / 4, ulp / 2)
        # |p - r| is exact; the sum with b2 is inflated by its own rounding, as in settle.py
        ok = fin & ((np.abs(p - r) + b2) * (1 + 2.0 ** -50) + 2.0 ** -1074 < half) & ((r != 0) | (b2 == 0))
        slow = np.flatnonzero(fin & ~ok & (b2 > 0))
        if slow.size:
            pf, bf = p.reshape(-1)[slow], b2.reshape(-1)[slow]
            lo_r, hi_r = round_float(pf - bf, fmt), round_float(pf + bf, fmt)
            flat = ok.reshape(-1)
            flat[slow] = (lo_r == hi_r) & (np.signbit(lo_r) == np.signbit(hi_r))
            ok = flat.reshape(p.shape)
        ok &= (b2 <= ulp * FIGURE_ULP)  # the stored value must serve the figures too
        ok |= fin & (b2 == 0)
        special = ~np.isfinite(p) & (b == 0)
        ok = (ok | special) & ~bad
    und = ~ok
    rounded = np.where(und, np.nan, np.where(special, p, r))
    return np.where(und, np.nan, p), rounded, und


def _product_exact(values, rounded, und, cond, nterms, fmt) -> Exact:
    shape = rounded.shape
    objs = np.empty(shape, dtype=object)
    return Exact.from_values(objs, und, cond, cond, nterms, fmt.name, rounded=rounded,
                             hi=np.where(und, np.nan, values), lo=np.zeros(shape))


def _exact_from(st, und, cond, shape, fmt) -> Exact:
    vals = np.asarray(st.values, dtype=object).reshape(shape)
    hi = np.asarray(st.hi).reshape(shape)
    lo = np.asarray(st.lo).reshape(shape)
    for i in zip(*np.nonzero(und.reshape(shape))) if shape else ([()] if und.reshape(()) else []):
        vals[i] = mpmath.mpf("nan")
    return Exact.from_values(vals, und.reshape(shape), cond.reshape(shape), cond.reshape(shape),
                             np.asarray(st.nterms).reshape(shape), fmt.name,
                             rounded=np.asarray(st.rounded).reshape(shape), hi=hi, lo=lo)


LOSS = LinearCrossEntropy()


# ------------------------------------------------------------------------------ case families

def _dim(size) -> int:
    """The hidden size of the small families: 16, 8 in the smoke suite (its element budget)."""
    return 8 if size.name == "smoke" else 16


def _problem(rng, dtype, n, d, v, h_scale=1.0, w_scale=None, tail=False):
    w_scale = 1.0 / math.sqrt(d) if w_scale is None else w_scale
    h = normal(rng, h_scale, (n, d), dtype)
    w = normal(rng, w_scale, (v, d), dtype)
    if tail:  # heavy-tailed logits: a few classes with large weight rows (frequent tokens)
        hot = rng.choice(v, size=max(1, v // 16), replace=False)
        w = cast(w.astype(np.float64) * np.where(np.isin(np.arange(v), hot), 8.0, 1.0)[:, None], dtype)
    return h, w


@LOSS.family("lce.random")
def lce_random(rng, dtype, size):
    """Gaussian hidden states and a 1/sqrt(D)-scaled head: plain, bias, ignore_index (padding) and
    label_smoothing calls over the suite's class counts, every reduction."""
    out = []
    for i, v in enumerate((8, 100) if size.name != "full" else (8,) + size.classes):
        for j, option in enumerate(("plain", "bias", "ignore_index", "label_smoothing")):
            h, w = _problem(rng, dtype, size.batch, _dim(size), v)
            t = class_targets(rng, (size.batch,), v)
            kw = {"reduction": reduction(i + j)}
            if option == "bias":
                kw["bias"] = normal(rng, 0.5, (v,), dtype)
            elif option == "ignore_index":
                t[0] = -100
            elif option == "label_smoothing":
                kw["label_smoothing"] = 0.1
            out.append(Call((h, w, t), kw))
    return out


@LOSS.family("lce.llm")
def lce_llm(rng, dtype, size):
    """LLM-like: heavy-tailed logits, confident tokens, padding (ignore_index), label smoothing."""
    v = 512 if size.name == "gate" else (32768 if size.name == "full" else 64)
    d = 64 if size.name != "smoke" else _dim(size)
    n = 4 if size.name != "full" else 16
    h, w = _problem(rng, dtype, n, d, v, h_scale=2.0, tail=True)
    t = class_targets(rng, (n,), v)
    t[-1] = -100  # a padding position
    out = [Call((h, w, t), {"reduction": "mean"}),
           Call((h, w, t), {"reduction": "sum", "label_smoothing": 0.1})]
    return out


@LOSS.family("lce.norms")
def lce_norms(rng, dtype, size):
    """Tiny and huge hidden norms: logits near 0 (uniform softmax) and logits of hundreds."""
    out = []
    for i, scale in enumerate((2.0 ** -12, 2.0 ** 6)):
        h, w = _problem(rng, dtype, size.batch, _dim(size), 32, h_scale=scale)
        out.append(Call((h, w, class_targets(rng, (size.batch,), 32)), {"reduction": reduction(i)}))
    return out


@LOSS.family("lce.softcap_zloss")
def lce_softcap_zloss(rng, dtype, size):
    """Gemma-style soft-capping (logits far past the cap and near it) and PaLM-style z-loss on
    large logits, alone and together with padding and label smoothing."""
    out = []
    for i, (cap, zl) in enumerate(((30.0, 0.0), (5.0, 0.0), (None, 1e-4), (30.0, 1e-4))):
        h, w = _problem(rng, dtype, size.batch, _dim(size), 48, h_scale=8.0)
        t = class_targets(rng, (size.batch,), 48)
        kw = {"reduction": reduction(i)}
        if cap is not None:
            kw["softcap"] = cap
        if zl:
            kw["z_loss"] = zl
        if i == 3:
            t[0] = -100
            kw["label_smoothing"] = 0.1
        out.append(Call((h, w, t), kw))
    return out
