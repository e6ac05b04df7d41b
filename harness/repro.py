"""Copy-paste Python snippets that reproduce one case outside the harness.

Why: a failing check is only useful if someone can rerun it in a bug report.  Small arrays are
written out exactly (float.hex() strings, integer class indices); larger ones travel inside the
snippet too, as their exact bytes (zlib, base64), so a case from any seed, a hypothesis strategy or
a case file reruns as pasted.  Only past :data:`MAX_EMBED` bytes is a case fetched by id from the
suite and seed its ``meta`` names (``cases.find``).  The snippet calls the backend the way user code
does (``F.<loss>(...)`` for torch and torch.nn.functional drop-ins) and prints the observed value
next to the oracle's exact one.
"""
from __future__ import annotations

import numpy as np

__all__ = ["MAX_EMBED", "MAX_LITERAL", "snippet"]

MAX_LITERAL = 64  # arrays up to this many elements are written out literally
MAX_EMBED = 1 << 18  # cases up to this many bytes of arrays are embedded as compressed bytes

_TORCH_HEADER = """\
import ml_dtypes, mpmath, numpy as np, torch
import reference

def arr(values, dtype, shape):
    \"\"\"(torch tensor, numpy array) holding exactly these values (float.hex strings or ints).\"\"\"
    if dtype == "int64":
        return torch.tensor(values, dtype=torch.int64).reshape(shape), np.array(values, np.int64).reshape(shape)
    f = [float.fromhex(v) for v in values]
    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    return (torch.tensor(f, dtype=torch.float64).to(getattr(torch, dtype)).reshape(shape),
            np.array(f, np.float64).astype(np_dtype).reshape(shape))

def packed(text, dtype, shape):
    \"\"\"(torch tensor, numpy array) from an array's exact little-endian bytes (zlib, base64).\"\"\"
    import base64, zlib
    raw = zlib.decompress(base64.b64decode(text))
    if dtype == "bfloat16":
        bits = np.frombuffer(raw, "<u2").astype(np.uint16).reshape(shape)
        t = torch.from_numpy(bits.astype(np.int16)).view(torch.bfloat16)
        return t, bits.view(ml_dtypes.bfloat16)
    a = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<")).astype(np.dtype(dtype)).reshape(shape)
    return torch.from_numpy(a.copy()), a
"""


def snippet(case, backend_spec: str, check: str = "value", out_dtype: str | None = None) -> str:
    """Python source reproducing ``case`` (``check``: "value" or "grad:<arg>") with ``backend_spec``;
    ``out_dtype``: the format the backend returned instead of the input's, which the exact answer
    printed beside it is then settled in."""
    from harness.backends.loading import BUILTIN, is_dropin
    from reference import registry

    checks = registry.get(case.loss).checks_for(case.args, case.kwargs)
    if check not in checks:
        raise ValueError(f"check must be one of {', '.join(checks)}, got {check!r}")
    literal = all(np.size(a) <= MAX_LITERAL for a in _arrays(case))
    embed = sum(np.asarray(a).nbytes for a in _arrays(case)) <= MAX_EMBED
    module_like = backend_spec == "torch" or (("." in backend_spec or ":" in backend_spec)
                                              and backend_spec not in BUILTIN and is_dropin(backend_spec))
    lines = [(f"# losscheck repro: case {case.id} ({case.loss}, family {case.family}, "
              f"{case.dtype}, check {check}, backend {backend_spec})")]
    lines.append(_TORCH_HEADER)
    lines += _inputs(case, literal, embed)
    lines += _exact(case, check, out_dtype)
    if module_like:
        lines += _call_module(case, backend_spec, check)
    else:
        lines += _call_backend(case, backend_spec, check, literal or embed)
    lines.append("np.set_printoptions(precision=17, threshold=64)")
    lines.append("show = lambda a: a.reshape(-1).tolist() if a.size <= 64 else a  # noqa: E731")
    lines.append('print("observed:", show(observed))')
    lines.append('print("rounded: ", show(exact.rounded.astype(np.float64)))')
    lines.append('print("exact:   ", [mpmath.nstr(v, 17) for v in exact.values.reshape(-1)[:64]])')
    return "\n".join(lines) + "\n"


def _arrays(case) -> list[np.ndarray]:
    out = list(case.args) + [v for v in case.kwargs.values() if isinstance(v, np.ndarray)]
    if case.grad_output is not None:
        out.append(case.grad_output)
    return out


def _literal(a: np.ndarray) -> str:
    dtype = "bfloat16" if str(a.dtype) == "bfloat16" else a.dtype.name
    flat = np.asarray(a).reshape(-1)
    if a.dtype.kind in "iu":
        vals = "[" + ", ".join(str(int(v)) for v in flat) + "]"
    else:
        vals = "[" + ", ".join(repr(float(v).hex()) for v in flat.astype(np.float64)) + "]"
    return f"arr({vals}, {dtype!r}, {tuple(int(s) for s in a.shape)!r})"


def _packed(a: np.ndarray) -> str:
    import base64
    import zlib

    dtype = "bfloat16" if str(a.dtype) == "bfloat16" else a.dtype.name
    le = np.ascontiguousarray(a).view(np.uint16) if dtype == "bfloat16" else np.ascontiguousarray(a)
    raw = le.astype(le.dtype.newbyteorder("<")).tobytes()
    text = base64.b64encode(zlib.compress(raw, 9)).decode("ascii")
    return f"packed({text!r}, {dtype!r}, {tuple(int(s) for s in a.shape)!r})"


