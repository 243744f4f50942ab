"""Draw the sample subject images: one small toy robot, in several poses, scenes and sizes.

The robot has a round teal body, a boxy teal head with two big eyes, a grey antenna topped with an
orange ball, a yellow star on its chest, grey arms with orange hands and short grey legs. Everything
is drawn with PIL and no randomness, so running ``python samples/draw_samples.py`` always writes the
same PNGs into ``samples/robot/``, and beside them, in ``samples/robot_masks/``, each photo's loss mask
(the robot's own coverage: white on the robot, black on the background and its shadow) for the trainer's
``--instance_mask_dir``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

OUT_DIR = Path(__file__).resolve().parent / "robot"
MASK_DIR = Path(__file__).resolve().parent / "robot_masks"
CANVAS = 800  # the robot is drawn on an 800x800 transparent canvas, then scaled down (anti-aliasing)
LINE = 16
"""Outline width on the canvas: 2% of the robot's box, the stroke of the world's pen
(``dash_diffusion.models.world.pen.STROKE``), so that the photos share the line style builtin:mini-sdxl's VAE
learned. Drawn with 5 to 8 px lines and the star edged in dark yellow, the photos' star went through that VAE
as a yellow blob that decoded like a round emblem."""

TEAL = (43, 181, 176)
TEAL_LIGHT = (120, 214, 207)
TEAL_DARK = (20, 110, 112)
OUTLINE = (28, 52, 60)
GREY = (150, 160, 168)
GREY_DARK = (88, 96, 104)
ORANGE = (245, 140, 40)
ORANGE_LIGHT = (255, 200, 140)
YELLOW = (255, 212, 60)
WHITE = (250, 250, 248)
PUPIL = (25, 30, 40)


@dataclass(frozen=True)
class Pose:
    """How the robot stands: ``turn`` in [-1, 1] (viewer's left .. right), ``tilt`` in degrees."""

    turn: float = 0.0
    tilt: float = 0.0
    wave: bool = False


@dataclass(frozen=True)
class Shot:
    """One sample image: file name, size, background, pose, robot height and its centre (fractions)."""

    name: str
    size: tuple[int, int]
    background: str
    pose: Pose
    height: float
    centre: tuple[float, float]


def _star(cx: float, cy: float, outer: float, inner: float, squash: float) -> list[tuple[float, float]]:
    points = []
    for index in range(10):
        radius = outer if index % 2 == 0 else inner
        angle = -math.pi / 2 + index * math.pi / 5
        points.append((cx + radius * math.cos(angle) * squash, cy + radius * math.sin(angle)))
    return points


def _limb(draw: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float], width: int) -> None:
    draw.line([start, end], fill=OUTLINE, width=width + LINE)
    draw.line([start, end], fill=GREY, width=width)
    for x, y in (start, end):
        draw.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=GREY)


def _arm(draw: ImageDraw.ImageDraw, side: int, pose: Pose, far: bool) -> None:
    """Draw one arm; ``side`` is -1 for the viewer's left, +1 for the right."""
    shoulder = (400 + side * 135 + pose.turn * 20, 470)
    if pose.wave and side == 1:
        hand = (shoulder[0] + 80, 330)
    else:
        reach = 55 if far else 75
        hand = (shoulder[0] + side * reach, 575)
    _limb(draw, shoulder, hand, 30)
    hx, hy = hand
    draw.ellipse([hx - 27, hy - 27, hx + 27, hy + 27], fill=ORANGE, outline=OUTLINE, width=LINE)


def draw_robot(pose: Pose) -> Image.Image:
    """The robot on a transparent square canvas, feet near the bottom edge."""
    image = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    turn = max(-1.0, min(1.0, pose.turn))
    shift = 45 * turn  # face and chest features slide towards where the robot looks
    squash = 1.0 - 0.35 * abs(turn)
    far_side = -1 if turn > 0.05 else (1 if turn < -0.05 else 0)

    for side in (-1, 1):  # the arm on the far side goes behind the body
        if side == far_side:
            _arm(draw, side, pose, far=True)

    for x in (355, 445):  # legs and feet
        x += turn * 12
        draw.rounded_rectangle([x - 20, 610, x + 20, 715], radius=10, fill=GREY, outline=OUTLINE, width=LINE)
        draw.rounded_rectangle([x - 42, 700, x + 42, 745], radius=18, fill=GREY_DARK, outline=OUTLINE, width=LINE)

    draw.ellipse([250, 350, 550, 650], fill=TEAL, outline=OUTLINE, width=LINE)  # round body
    draw.ellipse([300 + shift * 0.5, 385, 390 + shift * 0.5, 450], fill=TEAL_LIGHT)  # shine
    draw.polygon(_star(400 + shift, 510, 80, 36, squash), fill=YELLOW, outline=OUTLINE, width=LINE)

    for side in (-1, 1):
        if side != far_side:
            _arm(draw, side, pose, far=False)

    draw.rectangle([372, 322, 428, 362], fill=GREY_DARK, outline=OUTLINE, width=LINE)  # neck
    stick_x = 400 + shift * 0.6
    draw.line([(stick_x, 175), (stick_x, 95)], fill=OUTLINE, width=9 + LINE)
    draw.line([(stick_x, 175), (stick_x, 95)], fill=GREY, width=9)
    draw.ellipse([stick_x - 34, 40, stick_x + 34, 108], fill=ORANGE, outline=OUTLINE, width=LINE)
    draw.ellipse([stick_x - 18, 52, stick_x - 2, 68], fill=ORANGE_LIGHT)

    half = 115 * (1.0 - 0.12 * abs(turn))
    left, right = 400 - half + shift * 0.3, 400 + half + shift * 0.3
    draw.rounded_rectangle([left, 160, right, 335], radius=42, fill=TEAL, outline=OUTLINE, width=LINE)
    if far_side:  # a darker side face shows on the far side of the boxy head
        edge = left if far_side < 0 else right
        inner = edge - far_side * 38 * abs(turn)
        box = [min(edge, inner), 172, max(edge, inner), 323]
        draw.rounded_rectangle(box, radius=14, fill=TEAL_DARK)

    for ex in (355, 445):
        ex = 400 + (ex - 400) * squash + shift
        draw.ellipse([ex - 30, 215, ex + 30, 275], fill=WHITE, outline=OUTLINE, width=LINE)
        px = ex + 10 * turn
        draw.ellipse([px - 13, 232, px + 13, 258], fill=PUPIL)
        draw.ellipse([px - 8, 236, px - 1, 243], fill=WHITE)
    draw.arc([360 + shift, 262, 440 + shift, 312], start=20, end=160, fill=OUTLINE, width=9)

    if pose.tilt:
        image = image.rotate(pose.tilt, resample=Image.BICUBIC, center=(400, 745))
    return image


