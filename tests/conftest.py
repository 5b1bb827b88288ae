import torch  # noqa: F401  (torch before openmm, as the package does)

import openmm_timewarp  # noqa: F401

# The test molecules are tiny: one torch thread is fastest, and never spins against other work.
torch.set_num_threads(1)