def _inputs(case, literal: bool, embed: bool = True) -> list[str]:
    """Defines t_args, t_kwargs (torch) and np_args, np_kwargs (numpy) and np_grad_output."""
    lines = []
    arrays = [(f"arg{i}", a) for i, a in enumerate(case.args)]
    arrays += [(k, v) for k, v in sorted(case.kwargs.items()) if isinstance(v, np.ndarray)]
    scalars = {k: v for k, v in sorted(case.kwargs.items()) if not isinstance(v, np.ndarray)}
    if case.grad_output is not None:
        arrays.append(("grad_output", case.grad_output))
    if literal or embed:
        for name, a in arrays:
            lines.append(f"t_{name}, np_{name} = {_literal(a) if np.size(a) <= MAX_LITERAL else _packed(a)}")
    else:
        suite, seed = case.meta.get("suite"), int(case.meta.get("seed", 0) or 0)
        where = f"suites=({suite!r},), seed={seed}" if suite else f"seed={seed}"
        lines.append("import cases")
        lines.append("from harness.backends.convert import to_torch")
        lines.append(f"case = cases.find({case.id!r}, {where})  # too large to embed")
        lines.append(f"assert case is not None, 'case {case.id} is in none of the built-in suites'")
        for i in range(len(case.args)):
            lines.append(f"np_arg{i} = case.args[{i}]")
        for name, _ in arrays:
            if not name.startswith("arg") and name != "grad_output":
                lines.append(f"np_{name} = case.kwargs[{name!r}]")
        if case.grad_output is not None:
            lines.append("np_grad_output = case.grad_output")
        for name, _ in arrays:
            lines.append(f"t_{name} = to_torch(np_{name})")
    kw_arrays = [n for n, _ in arrays if not n.startswith("arg") and n != "grad_output"]
    scal = ", ".join(f"{k!r}: {v!r}" for k, v in scalars.items())
    lines.append(f"scalars = {{{scal}}}")
    lines.append("t_args = [" + ", ".join(f"t_arg{i}" for i in range(len(case.args))) + "]")
    lines.append("np_args = [" + ", ".join(f"np_arg{i}" for i in range(len(case.args))) + "]")
    lines.append("t_kwargs = dict(scalars, " + ", ".join(f"{k}=t_{k}" for k in kw_arrays) + ")")
    lines.append("np_kwargs = dict(scalars, " + ", ".join(f"{k}=np_{k}" for k in kw_arrays) + ")")
    return lines


def _wrt(check: str) -> str | None:
    return check.partition(":")[2] if check != "value" else None


def _torch_ref(case, arg: str) -> str:
    """The snippet's name for argument ``arg``'s tensor: ``t_args[i]`` or ``t_kwargs[arg]``."""
    from reference import registry

    names = [a.name for a in registry.get(case.loss).positional]
    return f"t_args[{names.index(arg)}]" if arg in names else f"t_kwargs[{arg!r}]"


def _exact(case, check: str, out_dtype: str | None = None) -> list[str]:
    wrt = _wrt(check)
    out = f", out_dtype={out_dtype!r}" if out_dtype else ""
    if wrt is not None:
        return [(f"exact = reference.evaluate_grad({case.loss!r}, *np_args, "
                 f"grad_output=np_grad_output, wrt={wrt!r}{out}, **np_kwargs)")]
    return [f"exact = reference.evaluate({case.loss!r}, *np_args{out}, **np_kwargs)"]


def _call_module(case, spec: str, check: str) -> list[str]:
    if spec == "torch":
        lines = ["import torch.nn.functional as F"]
    else:
        mod, _, attr = spec.partition(":")
        lines = ["import importlib", f"F = importlib.import_module({mod!r})"]
        if attr:
            lines.append(f"F = getattr(F, {attr!r})")
    wrt = _wrt(check)
    if wrt is not None:
        lines.append(f"{_torch_ref(case, wrt)}.requires_grad_(True)")
    lines.append(f"out = F.{case.loss}(*t_args, **t_kwargs)")
    if wrt is not None:
        lines.append("out.backward(t_grad_output)")
        lines.append(f"result = {_torch_ref(case, wrt)}.grad")
    else:
        lines.append("result = out")
    lines.append("observed = result.detach().to(torch.float64).numpy()")
    return lines


def _call_backend(case, spec: str, check: str, literal: bool) -> list[str]:
    """Built-in non-torch backends (numpy, jax, entry points) and Backend classes or objects
    (``pkg.mod:MyBackend``) take a Case, not tensors: ``load(spec)`` builds them as the run did."""
    lines = ["from harness.backends import load"]
    if literal:
        go = "np_grad_output" if case.grad_output is not None else "None"
        lines.append("import cases")
        lines.append(f"case = cases.Case(loss={case.loss!r}, args=tuple(np_args), kwargs=np_kwargs, "
                     f"family={case.family!r}, options={case.options!r}, grad={bool(case.grad)!r}, "
                     f"grad_output={go}, meta={{}}, id={case.id!r})")
    lines.append(f"obs = load({spec!r}).evaluate(case)")
    lines.append(f"observed = np.asarray(obs.observed({check!r})).astype(np.float64)")
    return lines
