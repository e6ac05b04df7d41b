"""cases: the Case model, case families, named suites, save/load and hypothesis strategies."""
from .io import CaseFileError, load, save
from .model import Case, case_id, make_case, output_shape
from .suites import SUITES, build_suite, find

__all__ = [
           "SUITES",
           "Case",
           "CaseFileError",
           "build_suite",
           "case_id",
           "find",
           "load",
           "make_case",
           "output_shape",
           "save",
]
