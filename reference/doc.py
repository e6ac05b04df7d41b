"""Render docs/losses.md from the registry: each LossDef's signature, checks, families and notes.

``python -m reference.doc > docs/losses.md``; tests/test_lossdefs.py fails when the committed page
and the definitions drift apart.
"""
from __future__ import annotations

from . import registry

INTRO = """\
# Losses

Generated from the loss definitions by `python -m reference.doc > docs/losses.md`; do not edit by
hand (a test compares this page with the definitions).

Each loss is one `LossDef` object (reference/lossdef.py) in one module under reference/losses/,
listed in `reference.registry.MODULES`. It owns:

- its argument schema (`Arg`: positional tensors, keyword options, which tensors torch
  differentiates) and **one validator**, `prepare(args, kwargs)`, which both `cases.make_case` and
  the oracle call, so no suite can carry a call torch would refuse;
- the mapping into the oracle's row form (`Problem`) and its `Kernel` (value parts, condition
  scale, natural scale, term counts, and a gradient for each differentiable argument), written once
  against a numeric namespace and evaluated in float64, long double, quad and mpmath (docs/oracle.md);
- `option_family(args, kwargs)`, its case families (`@LOSS.family(name)`, returning `Call`s that
  cases/ turns into content-hashed Cases), its hypothesis strategy (`cases.strategies.<loss>_cases`),
  its NumPy implementation (`numpy_value`, `numpy_grads`: the `numpy` backend) and the notes below.

A check is `value` or `grad:<arg>` for each differentiable argument; backends return every declared
gradient (drop-ins: torch autograd with the case's `grad_output`), and the oracle gives each exactly
(`reference.evaluate_grad(name, ..., wrt=arg)`).

Adding a loss: write `reference/losses/<name>.py` defining `LOSS = MyLoss()` (or `LOSSES = (...)`),
add `"<name>"` to `MODULES`, and run the tests (tests/test_lossdefs.py checks the definition is
complete, that the gate suite covers every option family in every dtype, that torch computes the
declared gradients, and that no generic code names a loss), then regenerate this page.
"""


def render() -> str:
    out = [INTRO]
    for d in registry.REGISTRY.values():
        out.append(f"\n## `{d.name}`\n")
        out.append(f"`reference.{d.name}{d.signature()}`\n")
        out.append(f"{d.summary}.\n")
        out.append(f"- checks: {', '.join(f'`{c}`' for c in d.checks)}")
        out.append(f"- reductions: {', '.join(d.reductions) if d.has_reduction else 'none (elementwise output)'}")
        out.append(f"- option families: {', '.join(d.option_families)}")
        out.append(f"- dtypes: {', '.join(d.dtypes)}\n")
        out.append("Case families:\n")
        out += [f"- `{f.name}`: {f.doc}" for f in d.families.values()]
        out.append("\nSemantics:\n")
        out.append(d.notes.rstrip() + "\n")
    return "\n".join(out)


if __name__ == "__main__":
    print(render(), end="")
