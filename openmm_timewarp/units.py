"""Units at the package's API boundary, in one place.

OpenMM's convention: a bare number is in OpenMM's default unit of its dimension (nm, ps, kJ/mol,
K, amu; degrees for the torsion angles users give); a ``Quantity`` is converted. Every public
function that takes a physical value goes through :func:`in_unit` or :func:`as_quantity`, so the
same mistake (a length where a time belongs) gets the same error everywhere.
"""

from . import _stack  # noqa: F401  (torch before openmm; repairs the openmm-torch plugin)
from typing import Optional

from openmm import unit

GAS_CONSTANT = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin)


def in_unit(value, target: unit.Unit, name: str) -> float:
    """``value`` as a number in ``target`` units; a bare number is taken to be in ``target`` already.

    Raises
    ------
    TypeError
        A Quantity whose unit is not compatible with ``target``.
    """
    if unit.is_quantity(value):
        if not value.unit.is_compatible(target):
            raise TypeError(f"{name} must be in units compatible with {target}, got {value.unit}.")
        return float(value.value_in_unit(target))
    return float(value)


def as_quantity(value, target: unit.Unit, name: str) -> unit.Quantity:
    """``value`` as a Quantity in ``target`` units (see :func:`in_unit`)."""
    return in_unit(value, target, name) * target


def optional_quantity(value, target: unit.Unit, name: str) -> Optional[unit.Quantity]:
    """:func:`as_quantity`, passing None through."""
    return None if value is None else as_quantity(value, target, name)


def kT(temperature) -> float:
    """Thermal energy in kJ/mol at a temperature (kelvin, or a Quantity)."""
    return GAS_CONSTANT * in_unit(temperature, unit.kelvin, "temperature")
