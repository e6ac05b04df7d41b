"""The checked formats as NumPy dtypes (bfloat16 via ml_dtypes); no torch import here."""
from __future__ import annotations

import ml_dtypes
import numpy as np

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
NUMPY_DTYPES = {"float16": np.dtype(np.float16), "bfloat16": BFLOAT16,
                "float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}


def dtype_name(a: np.ndarray) -> str:
    """'float16' | 'bfloat16' | 'float32' | 'float64' | another NumPy dtype name."""
    return "bfloat16" if np.asarray(a).dtype == BFLOAT16 else np.asarray(a).dtype.name
