"""Soiling that arrives during a drive: contrast lost over part of the view, against its recent level.

A semi-transparent film on the lens (a splash of muddy water, spray) leaves the scene visible
behind it at a fraction of its contrast. In one frame that is a plain low-contrast scene: every
contrast inside the film and every frame-to-frame change fall by the same factor, so no statistic
of one frame or one second tells it from a dull wall or road (docs/camera-health.md, the limits).
What does tell it is the camera's own recent past: the same part of the view showed twice the
detail a moment ago, and the rest of the view still does.

:class:`ContrastDropWatch` keeps, per neighbourhood of the small copy, the recent level of the
log detail (an exponential average over ``film_reference_s``). When ``film_fraction`` of the view
falls below ``film_drop`` of its level at once (that much of it within ``film_arrival_s``), that
part is held as a film, and its level is no longer learnt. A splash covers its part of the lens
between two frames; a dark plain surface coming into view (a truck's side pulling in beside the
car) spreads over it from an edge, and its sensor noise leaves it enough Weber detail to pass
through the film's band on its way in, so what came gradually is learnt as the view. That
noise is all the detail such a surface has, however fast it comes (a side camera passed by a
truck): none is left at the scale of the cells, where a film still shows the scene's structure,
so a part below ``film_floor`` of its level at either scale is a surface, never a film. It stays held while its detail, measured against the rest of the view's, remains
below ``film_hold`` of what it was before: the scene keeps moving behind a film, so any one
neighbourhood's detail says little, but the film's whole part stays dimmer than the rest by the
film's factor. A film wiped off, or a scene change that only looked like one (a plain wall that
came into view and went), regains its place among the rest and is let go. A part whose detail
falls below ``film_floor`` of its level has lost it all: a plain surface came into view (a white
truck's side at a red light), not a film, which leaves the scene visible behind it.

What it cannot see: soiling present before the first frame, or building up over more than
``film_arrival_s`` (spray thickening over a second, a film of dust over minutes); then the view's
own recent past already holds the film.
"""
from __future__ import annotations

import math
from collections import deque

import cv2
import numpy as np

_EPS = 1e-3  # keeps log() finite on a perfectly flat neighbourhood
#: Frames further apart (a paused or late stream, a slow camera, a node judging every Nth frame)
#: are not compared for a new film: the scene changes too much between them (a held film is held
#: on while its part stays dimmer than the rest, :meth:`ContrastDropWatch._hold_across`).
MAX_FILM_STEP_S = 1.0
_MAX_KEPT = 256  # lost parts kept for the arrival window (a 1 kHz stream keeps 0.25 s)


