"""The checked formats as NumPy dtypes (bfloat16 via ml_dtypes); no torch import here.

A view of reference.formats.FORMATS, the one dtype table.
"""
from __future__ import annotations

import numpy as np

from reference.formats import FORMATS

BFLOAT16 = FORMATS["bfloat16"].np_dtype
NUMPY_DTYPES: dict[str, np.dtype] = {name: f.np_dtype for name, f in FORMATS.items()}
