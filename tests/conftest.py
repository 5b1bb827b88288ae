import torch  # noqa: F401  (torch before openmm, as the package does)
import numpy as np
import openmm
import pytest

import openmm_timewarp  # noqa: F401

# The test molecules are tiny: one torch thread is fastest, and never spins against other work.
torch.set_num_threads(1)


@pytest.fixture
def reference_platform():
    return openmm.Platform.getPlatformByName("Reference")


