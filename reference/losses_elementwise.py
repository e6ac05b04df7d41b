"""binary_cross_entropy, binary_cross_entropy_with_logits and mse_loss on row form (M, 1).

BCE:    l = -w [y max(log x, -100) + (1-y) max(log(1-x), -100)]      (torch's clamp, exact -100)
BCEWL:  l =  w [p y softplus(-x) + (1-y) softplus(x)]                 (= -w[p y log s(x) + (1-y) log(1-s(x))])
MSE:    l = (x - y)^2
Means are plain element means.  Exactly-zero coefficients contribute nothing (0 * inf = 0).
log(1-x) is evaluated as log1p(-x): the exact value, whatever torch does.
"""
from __future__ import annotations

import numpy as np

from .losses_class import _one, _safe_mul
from .numerics import F64, shifted_lse


class ElementwiseKernel:

    def __init__(self, loss: str, opts: dict, nclass: int = 1):
        self.loss = loss

    def denominator(self, ns, rows):
        m = rows["x"].shape[0]
        return ns.const(m), 0.0  # an exact count: no rounding error to carry

    def _w(self, ns, rows, name):
        return ns.asarray(rows[name][:, 0]) if name in rows else None

    def _coefs(self, ns, rows):
        """(x, y, c1, c2): BCE's -w*y and -w*(1-y); BCE-with-logits' w*p*y and w*(1-y)."""
        x = ns.asarray(rows["x"][:, 0])
        y = ns.asarray(rows["y"][:, 0])
        w = self._w(ns, rows, "weight")
        one = ns.const(1)
        if self.loss == "binary_cross_entropy":
            c1, c2 = -y, -(one - y)
        else:
            pw = self._w(ns, rows, "pos_weight")
            c1, c2 = (y if pw is None else pw * y), one - y
        if w is not None:
            c1, c2 = c1 * w, c2 * w
        return x, y, c1, c2

    def _terms(self, ns, rows):
        """[(coefficient, term)] with l = sum coef * term, all (M,)."""
        if self.loss == "mse_loss":
            d = ns.asarray(rows["x"][:, 0]) - ns.asarray(rows["y"][:, 0])
            return [(d, d)]
        x, _, c1, c2 = self._coefs(ns, rows)
        if self.loss == "binary_cross_entropy":
            lo = ns.const(-100)
            l1 = ns.log(x)
            l2 = ns.log1p(-x)
            return [(c1, np.where(l1 < lo, lo, l1)), (c2, np.where(l2 < lo, lo, l2))]
        return [(c1, ns.softplus(-x)), (c2, ns.softplus(x))]

    def parts(self, ns, rows):
        val = mag = None
        for c, t in self._terms(ns, rows):
            v = c * t  # IEEE: 0 * inf is NaN, as in the documented formula and in torch
            val = v if val is None else val + v
            mag = np.abs(v) if mag is None else mag + np.abs(v)
        return [(_one, val, mag)]

    def scales(self, rows):
        x, y = rows["x"][:, 0], rows["y"][:, 0]
        with np.errstate(all="ignore"):
            terms = self._terms(F64, rows)
            mag = sum(_safe_mul(np.abs(c), np.abs(t)) for c, t in terms)
            g = np.nan_to_num(self._dx(F64, rows), nan=0.0)
            if self.loss == "mse_loss":
                cond = mag + 2 * np.abs(x - y) * (np.abs(x) + np.abs(y))
                scale = (np.abs(x) + np.abs(y)) ** 2
            else:
                cond = mag + _safe_mul(np.abs(x), np.abs(g)) + np.abs(g)
                scale = sum(_safe_mul(np.abs(c), 1 + np.abs(t)) for c, t in terms)
                if self.loss == "binary_cross_entropy_with_logits":
                    # the logit is the natural unit too: (1-y)*x - lw*log_sigmoid(x), torch's
                    # documented-stable form, cancels two terms of size |x| for x < 0
                    scale = scale + sum(np.abs(c) for c, _ in terms) * np.abs(x)
        return cond, scale, np.full(x.shape, len(terms), np.int64)

    def _dx(self, ns, rows):
        """d l / d x, with a clamped BCE log contributing nothing (it is constant there)."""
        if self.loss == "mse_loss":
            return ns.const(2) * (ns.asarray(rows["x"][:, 0]) - ns.asarray(rows["y"][:, 0]))
        x, _, c1, c2 = self._coefs(ns, rows)
        one, zero = ns.const(1), ns.const(0)
        if self.loss == "binary_cross_entropy":
            lo = ns.const(-100)
            # unclamped where log x > -100 (log x == -100 exactly cannot happen for x > 0 rational)
            live1 = ns.log(x) > lo
            live2 = ns.log1p(-x) > lo
            g1 = np.where(live1, c1 / np.where(live1, x, one), zero)
            g2 = np.where(live2, -c2 / np.where(live2, one - x, one), zero)
            return g1 + g2
        s_pos = ns.exp(-ns.softplus(-x))  # sigmoid(x)
        s_neg = ns.exp(-ns.softplus(x))  # sigmoid(-x)
        return c2 * s_pos - c1 * s_neg

    def grad(self, ns, rows, gof):
        gof = ns.asarray(gof)
        g = gof * self._dx(ns, rows)
        return g[:, None], np.abs(g)[:, None]

    def grad_scales(self, rows, gof):
        x, y = rows["x"][:, 0], rows["y"][:, 0]
        with np.errstate(all="ignore"):
            g, _ = self.grad(F64, rows, gof)
            g = np.abs(np.nan_to_num(g[:, 0], nan=0.0))
            ag = np.abs(gof)
            if self.loss == "mse_loss":
                cond = g + 2 * ag * (np.abs(x) + np.abs(y))
                scale = cond
            else:
                _, _, c1, c2 = self._coefs(F64, rows)
                coef = ag * (np.abs(c1) + np.abs(c2))  # the natural unit: |grad_output| * |w| * ...
                if self.loss == "binary_cross_entropy":
                    cond = 2 * g  # d(1/x)/dx * x = 1/x: same size as the term
                    scale = g + coef
                else:
                    s = 1 / (1 + np.exp(-np.abs(x)))
                    cond = g + _safe_mul(coef, (np.abs(x) + 1) * s * (1 - s)) * 2
                    scale = g + coef
        return cond[:, None], scale[:, None], np.ones((x.shape[0], 1), np.int64)


