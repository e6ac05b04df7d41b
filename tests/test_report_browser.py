"""The HTML report in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven
by selenium) at 1400 and 800 px; nothing may overflow horizontally, in the page or in a box inside it.

Skipped, saying why, where selenium, /usr/bin/chromium or /usr/bin/chromedriver is missing;
`nox -s tests` installs the two Debian packages under CI (noxfile.install_browser, tested below).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import results_factory as rf

import reports

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WIDTHS = (1400, 800)
HEIGHT = 1000
EVIL = "<script>alert('x')</script> & \"quoted\""
LONG_BACKEND = "mypkg.losses_experimental_fused_kernels_v2"


def rich_run() -> list[dict]:
    """Three backends (one with a long module path), failures, warnings, errors, unsupported checks,
    expected failures with long and hostile reasons, long messages, repros and family names, a pass
    whose worst element is 4.49e13 ulp on the stable rung and a pass with an infinite error."""
    lines = rf.synthetic_run(backends=("torch", "numpy", LONG_BACKEND), per_family=3)
    lines[0]["tolerances"]["float32"]["ulp"] = 2.0
    recs = lines[1:]
    reasons = ["torch's logsumexp rounds a confident row's loss to 0 (docs/calibration.md, 'confident-row "
               "cliff'); the exact loss is below half an ulp of 1 " * 3, EVIL]
    cliff = [r for r in recs if r["backend"] == "torch" and r["verdict"] == "warn"
             and r["family"] == "ce.confident_cliff"]
    for i, rec in enumerate(cliff):
        rec.update(verdict="xfail", xfail_reason=reasons[i % 2])
    stable = next(r for r in recs if (r["backend"], r["loss"], r["dtype"], r["check"])
                  == ("torch", "log_softmax", "float32", "grad:input"))
    stable.update(max_ulp=4.49e13)
    stable["worst"].update(ulp=4.49e13, rung="stable")
    odd = next(r for r in recs if (r["backend"], r["loss"], r["dtype"], r["check"])
               == ("numpy", "log_softmax", "float16", "value"))
    odd.update(max_ulp="inf")
    odd["worst"].update(ulp="inf", rung="stable")
    failing = next(r for r in recs if r["backend"] == LONG_BACKEND and r["loss"] == "cross_entropy")
    failing.update(verdict="fail", max_ulp=1.5e9, message="x" * 3000 + " " + EVIL,
                   repro="import torch; " + "y = torch.zeros(1); " * 40, family="ce." + "very_long_family" * 8,
                   options="weight+" * 30)
    failing["worst"]["input"] = "row " + "9" * 400
    erroring = next(r for r in recs if (r["backend"], r["loss"], r["check"]) == ("numpy", "kl_div", "value"))
    erroring.update(status="error", verdict="error", message="Traceback: " + "frame " * 300, max_ulp=None,
                    max_bits=None, ulp_hist=[0, 0, 0, 0, 0], worst=None)
    return lines


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("browser")
    return reports.render(rf.write_results(d / "results.jsonl", rich_run()), d / "out")["index.html"]


def _missing() -> str | None:
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[test]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.is_file():
            return f"{path} is missing: apt-get install {package} (nox -s tests does under CI)"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
    # no sandbox as root; no background networking: this machine's network is closed
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _load(driver, path: Path, width: int, open_all: bool = True) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
    driver.get(path.as_uri())
    if open_all:  # collapsed content is laid out only when open: open every <details>
        driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
    assert driver.execute_script("return window.innerWidth") == width


OVERFLOW_JS = """
const W = document.documentElement.clientWidth, out = [];
for (const el of document.querySelectorAll('body *')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  const name = el.tagName.toLowerCase() + (el.className && typeof el.className === 'string'
               ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  if (r.right > W + 0.5 || r.left < -0.5)
    out.push(`${name} spans ${Math.round(r.left)}..${Math.round(r.right)} px of ${W}`);
  const ox = getComputedStyle(el).overflowX;
  if (ox !== 'visible' && el.scrollWidth > el.clientWidth + 1)
    out.push(`${name} clips or scrolls ${el.scrollWidth - el.clientWidth} px sideways (overflow-x: ${ox})`);
}
return out;
"""


@pytest.mark.parametrize("width", WIDTHS)
def test_nothing_overflows_horizontally(browser, report, width):
    _load(browser, report, width)
    scroll, inner = browser.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]")
    offenders = browser.execute_script(OVERFLOW_JS)
    assert scroll <= inner and not offenders, (
        f"at {width} px: scrollWidth {scroll} > innerWidth {inner}" if scroll > inner else f"at {width} px",
        offenders[:15])


@pytest.mark.parametrize("width", WIDTHS)
def test_collapsed_failure_headers_keep_their_key_number(browser, report, width):
    _load(browser, report, width, open_all=False)
    rows = browser.execute_script("""
      const W = document.documentElement.clientWidth;
      return Array.from(document.querySelectorAll('details.issue > summary, details.xfail > summary')).map(s => {
        const k = s.querySelector('.key'), r = k.getBoundingClientRect(), sr = s.getBoundingClientRect();
        return [k.textContent, r.right <= W && r.left >= 0 && r.width > 0, s.scrollWidth <= s.clientWidth + 1,
                r.top - sr.top < 24];
      });""")
    assert len(rows) >= 8
    for text, visible, unclipped, first_line in rows:
        assert visible and unclipped and first_line, (width, text)
    assert any(t.startswith("max ulp 1.5e+09") for t, *_ in rows)


def test_overview_grid_fits_one_screen_at_1400(browser, report):
    _load(browser, report, 1400, open_all=False)
    box = browser.execute_script("""
      const g = document.querySelector('.grid-blocks').getBoundingClientRect();
      const t = Array.from(document.querySelectorAll('table.grid')).map(e => e.getBoundingClientRect().right);
      return [g.height, Math.max(...t), document.documentElement.clientWidth,
              document.querySelectorAll('table.grid').length];""")
    height, right, width, blocks = box
    assert blocks == 3 and right <= width and height <= HEIGHT, box
    # no inner scroll boxes anywhere (the old overview scrolled inside its own box)
    assert browser.execute_script("""return Array.from(document.querySelectorAll('body *')).filter(e => {
        const s = getComputedStyle(e); return /auto|scroll/.test(s.overflowX) && e.tagName !== 'PRE'; }).length""") == 0


def test_plots_load_and_hostile_text_stays_text(browser, report):
    _load(browser, report, 800)
    sizes = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().right])")
    assert len(sizes) == 5 and all(done and w > 0 and right <= 800 for done, w, right in sizes)
    assert browser.execute_script("return document.querySelectorAll('script').length") == 0
    assert EVIL in browser.execute_script("return document.body.textContent")


# ------------------------------------------------------------------ the nox session that installs Chromium

class FakeSession:
    def __init__(self, fail: bool = False):
        self.calls: list[tuple] = []
        self.warnings: list[str] = []
        self.logs: list[str] = []
        self.fail = fail

    def run_install(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        if self.fail and "install" in args:
            from nox.command import CommandFailed

            raise CommandFailed("Returned code 100")

    def warn(self, msg):
        self.warnings.append(msg)

    def log(self, msg):
        self.logs.append(msg)


@pytest.fixture(scope="module")
def noxfile_module():
    pytest.importorskip("nox", reason="nox is not installed")
    import importlib
    import sys

    root = str(Path(__file__).resolve().parents[1])
    sys.path.insert(0, root)
    try:
        return sys.modules.get("noxfile") or importlib.import_module("noxfile")  # once: nox registers sessions
    finally:
        sys.path.remove(root)


@pytest.fixture
def noxfile(noxfile_module, monkeypatch, tmp_path):
    """The noxfile, seen as on a CI machine as root with apt-get and without chromium."""
    monkeypatch.setattr(noxfile_module, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setattr(noxfile_module.os, "geteuid", lambda: 0)
    monkeypatch.setattr(noxfile_module.shutil, "which", lambda name: "/usr/bin/apt-get" if name == "apt-get" else None)
    monkeypatch.setenv("CI", "true")
    return noxfile_module


def test_nox_installs_chromium_under_ci_as_root(noxfile):
    session = FakeSession()
    assert noxfile.install_browser(session) is True
    assert [c[0] for c in session.calls] == [
        ("apt-get", "update"),
        ("apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver")]
    assert all(c[1]["external"] is True for c in session.calls)


def test_nox_warns_and_goes_on_when_the_install_fails(noxfile):
    session = FakeSession(fail=True)
    assert noxfile.install_browser(session) is False
    assert len(session.warnings) == 1 and "will skip" in session.warnings[0]


@pytest.mark.parametrize("change", ["no CI", "has chromium", "not root", "no apt-get"])
def test_nox_installs_nothing_otherwise(noxfile, monkeypatch, tmp_path, change):
    if change == "no CI":
        monkeypatch.delenv("CI")
    elif change == "has chromium":
        present = tmp_path / "chromium"
        present.write_text("")
        monkeypatch.setattr(noxfile, "CHROMIUM", present)
    elif change == "not root":
        monkeypatch.setattr(noxfile.os, "geteuid", lambda: 1000)
    else:
        monkeypatch.setattr(noxfile.shutil, "which", lambda name: None)
    session = FakeSession()
    assert noxfile.install_browser(session) is False and session.calls == []


def test_the_test_extra_names_selenium():
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    test_extra = next(line for line in text.splitlines() if line.startswith("test = ["))
    assert '"selenium>=' in test_extra


def test_skip_reason_names_what_is_missing(monkeypatch):
    monkeypatch.setitem(globals(), "CHROMIUM", Path("/nonexistent/chromium"))
    if importlib.util.find_spec("selenium") is None:
        assert "selenium is not installed" in _missing()
    else:
        assert _missing() == "/nonexistent/chromium is missing: apt-get install chromium (nox -s tests does under CI)"
