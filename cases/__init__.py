"""cases: the Case model, case families, named suites, save/load and hypothesis strategies."""
from .io import CaseFileError, load, save
from .model import Case, case_id, make_case, output_shape
from .suites import SUITES, AmbiguousId, build_suite, by_prefix, find, find_prefix, find_unique

__all__ = [
           "SUITES",
           "AmbiguousId",
           "Case",
           "CaseFileError",
           "build_suite",
           "by_prefix",
           "case_id",
           "find",
           "find_prefix",
           "find_unique",
           "load",
           "make_case",
           "output_shape",
           "save",
]
