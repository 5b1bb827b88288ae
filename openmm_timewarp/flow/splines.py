"""Monotone rational-quadratic splines (Durkan et al. 2019), on an interval and on the circle.

Pure tensor functions, TorchScript-compatible, used by the internal-coordinate flow family:

- :func:`spline_knots` turns unconstrained network outputs into knots (positions and
  derivatives) of a strictly increasing spline from [left, right] onto [bottom, top];
- :func:`rational_quadratic_spline` evaluates it (or its inverse) with the log-derivative.

Two uses:

- *bounded with identity tails* (bonds, angles after standardisation): the spline acts on
  [-bound, bound] with derivative 1 at both ends and is the identity outside, so the map is a
  C1 bijection of the real line;
- *circular* (torsions): the spline maps [-pi, pi] onto itself with the same derivative at both
  ends, so it is a C1 diffeomorphism of the circle (Rezende et al. 2020).

Every test of this module compares against an independent implementation (zuko).
"""

import math
from typing import Tuple

import torch
import torch.nn.functional as F

DEFAULT_MIN_BIN = 1e-3
DEFAULT_MIN_DERIVATIVE = 1e-3


def spline_knots(widths: torch.Tensor, heights: torch.Tensor, derivatives: torch.Tensor, left: float, right: float,
                 bottom: float, top: float, min_bin: float = DEFAULT_MIN_BIN,
                 min_derivative: float = DEFAULT_MIN_DERIVATIVE) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Knots of a monotone spline from unconstrained parameters.

    Parameters
    ----------
    widths, heights : Tensor [..., K]
        Unconstrained bin widths and heights (softmax-normalised, each bin at least ``min_bin`` of the range).
    derivatives : Tensor [..., K + 1]
        Unconstrained knot derivatives, boundaries included (softplus, at least ``min_derivative``).
    left, right, bottom, top : float
        The spline maps [left, right] onto [bottom, top].

    Returns
    -------
    knots_x, knots_y, knot_derivatives : Tensor [..., K + 1]
    """
    bins = widths.shape[-1]
    w = min_bin + (1.0 - min_bin * bins) * F.softmax(widths, dim=-1)
    h = min_bin + (1.0 - min_bin * bins) * F.softmax(heights, dim=-1)
    knots_x = F.pad(torch.cumsum(w, dim=-1), (1, 0), value=0.0)
    knots_y = F.pad(torch.cumsum(h, dim=-1), (1, 0), value=0.0)
    knots_x = left + (right - left) * knots_x
    knots_y = bottom + (top - bottom) * knots_y
    # exact end points whatever the rounding of the cumulative sums
    knots_x = torch.cat([torch.full_like(knots_x[..., :1], left), knots_x[..., 1:-1],
                         torch.full_like(knots_x[..., :1], right)], dim=-1)
    knots_y = torch.cat([torch.full_like(knots_y[..., :1], bottom), knots_y[..., 1:-1],
                         torch.full_like(knots_y[..., :1], top)], dim=-1)
    d = min_derivative + F.softplus(derivatives)
    return knots_x, knots_y, d


def unit_derivative_parameter(min_derivative: float = DEFAULT_MIN_DERIVATIVE) -> float:
    """The unconstrained derivative parameter that gives a knot derivative of exactly 1."""
    return math.log(math.expm1(1.0 - min_derivative))


def rational_quadratic_spline(inputs: torch.Tensor, knots_x: torch.Tensor, knots_y: torch.Tensor,
                              derivatives: torch.Tensor, inverse: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """Evaluate a monotone rational-quadratic spline (or its inverse) elementwise.

    Inputs must lie within the spline's domain ([knots_x[0], knots_x[-1]], or the image range for
    the inverse); callers handle what lies outside.

    Parameters
    ----------
    inputs : Tensor [...]
    knots_x, knots_y, derivatives : Tensor [..., K + 1]
        From :func:`spline_knots`; leading dimensions match ``inputs``.
    inverse : bool
        Evaluate the inverse map.

    Returns
    -------
    outputs : Tensor [...]
    log_abs_det : Tensor [...]
        log |d outputs / d inputs|.
    """
    bins = knots_x.shape[-1] - 1
    search = knots_y if inverse else knots_x
    index = (inputs.unsqueeze(-1) >= search[..., 1:bins]).sum(dim=-1, keepdim=True)
    x0 = knots_x.gather(-1, index).squeeze(-1)
    x1 = knots_x.gather(-1, index + 1).squeeze(-1)
    y0 = knots_y.gather(-1, index).squeeze(-1)
    y1 = knots_y.gather(-1, index + 1).squeeze(-1)
    d0 = derivatives.gather(-1, index).squeeze(-1)
    d1 = derivatives.gather(-1, index + 1).squeeze(-1)
    width = x1 - x0
    height = y1 - y0
    slope = height / width
    curvature = d0 + d1 - 2.0 * slope
    if inverse:
        dy = inputs - y0
        a = height * (slope - d0) + dy * curvature
        b = height * d0 - dy * curvature
        c = -slope * dy
        discriminant = torch.clamp(b * b - 4.0 * a * c, min=0.0)
        xi = (2.0 * c) / (-b - torch.sqrt(discriminant))
        xi = torch.clamp(xi, 0.0, 1.0)
        outputs = x0 + xi * width
    else:
        xi = torch.clamp((inputs - x0) / width, 0.0, 1.0)
        outputs = y0 + height * (slope * xi * xi + d0 * xi * (1.0 - xi)) / (slope + curvature * xi * (1.0 - xi))
    one_minus = 1.0 - xi
    denominator = slope + curvature * xi * one_minus
    numerator = slope * slope * (d1 * xi * xi + 2.0 * slope * xi * one_minus + d0 * one_minus * one_minus)
    log_derivative = torch.log(numerator) - 2.0 * torch.log(denominator)
    return outputs, (-log_derivative if inverse else log_derivative)


def bounded_spline(inputs: torch.Tensor, widths: torch.Tensor, heights: torch.Tensor, derivatives: torch.Tensor,
                   bound: float, inverse: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """A spline on [-bound, bound] with derivative 1 at both ends, the identity outside.

    Parameters
    ----------
    derivatives : Tensor [..., K - 1]
        Unconstrained derivatives of the interior knots (the boundary ones are 1).

    Returns
    -------
    outputs, log_abs_det : Tensor [...]
    """
    knots_x, knots_y, d = spline_knots(widths, heights, F.pad(derivatives, (1, 1)), -bound, bound, -bound, bound)
    one = torch.ones_like(d[..., :1])
    d = torch.cat([one, d[..., 1:-1], one], dim=-1)
    inside = (inputs > -bound) & (inputs < bound)
    clamped = torch.clamp(inputs, -bound, bound)
    outputs, log_det = rational_quadratic_spline(clamped, knots_x, knots_y, d, inverse)
    return torch.where(inside, outputs, inputs), torch.where(inside, log_det, torch.zeros_like(log_det))


def circular_spline(inputs: torch.Tensor, widths: torch.Tensor, heights: torch.Tensor, derivatives: torch.Tensor,
                    inverse: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """A diffeomorphism of the circle: a spline of [-pi, pi] onto itself, equal derivatives at both ends.

    Parameters
    ----------
    inputs : Tensor [...]
        Angles in [-pi, pi] (radians).
    derivatives : Tensor [..., K]
        Unconstrained derivatives of the knots -pi (= pi) and the K - 1 interior ones.

    Returns
    -------
    outputs, log_abs_det : Tensor [...]
    """
    full = torch.cat([derivatives, derivatives[..., :1]], dim=-1)
    knots_x, knots_y, d = spline_knots(widths, heights, full, -math.pi, math.pi, -math.pi, math.pi)
    return rational_quadratic_spline(torch.clamp(inputs, -math.pi, math.pi), knots_x, knots_y, d, inverse)


def wrap_angle(angle: torch.Tensor) -> torch.Tensor:
    """Angles mapped onto [-pi, pi)."""
    return torch.remainder(angle + math.pi, 2.0 * math.pi) - math.pi
