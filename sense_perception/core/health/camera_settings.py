"""The ``camera_health.*`` parameters: thresholds of the per-frame camera conditions, their
hysteresis, and the stream-timing bounds.

Every threshold is stated on the small copy of a frame (:func:`.camera_conditions.small_copy`,
about 240 pixels wide, grey levels 0..255), so it does not depend on the camera's resolution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ...config import check_settings, did_you_mean, section_from_params, setting
from ...errors import ConfigError
from ..per_camera import PerCamera

#: Conditions judged from the pixels of one frame (the ``health`` command reports these).
IMAGE_CONDITIONS = ("blocked", "low_visibility", "dark", "bright")
#: Conditions judged from consecutive frames and their headers.
STREAM_CONDITIONS = ("frozen", "silent", "late", "rate", "stamp_backwards", "stamp_jump",
                     "frame_id_changed", "size_changed")
CONDITIONS = IMAGE_CONDITIONS + STREAM_CONDITIONS


@dataclass(frozen=True)
class Hysteresis:
    """When a condition is raised and cleared.

    Attributes:
        raise_frames: consecutive frames showing the condition before it is raised.
        clear_frames: consecutive frames without it before it is cleared.
    """

    raise_frames: int = setting(3, range=(1, 1000))
    clear_frames: int = setting(5, range=(1, 1000))

    def __post_init__(self) -> None:
        check_settings(self)  # the ranges and NaN, as the loader refuses them


def _rate(spec: str, where: str) -> float:
    """The rate of one ``camera_health.expected_rates_hz`` entry, ``spec`` its text after
    ``TOPIC:``."""
    try:
        rate = float(spec.removesuffix("Hz").removesuffix("hz").strip())
    except ValueError:
        rate = math.nan
    if not 0.0 <= rate <= 1000.0:  # NaN too
        raise ConfigError(f"{where}: the rate must be a number of Hz within [0, 1000] (0: "
                          f"learnt from the first frames), got {spec!r}")
    return rate


def _hysteresis(raise_frames: int, clear_frames: int) -> Any:
    return field(default_factory=lambda: Hysteresis(raise_frames, clear_frames))


@dataclass(frozen=True)
class CameraHealthSettings:
    """The ``camera_health.*`` parameters.

    Attributes:
        enabled: judge every camera frame and publish its health.
        width: width in pixels of the small grey copy every metric is computed on.
        block_px: side in pixels (of the small copy) of the square neighbourhood every local
            brightness and detail is averaged over.
        noise_floor: grey level added to a block's mean brightness before dividing its detail by
            it (sensor noise and black level: keeps dark blocks from looking sharp or flat by noise);
            at least 1 (0 divided a black block's detail by zero: NaN, never flat, never blocked).
        flat_detail: where the detail (mean absolute Laplacian over mean brightness plus the
            noise floor) is below this, the view has no texture: candidate blockage.
        sharp_detail: where the detail is above this, the view shows sharp structure.
        featureless_detail: where the detail is below this and the view is blue (``sky_blue``),
            it is a clear sky with no texture to lose; low visibility is judged on the rest.
        blocked_fraction: share of the view that must be flat and not brightly lit, while the
            rest of the view shows sharp structure, to judge the lens blocked.
        blocked_max_brightness: flat areas brighter than this are not counted as blockage
            (a lens covered by mud or a hand receives less light than the scene; sky, a lit
            wall or a white truck side are bright).
        blocked_min_mean: a frame whose mean grey is below this is a night (or dim tunnel) view,
            whose unlit parts (a night sky, an unlit field, compressed or denoised flat) look in
            one frame like a covered lens: ``blocked`` is then not judged from the frame alone
            (a film arriving still is); 0 judges every frame.
        sky_blue: flat areas whose blue exceeds their red by this share of the two (a clear or
            dusk sky) are not counted as blockage either; mud, stickers and hands are not blue.
        blocked_min_sharp_fraction: share of the view that must still be sharp for blockage
            (otherwise the whole view lacks detail: low visibility, not a covered part).
        blocked_max_sharp_border: a flat, dark part whose border is a sharp edge over more than
            this share of its length is a plain surface in the scene (a truck's side in shade),
            not dirt on the lens, which is out of focus; 1 turns this test off.
        lit_surface_ratio: a flat part that is not blue and at least this many times as bright
            as the view's sharp part is a lit surface of the scene (a snow field, an overcast
            sky, a white wall): dirt on the lens receives no light of its own and is no
            brighter than the scene behind it. Such a part is neither blockage nor texture
            lost... (0 turns this off; otherwise at least 1, since a part darker than the
            sharp part is what a covered lens looks like)
        lit_surface_bright_ratio: ...and at least this share of the brightness the brightest 5 %
            of the sharp part reach: a lit surface of the scene (snow) is among the brightest
            things in view, while a translucent film, a plastic bag or a white sticker on the
            lens passes on only a part of the scene's light, which can still be well above the
            mean of a sharp part that is mostly road and cars (0 leaves the mean alone)...
        lit_surface_rest_sharp: ...while the rest of the view is sharp over at least this share
            (a clear view's is about 0.8): fog veils the whole view, while snow or an overcast
            sky leaves the scene beside it sharp.
        low_visibility_sharp_fraction: the view has low visibility when less than this share of
            its textured part (not featureless) is sharp...
        low_visibility_min_structure: ...and it still shows coarse structure (mean absolute
            Laplacian of the means of cells two neighbourhoods wide, grey levels, above this): a
            uniform sky or wall is no evidence of fog. A view is also of low visibility when...
        low_visibility_fine_ratio: ...its finest structure is weaker than this share of the
            structure one octave coarser (defocus and water remove the finest scale first).
        dark_highlight: a frame whose brightest 0.01 % is darker than this grey level is dark (a
            night scene with a street light, headlights or a lit sign reaches it)...
        dark_mean: ...and whose mean is below this grey level.
        bright_clipped_fraction: share of clipped pixels (grey >= 250) that makes a frame bright.
        frozen_change: a frame whose largest block change against the previous frame is below
            this many grey levels (mean absolute difference over a block) repeats it.
        film_drop: soiling that arrives during a drive (a semi-transparent film): a part of the
            view whose detail falls below this share of its recent level has lost contrast
            (0 turns this watch off; it needs consecutive frames, so ``health IMAGE`` lacks it)...
        film_floor: ...but not below this share, at the scale of the pixels or at that of the
            cells: detail all but gone is a plain surface that came into view (a truck's side;
            in shade its sensor noise keeps some pixel-scale detail, but no structure between
            the cells), which a film, leaving the scene visible, is not.
        film_fraction: the lens is judged ``blocked`` when at least this share of the view lost
            contrast at once; that part is held as a film...
        film_hold: ...while its detail, against the rest of the view's, stays below this share
            of what it was before the film (wiped off, it regains it).
        film_reference_s: time constant, seconds, of the recent level of each part's detail.
        film_arrival_s: "at once": ``film_fraction`` of the view must have lost its contrast
            within this many seconds; a part lost more gradually (a plain surface spreading in
            from an edge, such as a truck's side pulling in) is learnt as the view (0: any
            part lost counts, however gradually).
        film_brightness_change: a change of the view's mean brightness by this factor against its
            recent level (a tunnel's mouth, an exposure jump) starts the recent level afresh.
        blocked: hysteresis of ``blocked``.
        low_visibility: hysteresis of ``low_visibility``.
        dark: hysteresis of ``dark``.
        bright: hysteresis of ``bright``.
        frozen: hysteresis of ``frozen``.
        expected_rate_hz: the camera's frame rate; 0 learns it from the first frames. The value
            for every camera ``expected_rates_hz`` does not list.
        expected_rates_hz: per camera topic, its frame rate, ``"TOPIC: HZ"`` (0 learns it):
            object_detector takes several cameras, and a 30 Hz front camera beside 10 Hz side
            cameras was judged against one period (``rate`` WARN on the others, or a late camera
            missed). A topic names its camera in every image_transport; a node refuses a topic
            that is none of its cameras, the replay notes it.
        silent_periods: no frame for this many expected periods is ``silent`` (and a gap this
            long between two frames is ``late``).
        rate_tolerance: the measured rate may differ from the expected one by this share before
            ``rate`` is raised.
        stamp_jump_periods: a header stamp that advances by more than this many periods jumps.
        stream: hysteresis of the stream conditions (late, rate, stamps, frame_id, size).
    """

    enabled: bool = setting(True)
    width: int = setting(240, range=(64, 1024))
    block_px: int = setting(8, range=(4, 64))
    noise_floor: float = setting(8.0, range=(1.0, 255.0))
    flat_detail: float = setting(0.03, range=(0.0, 1.0), constraint="featureless_detail <= flat_detail < sharp_detail")
    sharp_detail: float = setting(0.05, range=(0.0, 1.0), constraint="featureless_detail <= flat_detail < sharp_detail")
    featureless_detail: float = setting(0.012, range=(0.0, 1.0), constraint="featureless_detail <= flat_detail < sharp_detail")
    blocked_fraction: float = setting(0.14, range=(0.0, 1.0))
    blocked_max_brightness: float = setting(150.0, range=(0.0, 255.0))
    blocked_min_mean: float = setting(35.0, range=(0.0, 255.0))
    sky_blue: float = setting(0.05, range=(0.0, 1.0))
    blocked_min_sharp_fraction: float = setting(0.15, range=(0.0, 1.0))
    blocked_max_sharp_border: float = setting(0.6, range=(0.0, 1.0))
    lit_surface_ratio: float = setting(1.15, range=(0.0, 100.0), constraint="0 (off) or at least 1")
    lit_surface_bright_ratio: float = setting(0.75, range=(0.0, 10.0))
    lit_surface_rest_sharp: float = setting(0.55, range=(0.0, 1.0))
    low_visibility_sharp_fraction: float = setting(0.4, range=(0.0, 1.0))
    low_visibility_min_structure: float = setting(5.5, range=(0.0, 255.0))
    low_visibility_fine_ratio: float = setting(0.47, range=(0.0, 10.0))
    dark_highlight: float = setting(100.0, range=(0.0, 255.0))
    dark_mean: float = setting(50.0, range=(0.0, 255.0))
    bright_clipped_fraction: float = setting(0.12, range=(0.0, 1.0))
    frozen_change: float = setting(0.25, range=(0.0, 255.0))
    film_drop: float = setting(0.55, range=(0.0, 0.99), constraint="0 (off) or above film_floor; at most film_hold")
    film_floor: float = setting(0.12, range=(0.0, 0.99), constraint="below film_drop (unless film_drop is 0)")
    film_fraction: float = setting(0.12, range=(0.0, 1.0))
    film_hold: float = setting(0.7, range=(0.01, 1.0), constraint="at least film_drop")
    film_reference_s: float = setting(1.0, range=(0.05, 60.0))
    film_arrival_s: float = setting(0.2, range=(0.0, 10.0))
    film_brightness_change: float = setting(1.5, range=(1.01, 100.0))
    blocked: Hysteresis = _hysteresis(5, 10)
    low_visibility: Hysteresis = _hysteresis(5, 10)
    dark: Hysteresis = _hysteresis(3, 5)
    bright: Hysteresis = _hysteresis(3, 5)
    frozen: Hysteresis = _hysteresis(5, 2)
    expected_rate_hz: float = setting(0.0, range=(0.0, 1000.0))
    expected_rates_hz: list[str] = setting(
        [], range="\"TOPIC: HZ\", HZ within [0, 1000] (0: learnt from the first frames)")
    silent_periods: float = setting(10.0, range=(1.0, 1000.0))
    rate_tolerance: float = setting(0.5, range=(0.0, 10.0))
    stamp_jump_periods: float = setting(10.0, range=(1.0, 1000.0))
    stream: Hysteresis = _hysteresis(1, 10)

    def __post_init__(self) -> None:
        check_settings(self)  # the ranges and NaN first (NaN passes the comparisons below)
        if not self.featureless_detail <= self.flat_detail < self.sharp_detail:
            raise ValueError(f"camera_health.featureless_detail ({self.featureless_detail}) <= "
                             f"flat_detail ({self.flat_detail}) < sharp_detail "
                             f"({self.sharp_detail}) must hold")
        if self.sharp_detail <= self.flat_detail:
            raise ValueError(f"camera_health.sharp_detail ({self.sharp_detail}) must be above "
                             f"camera_health.flat_detail ({self.flat_detail})")
        if self.film_drop and self.film_floor >= self.film_drop:
            raise ValueError(f"camera_health.film_floor ({self.film_floor}) must be below "
                             f"camera_health.film_drop ({self.film_drop})")
        if self.film_hold < self.film_drop:
            raise ValueError(f"camera_health.film_hold ({self.film_hold}) must be at least "
                             f"camera_health.film_drop ({self.film_drop}): a film is held "
                             "while its part stays dimmer than when it was found")
        if 0.0 < self.lit_surface_ratio < 1.0:
            # below 1 a flat part darker than the view's sharp part, which is what mud, a
            # sticker or a hand on the lens looks like, was taken for a lit surface of the
            # scene: at 0.5 opaque soiling was blocked on 15 % of street frames, not 65 % (R68)
            raise ValueError(f"camera_health.lit_surface_ratio ({self.lit_surface_ratio}) must be "
                             "0 (off) or at least 1: it is how many times brighter than the "
                             "view's sharp part a flat part must be to be a lit surface of the "
                             "scene; below 1 a covered, darker part would be taken for one and "
                             "never judged blocked")
        self.camera_rates()  # refuses a malformed entry, naming it
        if self.block_px * 2 > self.width:
            raise ValueError(f"camera_health.block_px ({self.block_px}) must be at most half of "
                             f"camera_health.width ({self.width})")

    def camera_rates(self) -> PerCamera[float]:
        """``expected_rates_hz`` by camera (:class:`~..per_camera.PerCamera`).

        Raises:
            ConfigError: an entry that is no ``"TOPIC: HZ"``, a rate outside [0, 1000], or two
                different rates for one camera, naming the entry.
        """
        rates = PerCamera("camera_health.expected_rates_hz", self.expected_rates_hz,
                          '"TOPIC: HZ" (the camera\'s frame rate, 0 to learn it)', _rate)
        for topic in rates.topics:
            # each rate once: a rate repeated beside another was counted and listed twice
            distinct = list(dict.fromkeys(rates.get(topic)))
            if len(distinct) > 1:
                raise ConfigError(f"camera_health.expected_rates_hz gives camera {topic} "
                                  f"{len(distinct)} different rates "
                                  f"({', '.join(f'{r:g}' for r in distinct)}); fix: "
                                  "give each camera one (its raw and compressed topics are one "
                                  "camera)")
        return rates

    def for_camera(self, topic: str) -> CameraHealthSettings:
        """These settings as camera ``topic`` is judged: its ``expected_rates_hz`` entry as its
        ``expected_rate_hz`` (this one's for a camera not listed)."""
        rates = self.camera_rates().get(topic)
        if not rates or rates[0] == self.expected_rate_hz:
            return self
        return replace(self, expected_rate_hz=rates[0])

    def hysteresis(self, condition: str) -> Hysteresis:
        """The hysteresis of ``condition`` (stream conditions share ``stream``)."""
        value = getattr(self, condition, None)
        return value if isinstance(value, Hysteresis) else self.stream

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "config") -> CameraHealthSettings:
        """Read the ``camera_health.*`` keys of flattened node parameters (unknown keys are errors).

        Raises:
            ConfigError: a key is unknown, or a value has the wrong type or range.
        """
        defaults = cls()
        groups: dict[str, Hysteresis] = {f.name: getattr(defaults, f.name) for f in fields(cls)
                                         if f.type in ("Hysteresis", Hysteresis)}
        for key in params:
            head = key[len("camera_health."):].split(".", 1)[0]
            if key.startswith("camera_health.") and key.count(".") > 1 and head not in groups:
                raise ConfigError(f"unknown parameter '{key}' in {source}; "
                                  f"{did_you_mean(head, groups, 'camera_health.')}groups: "
                                  f"{', '.join('camera_health.' + g + '.*' for g in groups)}")
        nested = {name: replace(default, **{
            k: v for k, v in vars(section_from_params(Hysteresis, params, f"camera_health.{name}.",
                                                      source)).items()
            if f"camera_health.{name}.{k}" in params}) for name, default in groups.items()}
        base = section_from_params(cls, params, "camera_health.", source)
        return replace(base, **nested)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CabinCameraHealthSettings(CameraHealthSettings):
    """driver_monitor's ``camera_health.*``: the same, with the film watch off by default.

    A cabin camera's view stands still and people fill much of it: a driver leaving the seat
    takes a large part of the view's detail away at once, which the film watch would hold as a
    film and report as a camera fault instead of an empty seat (``no_face``). Set
    ``camera_health.film_drop`` to turn it on for a cabin camera.
    """

    film_drop: float = setting(0.0, range=(0.0, 0.99), constraint="0 (off) or above film_floor; at most film_hold")


def health_settings_type(kind: str) -> type[CameraHealthSettings]:
    """The ``camera_health.*`` parameters of node ``kind`` (``object_detector`` or
    ``driver_monitor``)."""
    return CabinCameraHealthSettings if kind == "driver_monitor" else CameraHealthSettings