class ContrastDropWatch:
    """The recent contrast of one camera's view, and the part of the view a film took it from.

    Args:
        drop: a neighbourhood whose detail falls below this share of its recent level has lost
            contrast (``camera_health.film_drop``; 0 turns the watch off)...
        floor: ...but not below this share: a part that lost nearly all its detail is a plain
            surface that came into view, which the one-frame ``blocked`` rule judges
            (``film_floor``).
        fraction: when that share of the view lost contrast at once, the lost part is taken
            for a film and held (``film_fraction``)...
        hold: ...while its detail, relative to the rest of the view's, stays below this share of
            what it was before (``film_hold``): the scene still moves behind the film, so the
            film's part keeps its place among the rest of the view only at a fraction of its
            contrast; wiped off, it regains it.
        reference_s: time constant of the recent level, seconds.
        brightness_change: a change of the view's mean brightness by this factor against its
            recent level starts afresh: detail is a Weber contrast with a noise floor, so a
            tunnel's mouth or an exposure jump moves it over the whole view at once.
        arrival_s: "at once": ``fraction`` of the view must have lost contrast since the frame
            this many seconds before (``film_arrival_s``); a part lost more gradually (a
            surface spreading in from an edge) is learnt as the view.
        window: side, in cells, of the neighbourhood the detail is averaged over.
    """

    def __init__(self, drop: float, floor: float, fraction: float, hold: float,
                 reference_s: float, brightness_change: float, arrival_s: float = 0.2,
                 window: int = 4) -> None:
        self.drop = drop
        self.floor = floor
        self.fraction = fraction
        self.hold = hold
        self.reference_s = reference_s
        self.brightness_change = brightness_change
        self.arrival_s = arrival_s
        self.window = window
        # (stamp, lost part) of the recent frames, oldest first: what was lost before the window
        self._recent: deque[tuple[float, np.ndarray]] = deque(maxlen=_MAX_KEPT)
        self._level: np.ndarray | None = None
        self._structure: np.ndarray | None = None  # the same at the scale of the cells
        self._brightness = 0.0
        self._stamp: float | None = None
        self._film: np.ndarray | None = None  # the part of the view held as a film
        self._film_contrast = 0.0  # its log detail against the rest's, before the film
        #: The time since the frame before, when it was more than :data:`MAX_FILM_STEP_S`: no new
        #: film is looked for then (a held one is held on); None otherwise.
        self.apart_s: float | None = None

    @property
    def film(self) -> float:
        """Share of the view held as a film (0 when none)."""
        return 0.0 if self._film is None else float(np.count_nonzero(self._film) / self._film.size)

    def reset(self) -> None:
        """Forget the recent level and any film (an exposure fault: its detail is not the scene's)."""
        self._level, self._structure, self._stamp, self._film = None, None, None, None
        self._recent.clear()
        self.apart_s = None

    def update(self, brightness_cells: np.ndarray, laplacian_cells: np.ndarray, noise_floor: float,
               stamp: float) -> float | None:
        """Share of the view whose detail fell below ``drop`` of its recent level (or, while a
        film is held, the film's share); None while there is no recent level (a first frame, a
        new image size, a gap in the stream of over a second, stamps going back, a jump in
        brightness) or the watch is off.

        Args:
            brightness_cells: mean grey level of each cell of the small copy (float32).
            laplacian_cells: mean absolute Laplacian of each cell (float32, the same shape).
            noise_floor: added to the brightness before dividing (``camera_health.noise_floor``).
            stamp: the frame's header stamp, seconds.
        """
        if self.drop <= 0:
            return None
        size = (self.window, self.window)
        local = cv2.blur(brightness_cells, size)
        log_detail = np.log(cv2.blur(laplacian_cells, size) / (local + noise_floor) + _EPS)
        # the structure between the cells: a film leaves the scene's, a plain surface has none
        log_structure = np.log(cv2.blur(np.abs(cv2.Laplacian(brightness_cells, cv2.CV_32F, ksize=1)),
                                        size) / (local + noise_floor) + _EPS)
        brightness = float(local.mean()) + 1.0
        step = None if self._stamp is None else stamp - self._stamp
        self.apart_s = step if step is not None and step > MAX_FILM_STEP_S else None
        fresh = self._level is None or self._level.shape != log_detail.shape or step is None \
            or step < 0.0 \
            or abs(math.log(brightness / self._brightness)) > math.log(self.brightness_change)
        if not fresh and self.apart_s is not None and self._film is not None:
            return self._hold_across(log_detail, log_structure, brightness, stamp)
        if fresh or self.apart_s is not None:
            self._level, self._structure, self._brightness, self._stamp, self._film = \
                log_detail, log_structure, brightness, stamp, None
            self._recent.clear()
            return None
        assert step is not None and self._level is not None  # not fresh
        self._stamp = stamp
        recent = 1.0 - math.exp(-step / self.reference_s)
        self._brightness *= (brightness / self._brightness) ** recent
        lost = log_detail < self._level + math.log(self.drop)
        # a part whose detail is all but gone is a plain surface that came into view (a truck's
        # side), not a film, which leaves the scene visible behind it: that part's level is
        # learnt at once, so it never passes through the film's band on its way down
        # (floor 0: nothing counts as gone; log(0) raised on every frame)
        # A dark one's sensor noise can keep its pixel-scale detail inside the film's band, but it
        # has no structure at the scale of the cells, where a film still shows the scene's: a part
        # is gone when either scale fell below the floor (a whole view covered in a second by a
        # truck's side in shade was held as a film)
        floor = math.log(self.floor) if self.floor > 0 else -math.inf
        assert self._structure is not None
        gone = (log_detail < self._level + floor) | (log_structure < self._structure + floor)
        lost &= ~gone
        share = float(np.count_nonzero(lost) / lost.size)
        # a film is a part of the view: with fraction 0, an empty one was held (its contrast a
        # mean of nothing, NaN, and a numpy warning on every frame)
        if self._film is None and share >= self.fraction and share > 0 \
                and self._arrived(lost, share, stamp) >= self.fraction:
            self._film, self._film_contrast = lost, _contrast(self._level, lost)
        elif self._film is not None and self._film_regained(log_detail):
            self._film = None  # wiped off, or no film
        # the recent level follows the view, except where a film is held: a film is never
        # learnt as the view's normal contrast
        follow = np.full(log_detail.shape, recent, np.float32)
        follow[gone] = 1.0
        if self._film is not None:
            follow[self._film] = 0.0
        self._level += follow * (log_detail - self._level)
        self._structure += follow * (log_structure - self._structure)
        self._recent.append((stamp, lost))
        return share if self._film is None else max(share, self.film)

    def _hold_across(self, log_detail: np.ndarray, log_structure: np.ndarray, brightness: float,
                     stamp: float) -> float | None:
        """A frame more than :data:`MAX_FILM_STEP_S` after the last (a slow camera, a node judging
        every Nth frame behind a slow inference) while a film is held: the film is held on as
        long as its part stays dimmer than the rest of this frame (the hold test needs no recent
        past), and the rest of the view is learnt afresh. A new film is not looked for: on the
        evaluation's drive judged 1.2-3 s apart, the scene's own change between two frames held
        films on clean streams (up to 3 frames in a row), none at 1 s or less. A held film was
        forgotten at such a step, and `blocked` cleared while the film stayed on the lens."""
        assert self._film is not None and self._level is not None and self._structure is not None
        self._stamp, self._brightness = stamp, brightness
        self._recent.clear()
        if self._film_regained(log_detail):
            self._level, self._structure, self._film = log_detail, log_structure, None
            return None  # wiped off, or no film
        rest = ~self._film
        self._level[rest] = log_detail[rest]
        self._structure[rest] = log_structure[rest]
        return self.film

    def _film_regained(self, log_detail: np.ndarray) -> bool:
        """Whether the held film's part has regained ``hold`` times the contrast against the rest
        it had when the film came (the film's end, in one frame and across a long step alike)."""
        assert self._film is not None
        return _contrast(log_detail, self._film) - self._film_contrast >= math.log(self.hold)

    def _arrived(self, lost: np.ndarray, share: float, stamp: float) -> float:
        """Share of the view in ``lost`` (``share`` of it) that was not lost in the last frame
        at least ``arrival_s`` before ``stamp`` (all of it when no kept frame is that old, or
        when ``arrival_s`` is 0: every part lost counts as arrived)."""
        if self.arrival_s <= 0:
            return share
        while len(self._recent) >= 2 and self._recent[1][0] <= stamp - self.arrival_s:
            self._recent.popleft()  # the newest frame old enough is the reference
        if not self._recent or self._recent[0][0] > stamp - self.arrival_s:
            return share
        return float(np.count_nonzero(lost & ~self._recent[0][1]) / lost.size)


def _contrast(log_detail: np.ndarray, part: np.ndarray) -> float:
    """Mean log detail of ``part`` of the view against that of the rest (against nothing when
    the part is nearly all of it)."""
    inside = float(log_detail[part].mean())
    rest = ~part
    return inside - float(log_detail[rest].mean()) if np.count_nonzero(rest) >= 0.05 * rest.size \
        else inside
