import torch  # noqa: F401  (torch before openmm, as the package does)
import numpy as np
import openmm
import pytest

import openmm_timewarp  # noqa: F401


@pytest.fixture
def reference_platform():
    return openmm.Platform.getPlatformByName("Reference")


