"""The toy robot: body, head, eyes, chest emblem, antenna, arms and legs, in the unit box.

The layout follows the demo subject of ``samples/robot`` (round teal body, boxy head with two big
eyes, grey antenna with a coloured ball, emblem on the chest, grey arms with orange hands, short grey
legs); the body and head shapes, emblem, antenna and arm pose come from the :class:`Scene`. A turn
slides the face and chest details sideways and squashes them, shows a side face of a boxy head and
puts the far arm behind the body.
"""

from __future__ import annotations

from .palette import GREY, GREY_DARK, OUTLINE, PUPIL, SKIN_ORANGE, WHITE, darker, highlight
from .pen import Pen
from .scene import Scene
from .shapes import emblem_outline
from .vocab import COLOURS, RGB

_SHOULDER_V = 0.56
_HAND_R = 0.034
_LIMB_W = 0.036


def _hand_position(side: int, arms: str, shoulder: tuple[float, float], far: bool) -> tuple[float, float]:
    """Where the hand of the arm on ``side`` (-1 viewer's left, +1 right) goes for the pose ``arms``."""
    su, _ = shoulder
    if arms == "up" or (arms == "wave" and side == 1):
        return (su + side * 0.085, 0.36)
    if arms == "out":
        return (su + side * (0.13 if far else 0.16), 0.52)
    return (su + side * (0.07 if far else 0.095), 0.71)


def _arm(pen: Pen, side: int, scene: Scene, far: bool) -> None:
    shoulder = (0.5 + side * 0.165 + scene.turn * 0.025, _SHOULDER_V)
    hand = _hand_position(side, scene.arms, shoulder, far)
    pen.limb(shoulder, hand, _LIMB_W, GREY)
    pen.circle(hand[0], hand[1], _HAND_R, SKIN_ORANGE)


def _legs(pen: Pen, turn: float) -> None:
    for u in (0.445, 0.555):
        u += turn * 0.015
        pen.rect(u - 0.026, 0.79, u + 0.026, 0.93, GREY, radius=0.012)
        pen.rect(u - 0.054, 0.915, u + 0.054, 0.995, GREY_DARK, radius=0.022)


def _body(pen: Pen, shape: str, colour: RGB, shift: float) -> None:
    if shape == "round":
        pen.ellipse(0.31, 0.43, 0.69, 0.81, colour)
    elif shape == "square":
        pen.rect(0.315, 0.445, 0.685, 0.81, colour, radius=0.05)
    else:  # capsule: a tall pill
        pen.rect(0.34, 0.42, 0.66, 0.82, colour, radius=0.16)
    shine = 0.37 + shift * 0.5
    pen.ellipse(shine, 0.475, shine + 0.1, 0.545, highlight(colour), outline=None)


def _emblem(pen: Pen, scene: Scene, centre_u: float, squash: float) -> None:
    fill = COLOURS[scene.emblem_colour]
    if scene.emblem == "circle":
        r = 0.08
        pen.ellipse(centre_u - r * squash, 0.645 - r, centre_u + r * squash, 0.645 + r, fill)
    else:
        pen.polygon(emblem_outline(scene.emblem, (centre_u, 0.645), 0.1, squash), fill)


def _antenna(pen: Pen, scene: Scene, shift: float) -> None:
    u = 0.5 + shift * 0.6
    pen.limb((u, 0.215), (u, 0.11), 0.014, GREY)
    pen.circle(u, 0.085, 0.042, COLOURS[scene.antenna_tip])
    pen.circle(u - 0.014, 0.072, 0.011, WHITE, outline=None)


def _head(pen: Pen, scene: Scene, colour: RGB, shift: float, far_side: int) -> None:
    turn = abs(scene.turn)
    half = 0.145 * (1.0 - 0.12 * turn)
    left, right = 0.5 - half + shift * 0.3, 0.5 + half + shift * 0.3
    if scene.head == "round":
        pen.ellipse(left - 0.01, 0.19, right + 0.01, 0.425, colour)
        return
    if scene.head == "dome":
        pen.rect(left, 0.185, right, 0.42, colour, radius=half, corners=(True, True, False, False))
        return
    pen.rect(left, 0.2, right, 0.42, colour, radius=0.05)
    if far_side:  # the side face of the box shows on the far side
        edge = left if far_side < 0 else right
        inner = edge - far_side * 0.05 * turn
        pen.rect(min(edge, inner), 0.215, max(edge, inner), 0.405, darker(colour), outline=None, radius=0.015)


def _face(pen: Pen, turn: float, shift: float, squash: float) -> None:
    for offset in (-0.058, 0.058):
        u = 0.5 + offset * squash + shift
        pen.circle(u, 0.295, 0.037, WHITE)
        pupil = u + 0.012 * turn
        pen.circle(pupil, 0.297, 0.017, PUPIL, outline=None)
        pen.circle(pupil - 0.006, 0.29, 0.006, WHITE, outline=None)
    pen.arc(0.45 + shift, 0.325, 0.55 + shift, 0.39, 20, 160, OUTLINE, 0.011)


def draw_robot(pen: Pen, scene: Scene) -> None:
    """Draw the robot of ``scene`` in its main colour."""
    colour = COLOURS[scene.colour]
    turn = scene.turn
    shift = 0.055 * turn
    squash = 1.0 - 0.35 * abs(turn)
    far_side = -1 if turn > 0.05 else (1 if turn < -0.05 else 0)
    for side in (-1, 1):
        if side == far_side:
            _arm(pen, side, scene, far=True)
    _legs(pen, turn)
    _body(pen, scene.body, colour, shift)
    _emblem(pen, scene, 0.5 + shift, squash)
    for side in (-1, 1):
        if side != far_side:
            _arm(pen, side, scene, far=False)
    pen.rect(0.465, 0.405, 0.535, 0.455, GREY_DARK)
    if scene.antenna:
        _antenna(pen, scene, shift)
    _head(pen, scene, colour, shift, far_side)
    _face(pen, turn, shift, squash)
