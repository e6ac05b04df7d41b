"""Save and load sets of cases without pickle: one .npz (allow_pickle=False).

Layout: array entries ``c{i}_{role}`` (bfloat16 stored as its uint16 bit pattern; the dtype name is
kept in the metadata) and one ``__meta__`` entry, the UTF-8 JSON metadata as a uint8 array.  The
metadata carries a sha256 of itself; every case id is recomputed from the loaded bits.  So a
truncated, corrupted or hand-edited file fails with a :class:`CaseFileError` naming file and problem.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable

import numpy as np

from reference.budget import ENV, BudgetError, check_elements, element_budget
from reference.sampling import DTYPES

from .model import Case, make_case

SCHEMA = "losscheck.cases/1"
_META = "__meta__"
_STORED = {"bfloat16": np.dtype("<u2")}


class CaseFileError(ValueError):
    """A case file that cannot be trusted: unreadable, truncated, corrupted or edited."""


def _digest(cases_json: list) -> str:
    return hashlib.sha256(json.dumps(cases_json, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _store(a: np.ndarray) -> tuple[np.ndarray, str]:
    name = str(a.dtype)
    stored = a.view(_STORED[name]) if name in _STORED else a
    return np.array(stored, order="C"), name


def save(cases: Iterable[Case], path: str | os.PathLike) -> None:
    """Write cases to ``path`` (exactly that name; no extension is added)."""
    arrays: dict[str, np.ndarray] = {}
    records = []
    for i, c in enumerate(cases):
        def put(role: str, a: np.ndarray, i: int = i) -> dict:
            key = f"c{i}_{role}"
            arrays[key], dtype = _store(a)
            return {"key": key, "dtype": dtype}
        records.append({
            "id": c.id, "loss": c.loss, "family": c.family, "options": c.options, "grad": c.grad,
            "meta": c.meta,
            "kwargs": {k: v for k, v in c.kwargs.items() if not isinstance(v, np.ndarray)},
            "array_kwargs": {k: put(f"kw_{k}", v) for k, v in c.kwargs.items() if isinstance(v, np.ndarray)},
            "args": [put(f"a{j}", a) for j, a in enumerate(c.args)],
            "grad_output": None if c.grad_output is None else put("g", c.grad_output),
        })
    meta = {"schema": SCHEMA, "count": len(records), "sha256": _digest(records), "cases": records}
    arrays[_META] = np.frombuffer(json.dumps(meta, allow_nan=False).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def _array(npz, ref: dict, path, idx: int) -> np.ndarray:
    name = ref.get("dtype")
    if name not in DTYPES and name != "int64":
        raise CaseFileError(f"{path}: case {idx}: unknown dtype {name!r}")
    try:
        a = npz[ref["key"]]
    except KeyError:
        raise CaseFileError(f"{path}: case {idx}: array {ref['key']!r} is missing") from None
    want = _STORED.get(name, np.dtype(name) if name == "int64" else DTYPES.get(name))
    if a.dtype != want:
        raise CaseFileError(f"{path}: case {idx}: array {ref['key']!r} has dtype {a.dtype}, expected {want}")
    return a.view(DTYPES[name]) if name in _STORED else a


def _check_sizes(npz, path) -> None:
    """Refuse, before reading any data, members whose declared size or array shape exceeds the
    element budget (a small compressed file can expand to gigabytes: reference/budget.py)."""
    budget = element_budget()
    for info in npz.zip.infolist():
        if info.file_size > budget * 8 + (64 << 20):
            raise CaseFileError(f"{path}: member {info.filename!r} expands to {info.file_size:,} bytes, over the "
                                f"element budget of {budget:,} (set {ENV} to raise it)")
        with npz.zip.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, _ = read(fh)
        count = math.prod(int(n) for n in shape)  # Python ints: a forged shape cannot overflow
        if info.filename != _META + ".npy":
            try:
                check_elements(count, f"{path}: array {info.filename!r}")
            except BudgetError as exc:
                raise CaseFileError(str(exc)) from None


def load(path: str | os.PathLike) -> list[Case]:
    """Read cases written by :func:`save`; every id and option family is re-derived and checked."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            _check_sizes(npz, path)
            meta = json.loads(bytes(npz[_META]).decode())
            if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
                raise CaseFileError(f"{path}: not a {SCHEMA} file (schema {meta.get('schema')!r})")
            records = meta["cases"]
            if meta.get("count") != len(records) or meta.get("sha256") != _digest(records):
                raise CaseFileError(f"{path}: metadata checksum mismatch (file was edited or corrupted)")
            return [_case(npz, r, path, i) for i, r in enumerate(records)]
    except CaseFileError:
        raise
    except FileNotFoundError:
        raise CaseFileError(f"{path}: no such file") from None
    except Exception as e:  # noqa: BLE001  (zip/CRC/JSON/format errors all mean "damaged file")
        raise CaseFileError(f"{path}: unreadable case file ({type(e).__name__}: {e})") from None


def _case(npz, r: dict, path, i: int) -> Case:
    args = [_array(npz, ref, path, i) for ref in r["args"]]
    kwargs = dict(r["kwargs"])
    kwargs.update({k: _array(npz, ref, path, i) for k, ref in r["array_kwargs"].items()})
    go = None if r["grad_output"] is None else _array(npz, r["grad_output"], path, i)
    try:
        c = make_case(r["loss"], args, kwargs, family=r["family"], meta=r["meta"], grad=r["grad"],
                      grad_output=go)
    except ValueError as e:
        raise CaseFileError(f"{path}: case {i} ({r.get('id')}): invalid: {e}") from None
    if c.id != r["id"]:
        raise CaseFileError(f"{path}: case {i}: id mismatch (stored {r['id']}, content hashes to {c.id})")
    if c.options != r["options"]:
        raise CaseFileError(f"{path}: case {i}: options {r['options']!r} but arguments give {c.options!r}")
    return c
