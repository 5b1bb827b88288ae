"""Peptides of standard residues in internal coordinates, with one network for every sequence.

:mod:`.molecule` reads a molecular graph as a chain of residue templates; :mod:`.coordinates`
gives every internal coordinate a token that means the same in every peptide; :mod:`.network`
is the spline-coupling flow over those tokens; :mod:`.proposal` is the contract-1 file, bound to
one molecule at a time (:func:`.binder.bind_peptides`).
"""