def _gradient(size: tuple[int, int], top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    width, height = size
    column = Image.new("RGB", (1, height))
    for y in range(height):
        t = y / max(1, height - 1)
        column.putpixel((0, y), tuple(round(a + (b - a) * t) for a, b in zip(top, bottom)))
    return column.resize(size, Image.NEAREST)


def _room(size: tuple[int, int], wall: tuple[int, int, int], floor: tuple[int, int, int]) -> Image.Image:
    width, height = size
    image = Image.new("RGB", size, wall)
    draw = ImageDraw.Draw(image)
    horizon = int(height * 0.62)
    draw.rectangle([0, horizon, width, height], fill=floor)
    board = tuple(max(0, c - 22) for c in floor)
    for x in range(-height, width + height, max(24, width // 9)):  # floorboards in perspective
        draw.line([(width / 2 + (x - width / 2) * 0.35, horizon), (x, height)], fill=board, width=2)
    skirting = tuple(min(255, c + 25) for c in wall)
    draw.rectangle([0, horizon - max(4, height // 40), width, horizon], fill=skirting)
    return image


BACKGROUNDS = {
    "cream": lambda size: Image.new("RGB", size, (246, 240, 226)),
    "lavender": lambda size: Image.new("RGB", size, (214, 206, 238)),
    "sky": lambda size: _gradient(size, (120, 180, 235), (236, 244, 250)),
    "sunset": lambda size: _gradient(size, (250, 170, 160), (255, 226, 170)),
    "room": lambda size: _room(size, (232, 218, 190), (170, 120, 80)),
    "green_room": lambda size: _room(size, (186, 214, 176), (140, 140, 150)),
}

SHOTS = (
    Shot("robot_01_front.png", (256, 256), "cream", Pose(), 0.78, (0.5, 0.52)),
    Shot("robot_02_turned.png", (320, 320), "sky", Pose(turn=0.7), 0.6, (0.56, 0.55)),
    Shot("robot_03_room.png", (384, 256), "room", Pose(turn=-0.6), 0.62, (0.33, 0.52)),
    Shot("robot_04_tilted.png", (256, 384), "lavender", Pose(tilt=12), 0.7, (0.5, 0.5)),
    Shot("robot_05_wave.png", (256, 256), "sunset", Pose(turn=0.3, wave=True), 0.95, (0.46, 0.54)),
    Shot("robot_06_corner.png", (320, 320), "green_room", Pose(turn=-0.9, tilt=-8), 0.45, (0.62, 0.6)),
)


def _shadow(size: tuple[int, int], centre: tuple[float, float], width: float) -> Image.Image:
    mask = Image.new("L", size, 0)
    cx, cy = centre
    ImageDraw.Draw(mask).ellipse([cx - width / 2, cy - width / 9, cx + width / 2, cy + width / 9], fill=90)
    return mask.filter(ImageFilter.GaussianBlur(max(1, width / 25)))


def render_with_mask(shot: Shot) -> tuple[Image.Image, Image.Image]:
    """Compose one sample image; also return its mask (the robot's alpha where it was pasted, greyscale)."""
    image = BACKGROUNDS[shot.background](shot.size)
    width, height = shot.size
    side = max(8, round(shot.height * height))
    robot = draw_robot(shot.pose).resize((side, side), Image.LANCZOS)
    left = round(shot.centre[0] * width - side / 2)
    top = round(shot.centre[1] * height - side / 2)
    feet = (left + side / 2, top + side * 0.93)
    image.paste((40, 30, 30), (0, 0), _shadow(shot.size, feet, side * 0.5))
    image.paste(robot, (left, top), robot)
    mask = Image.new("L", shot.size, 0)
    mask.paste(robot.getchannel("A"), (left, top))
    return image, mask


def render(shot: Shot) -> Image.Image:
    """Compose one sample image."""
    return render_with_mask(shot)[0]


def main() -> None:
    """Write every sample PNG into ``samples/robot/`` and its mask into ``samples/robot_masks/``."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    MASK_DIR.mkdir(parents=True, exist_ok=True)
    for shot in SHOTS:
        image, mask = render_with_mask(shot)
        for folder, picture in ((OUT_DIR, image), (MASK_DIR, mask)):
            picture.save(folder / shot.name, optimize=True)
            print(folder / shot.name)


if __name__ == "__main__":
    main()
