import io
import json
import zipfile

import numpy as np
import pytest

import cases
from cases import CaseFileError
from cases.model import make_case
from reference.sampling import cast


def _bits(a):
    return a.tobytes(), str(a.dtype), a.shape


def _same(a, b):
    assert a.id == b.id and a.loss == b.loss and a.family == b.family and a.options == b.options
    assert a.grad == b.grad and a.meta == b.meta
    assert [_bits(x) for x in a.args] == [_bits(x) for x in b.args]
    assert set(a.kwargs) == set(b.kwargs)
    for k, v in a.kwargs.items():
        assert (_bits(v) == _bits(b.kwargs[k])) if isinstance(v, np.ndarray) else v == b.kwargs[k]
    assert (a.grad_output is None) == (b.grad_output is None)
    if a.grad_output is not None:
        assert _bits(a.grad_output) == _bits(b.grad_output)


@pytest.fixture()
def specials():
    x = cast([[np.nan, -np.inf, 1.0], [np.inf, -0.0, 6e-8]], "bfloat16")
    return [
        make_case("softmax", (x,), {"dim": 1}, family="t.io", meta={"note": "nan/inf bf16"}),
        make_case("mse_loss", (cast([np.nan, -np.inf, 1e-300], "float64"), cast([0.0, 1.0, 5e-324], "float64")),
                  {"reduction": "none"}, family="t.io"),
        make_case("cross_entropy", (cast([-np.inf, 2.0, 3.0], "float16"), np.asarray(1, np.int64)),
                  {"weight": cast([1, 2, 3], "float16"), "label_smoothing": 0.1}, family="t.io"),
        make_case("binary_cross_entropy", (cast([0.0, 1.0], "float32"), cast([1.0, 0.5], "float32")),
                  {}, family="t.io", grad=False),
    ]


def test_round_trip_bit_exact_specials(tmp_path, specials):
    p = tmp_path / "cases.npz"
    cases.save(specials, p)
    back = cases.load(p)
    assert len(back) == len(specials)
    for a, b in zip(specials, back):
        _same(a, b)
        assert all(not x.flags.writeable for x in b.args)
    assert str(back[0].args[0].dtype) == "bfloat16" and np.isnan(back[0].args[0].astype(np.float64)[0, 0])


def test_gate_round_trips(tmp_path):
    gate = cases.build_suite("gate")
    p = tmp_path / "gate.cases"          # no extension added
    cases.save(gate, p)
    assert p.exists()
    back = cases.load(p)
    assert len(back) == len(gate)
    for a, b in zip(gate, back):
        _same(a, b)


def _rewrite(src, dst, edit):
    """Copy a case file, letting edit(name, bytes) -> bytes change members (CRCs stay valid)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, edit(item.filename, zin.read(item.filename)))


def _edit_meta(data: bytes, change, fix_checksum: bool) -> bytes:
    meta = json.loads(bytes(np.load(io.BytesIO(data), allow_pickle=False)).decode())
    change(meta)
    if fix_checksum:
        meta["sha256"] = cases.io._digest(meta["cases"])
    buf = io.BytesIO()
    np.save(buf, np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    return buf.getvalue()


@pytest.fixture()
def saved(tmp_path, specials):
    p = tmp_path / "ok.npz"
    cases.save(specials, p)
    return p


def test_truncated_file(saved, tmp_path):
    data = saved.read_bytes()
    bad = tmp_path / "trunc.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CaseFileError, match="trunc.npz"):
        cases.load(bad)


def test_corrupted_byte(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as z:
        info = z.getinfo("c0_a0.npy")
    extra = int.from_bytes(data[info.header_offset + 28: info.header_offset + 30], "little")
    start = info.header_offset + 30 + len(info.filename) + extra
    data[start + info.compress_size // 2] ^= 0xFF        # inside the compressed member
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(CaseFileError, match="corrupt.npz.*unreadable"):
        cases.load(bad)


def test_hand_edited_metadata_fails_checksum(saved, tmp_path):
    bad = tmp_path / "edited.npz"
    _rewrite(saved, bad, lambda n, d: _edit_meta(d, lambda m: m["cases"][1]["kwargs"].update(reduction="sum"), False)
             if n == "__meta__.npy" else d)
    with pytest.raises(CaseFileError, match="edited.npz: metadata checksum mismatch"):
        cases.load(bad)


def test_hand_edited_kwargs_with_fixed_checksum_fails_id(saved, tmp_path):
    bad = tmp_path / "edited2.npz"
    _rewrite(saved, bad, lambda n, d: _edit_meta(d, lambda m: m["cases"][2]["kwargs"].update(label_smoothing=0.2),
                                                 True) if n == "__meta__.npy" else d)
    with pytest.raises(CaseFileError, match="edited2.npz: case 2: id mismatch"):
        cases.load(bad)


def test_hand_edited_array_fails_id(saved, tmp_path):

    def edit(name, data):
        if name != "c1_a1.npy":
            return data
        a = np.load(io.BytesIO(data), allow_pickle=False).copy()
        a[1] = 2.0
        buf = io.BytesIO()
        np.save(buf, a)
        return buf.getvalue()

    bad = tmp_path / "arr.npz"
    _rewrite(saved, bad, edit)
    with pytest.raises(CaseFileError, match="arr.npz: case 1: id mismatch"):
        cases.load(bad)


def test_invalid_or_missing_files(tmp_path):
    with pytest.raises(CaseFileError, match="no such file"):
        cases.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_text("hello")
    with pytest.raises(CaseFileError, match="junk.npz"):
        cases.load(junk)
    obj = tmp_path / "obj.npz"
    np.savez(obj, __meta__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CaseFileError, match="obj.npz"):
        cases.load(obj)
    other = tmp_path / "other.npz"
    np.savez(other, __meta__=np.frombuffer(json.dumps({"schema": "x"}).encode(), np.uint8))
    with pytest.raises(CaseFileError, match="other.npz: not a losscheck.cases/1 file"):
        cases.load(other)


def _with_member(src, dst, name: str, data: bytes):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info))
        zout.writestr(name, data)
    return dst


def test_a_forged_huge_array_is_refused_before_any_allocation(saved, tmp_path):
    """issue 10 §5: a small file whose .npy header declares 10^12 elements (a zip bomb's effect) is
    a one-line CaseFileError naming the budget, raised from the header alone."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    bomb = _with_member(saved, tmp_path / "bomb.npz", "a_bomb.npy", header.getvalue())
    with pytest.raises(CaseFileError, match="exceed the element budget"):
        cases.load(bomb)


def test_the_element_budget_is_configurable(saved, monkeypatch):
    import reference as R
    from reference.budget import BudgetError

    monkeypatch.setenv("LOSSCHECK_MAX_ELEMENTS", "1")
    with pytest.raises(CaseFileError, match="LOSSCHECK_MAX_ELEMENTS"):
        cases.load(saved)
    monkeypatch.setenv("LOSSCHECK_MAX_ELEMENTS", "10")
    with pytest.raises(BudgetError, match=r"softmax: the call's arrays: 12 elements exceed the element budget of 10"):
        R.evaluate("softmax", np.zeros((3, 4)), dim=1)
    monkeypatch.setenv("LOSSCHECK_MAX_ELEMENTS", "lots")
    with pytest.raises(BudgetError, match="expected a positive integer"):
        R.evaluate("softmax", np.zeros((3, 4)), dim=1)
