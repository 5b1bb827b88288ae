"""Flow models (torch only; nothing here imports OpenMM).

- :mod:`.cartesian`: the paper's transferable kernel-attention flow over Cartesian displacements;
- :mod:`.internal`: one molecule in internal coordinates (Z-matrix, spline couplings), as a
  state-independent proposal, a conditional one at a lag, or a mixture;
- :mod:`.splines`: the rational-quadratic spline transforms the internal family uses.

How flows are made from MD runs, trained and exported: :mod:`openmm_timewarp.lab.training`.
"""