class SoftmaxKernel:
    """softmax / log_softmax along the class dim of row form (M, C); elementwise output."""

    def __init__(self, loss: str, opts: dict, nclass: int):
        self.loss = loss
        self.c = nclass

    def _pieces(self, ns, x, xf=None):
        y, e, _, s, self._lns, _ = shifted_lse(ns, x, xf)
        return y, e, s

    def parts(self, ns, rows):
        x = ns.asarray(rows["x"])
        y, e, s = self._pieces(ns, x, rows["x"])
        if self.loss == "softmax":
            v = e / s
            return [(_one, v, np.abs(v))]
        lns = self._lns  # log1p(rest): relatively accurate
        return [(_one, y - lns, np.abs(y) + lns)]

    def scales(self, rows):
        x = rows["x"]
        with np.errstate(all="ignore"):
            y, e, s = self._pieces(F64, x)
            p = e / s
            ay = np.abs(y)
            sp = _safe_mul(ay, p).sum(axis=1, keepdims=True)
            sens = _safe_mul(ay, np.abs(1 - 2 * p)) + sp + 2 * (1 - p)
            if self.loss == "softmax":
                cond = p + _safe_mul(p, sens)
                scale = np.ones_like(p)
            else:
                lns = self._lns
                mag = ay + lns
                cond = mag + sens
                scale = 1 + mag
        return cond, scale, np.full(x.shape, self.c, np.int64)

    def grad(self, ns, rows, go):
        """VJP: softmax s*(go - <go, s>);  log_softmax go - s * sum(go)."""
        x = ns.asarray(rows["x"])
        go = ns.asarray(go)
        _, e, s = self._pieces(ns, x, rows["x"])
        p = e / s
        if self.loss == "softmax":
            dot = ns.sum(go * p, axis=1, keepdims=True)
            g = p * (go - dot)
            mag = p * (np.abs(go) + ns.sum(np.abs(go) * p, axis=1, keepdims=True))
        else:
            tot = ns.sum(go, axis=1, keepdims=True)
            g = go - p * tot
            mag = np.abs(go) + p * ns.sum(np.abs(go), axis=1, keepdims=True)
        return g, mag

    def grad_scales(self, rows, go):
        x = rows["x"]
        with np.errstate(all="ignore"):
            _, mag = self.grad(F64, rows, go)
            y, e, s = self._pieces(F64, x)
            p = e / s
            ay = np.abs(y)
            sp = _safe_mul(ay, p).sum(axis=1, keepdims=True)
            sens = _safe_mul(ay, np.abs(1 - 2 * p)) + sp + 2 * (1 - p)
            amax = np.abs(go).max(axis=1, keepdims=True)
            # p_j's sensitivity times what multiplies p_j: <go, p> (at most max|go|) for softmax,
            # sum(go) for log_softmax
            mult = amax if self.loss == "softmax" else np.abs(go).sum(axis=1, keepdims=True)
            cond = mag + _safe_mul(_safe_mul(p, sens), mult) * 2
            scale = mag if self.loss == "log_softmax" else np.broadcast_to(amax, mag.shape)
        return cond, scale, np.full(x.shape, self.c, np.int64)
