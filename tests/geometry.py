"""Geometry written independently of the package, to check its torsions against."""

import math

import numpy as np


def dihedral_degrees(p0, p1, p2, p3) -> float:
    """IUPAC dihedral angle of four points, in degrees."""
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1 = b1 / np.linalg.norm(b1)
    v = b0 - np.dot(b0, b1) * b1
    w = b2 - np.dot(b2, b1) * b1
    return math.degrees(math.atan2(np.dot(np.cross(b1, v), w), np.dot(v, w)))
