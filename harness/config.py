"""``[tool.losscheck]`` in the nearest pyproject.toml.

Precedence: flags > config > ``tolerances.DEFAULTS``.  A project pins its tolerances next to its
code so the gate means the same thing in CI and on a laptop; unknown keys are errors (a typo must
not silently leave the default in force).

Recognised keys::

    [tool.losscheck]
    known_failures = "tests/losscheck-known.toml"   # relative to the pyproject.toml
    jobs = 2                                        # worker processes (int >= 1)
    timeout = 60                                    # per-case seconds (> 0)
    device = "cuda"                                 # torch device of torch-tensor backends (cpu)
    strict_dtype = true                             # an output in another dtype fails (false)
    summation = "recursive"                         # the sums' declared order: pairwise (default)
                                                    # or recursive (docs/verdicts.md)
    [tool.losscheck.tolerances.float16]
    ulp = 2.0                                       # any of ulp, c0, c1, c_abs, c_mag
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from harness.tolerances import DEFAULTS, SUMMATIONS, TOLERANCE_KEYS, Tolerances
from reference.registry import DTYPES

__all__ = ["Config", "ConfigError", "find_pyproject", "load_config", "parse_tolerance_flag"]

_KEYS = ("tolerances", "known_failures", "jobs", "timeout", "device", "strict_dtype", "summation")


class ConfigError(ValueError):
    """Bad configuration; the message is one line naming the key and the file."""


#: run defaults, the one place they are set (CLI, Runner and pytest plugin all read these)
DEFAULT_TIMEOUT = 60.0


def default_jobs() -> int:
    """Worker processes when nothing says otherwise: every core."""
    return os.cpu_count() or 1


@dataclass(frozen=True)
class Config:
    tolerances: Tolerances = DEFAULTS
    known_failures: Path | None = None
    jobs: int | None = None
    timeout: float | None = None
    device: str | None = None
    strict_dtype: bool = False
    path: Path | None = field(default=None, compare=False)  # the pyproject.toml read, if any

    def known_failure_set(self) -> Any:
        """torch's built-in known failures plus the configured file's: what every gate applies
        (CLI, pytest plugin, library), so they agree.  A bad file -> ConfigError."""
        from harness.knownfail import KnownFailures

        try:
            return KnownFailures.combined(self.known_failures)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def run_jobs(self, jobs: int | None = None) -> int:
        """``jobs`` if given, else the configured value, else :func:`default_jobs`."""
        return jobs or self.jobs or default_jobs()

    def run_timeout(self, timeout: float | None = None) -> float:
        """``timeout`` if given, else the configured value, else :data:`DEFAULT_TIMEOUT`."""
        return timeout or self.timeout or DEFAULT_TIMEOUT

    def run_device(self, device: str | None = None) -> str:
        """``device`` if given, else the configured one, else "cpu"."""
        return device or self.device or "cpu"

    def with_flags(self, *, tolerances: Mapping[str, float] | None = None,
                   known_failures: str | Path | None = None, jobs: int | None = None,
                   timeout: float | None = None, device: str | None = None,
                   strict_dtype: bool | None = None, summation: str | None = None) -> Config:
        """Apply command-line flags on top (None = flag not given).  Bad values -> ConfigError."""
        out = self
        if summation is not None:
            if summation not in SUMMATIONS:
                raise ConfigError(f"command line: --summation must be one of {', '.join(SUMMATIONS)}, "
                                  f"got {summation!r}")
            out = replace(out, tolerances=out.tolerances.with_summation(summation))
        if tolerances:
            try:
                out = replace(out, tolerances=out.tolerances.with_overrides(tolerances))
            except ValueError as exc:
                raise ConfigError(f"command line: {exc}") from None
        if known_failures is not None:
            out = replace(out, known_failures=Path(known_failures))
        if jobs is not None:
            out = replace(out, jobs=_jobs(jobs, "--jobs", "command line"))
        if timeout is not None:
            out = replace(out, timeout=_timeout(timeout, "--timeout", "command line"))
        if device is not None:
            out = replace(out, device=_device(device, "--device", "command line"))
        if strict_dtype:  # a flag turns it on; off is the configuration's (or the default)
            out = replace(out, strict_dtype=True)
        return out


def parse_tolerance_flag(text: str) -> tuple[str, float]:
    """``"float16.ulp=2"`` -> ``("float16.ulp", 2.0)`` (for a repeatable ``--tol`` flag)."""
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise ConfigError(f"--tol expects <dtype>.<key>=<number>, got {text!r}") from None


def find_pyproject(start_dir: str | Path = ".") -> Path | None:
    d = Path(start_dir).resolve()
    for p in (d, *d.parents):
        candidate = p / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_config(start_dir: str | Path = ".") -> Config:
    """Config from ``[tool.losscheck]`` of the nearest pyproject.toml (defaults when absent)."""
    path = find_pyproject(start_dir)
    if path is None:
        return Config()
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read TOML: {exc}") from None
    section = doc.get("tool", {}).get("losscheck")
    if section is None:
        return Config(path=path)
    return _parse(section, path)


def _parse(section: Any, path: Path) -> Config:
    where = f"{path}"
    if not isinstance(section, dict):
        raise ConfigError(f"tool.losscheck must be a table ({where})")
    for key in section:
        if key not in _KEYS:
            raise ConfigError(f"unknown key tool.losscheck.{key} ({where}); known: {', '.join(_KEYS)}")
    tolerances = DEFAULTS
    tol = section.get("tolerances", {})
    if not isinstance(tol, dict):
        raise ConfigError(f"tool.losscheck.tolerances must be a table of dtype tables ({where})")
    overrides: dict[str, float] = {}
    for dtype, table in tol.items():
        name = f"tool.losscheck.tolerances.{dtype}"
        if dtype not in DTYPES:
            raise ConfigError(f"unknown dtype in {name} ({where}); known: {', '.join(DTYPES)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{name} must be a table ({where})")
        for key, value in table.items():
            if key not in TOLERANCE_KEYS:
                raise ConfigError(f"unknown key {name}.{key} ({where}); known: {', '.join(TOLERANCE_KEYS)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name}.{key} must be a finite number >= 0, got {value!r} ({where})")
            overrides[f"{dtype}.{key}"] = float(value)
    tolerances = tolerances.with_overrides(overrides)
    summation = section.get("summation", "pairwise")
    if summation not in SUMMATIONS:
        raise ConfigError(f"tool.losscheck.summation must be one of {', '.join(SUMMATIONS)}, got {summation!r} "
                          f"({where})")
    tolerances = tolerances.with_summation(summation)
    known = section.get("known_failures")
    if known is not None:
        if not isinstance(known, str) or not known:
            raise ConfigError(f"tool.losscheck.known_failures must be a path string, got {known!r} ({where})")
        known = (path.parent / known)
    jobs = section.get("jobs")
    if jobs is not None:
        jobs = _jobs(jobs, "tool.losscheck.jobs", where)
    timeout = section.get("timeout")
    if timeout is not None:
        timeout = _timeout(timeout, "tool.losscheck.timeout", where)
    device = section.get("device")
    if device is not None:
        device = _device(device, "tool.losscheck.device", where)
    strict_dtype = section.get("strict_dtype", False)
    if not isinstance(strict_dtype, bool):
        raise ConfigError(f"tool.losscheck.strict_dtype must be true or false, got {strict_dtype!r} ({where})")
    return Config(tolerances=tolerances, known_failures=known, jobs=jobs, timeout=timeout, device=device,
                  strict_dtype=strict_dtype, path=path)


def _jobs(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r} ({where})")
    return value


def _device(value: Any, name: str, where: str) -> str:
    """A device name as ``--device`` takes it; misspelt -> ConfigError naming the key."""
    from harness.backends.device import DeviceError, device_name

    try:
        return device_name(value)
    except DeviceError as exc:
        raise ConfigError(f"{name}: {exc} ({where})") from None


def _timeout(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a number of seconds > 0, got {value!r} ({where})")
    return float(value)
