"""ByteTrack-style IoU tracker with stationary detection (pure: time is passed in, no I/O).

Each analysed frame, tracks are matched to detections of the same label in two passes: first the
high-score detections (IoU >= match_iou), then the leftover tracks against the low-score ones
(IoU >= low_match_iou), which keeps a track alive through a partly occluded, low-confidence stretch.
Unmatched high-score detections start tentative tracks; a track is reported once it has `min_hits`
detections and a median score >= `confirm_score` (Frigate's median-of-3 rule). A track that goes
undetected keeps its predicted position for `max_disappeared` frames (more while stationary), then
it is deleted: nothing keyed by track id outlives its object.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from statistics import median

import numpy as np

from detectors.core import Detections, FloatArray
from detectors.yolo_ops import iou_matrix
from edge.config_camera import TrackingConfig

Box = tuple[float, float, float, float]
SCORE_HISTORY = 10


@dataclass(slots=True)
class Track:
    """Mutable tracker state of one object (internal to the tracker and the camera pipeline)."""

    track_id: int
    label: str
    box: Box
    score: float
    first_seen: float
    last_seen: float
    hits: int = 1
    missed: int = 0
    missed_since: float | None = None  # first analysed frame of the current undetected stretch
    confirmed: bool = False
    velocity: tuple[float, float] = (0.0, 0.0)  # box centre, fraction of frame per second
    anchor: Box = (0.0, 0.0, 0.0, 0.0)  # where it was when it last moved
    anchor_since: float = 0.0
    stationary_since: float | None = None
    scores: deque[float] = field(default_factory=lambda: deque(maxlen=SCORE_HISTORY))

    @property
    def median_score(self) -> float:
        """Median of the recent detection scores."""
        return float(median(self.scores)) if self.scores else self.score


def box_iou(a: Box, b: Box) -> float:
    """IoU of two normalised boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _greedy_match(iou: FloatArray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, col) by descending IoU, each row and column used once, IoU >= threshold."""
    pairs: list[tuple[int, int]] = []
    if iou.size == 0:
        return pairs
    rows, cols = np.nonzero(iou >= threshold)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_rows: set[int] = set()
    used_cols: set[int] = set()
    for k in order.tolist():
        r, c = int(rows[k]), int(cols[k])
        if r not in used_rows and c not in used_cols:
            pairs.append((r, c))
            used_rows.add(r)
            used_cols.add(c)
    return pairs


class Tracker:
    """Multi-object tracker for one camera; `update` per analysed frame, `hold` when detection was skipped."""

    def __init__(self, settings: TrackingConfig | None = None, frame_interval_s: float = 0.2) -> None:
        self.settings = settings or TrackingConfig()
        self.frame_interval_s = frame_interval_s  # 1 / detect fps: turns frame limits into time limits
        self._tracks: dict[int, Track] = {}
        self._next_id = 1
        self._last_ts: float | None = None

    def state_size(self) -> int:
        """Tracks held (tentative and confirmed)."""
        return len(self._tracks)

    def tracks(self) -> list[Track]:
        """Confirmed tracks, oldest first."""
        return [t for t in self._tracks.values() if t.confirmed]

    def tentative(self) -> list[Track]:
        """Tracks not yet confirmed: the detector must look again for them to confirm (or be dropped)."""
        return [t for t in self._tracks.values() if not t.confirmed]

    def hold(self, now: float) -> list[Track]:
        """No detection ran (no motion): the scene is unchanged since the last detection.

        Tracks seen then are still there and age nothing; tracks missing then are still missing and
        keep ageing by time, so an object that vanished is dropped even if nothing moves afterwards.
        """
        for track in list(self._tracks.values()):
            if track.missed and now - (track.missed_since or now) > self._limit(track) * self.frame_interval_s:
                del self._tracks[track.track_id]
                continue
            self._update_stationary(track, now)
        self._last_ts = now
        return self.tracks()

    def update(self, detections: Detections, now: float, region: Box | None = None) -> list[Track]:
        """Advance by one analysed frame; `region` limits where detection looked (None: whole frame)."""
        dt = 0.0 if self._last_ts is None else max(0.0, now - self._last_ts)
        self._last_ts = now
        predicted = {tid: _predict(t, dt) for tid, t in self._tracks.items()}
        labels = detections.labels()
        high = detections.scores >= self.settings.high_score
        unmatched = set(self._tracks)
        claimed: set[int] = set()
        for mask, threshold in ((high, self.settings.match_iou), (~high, self.settings.low_match_iou)):
            pass_idx = [int(i) for i in np.flatnonzero(mask).tolist()]
            unmatched -= self._associate(
                detections,
                labels,
                pass_idx,
                candidates=unmatched,
                predicted=predicted,
                threshold=threshold,
                now=now,
                claimed=claimed,
            )
        for tid in sorted(unmatched):
            self._miss(self._tracks[tid], predicted[tid], now, region)
        self._start_new(
            detections, labels, [int(i) for i in np.flatnonzero(high).tolist() if int(i) not in claimed], now
        )
        return self.tracks()

    def _associate(
        self,
        dets: Detections,
        labels: list[str],
        det_idx: list[int],
        *,
        candidates: set[int],
        predicted: dict[int, Box],
        threshold: float,
        now: float,
        claimed: set[int],
    ) -> set[int]:
        """Match `candidates` tracks to the detections `det_idx`; returns the matched track ids."""
        tids = sorted(candidates)
        free = [d for d in det_idx if d not in claimed]
        if not tids or not free:
            return set()
        track_boxes = np.asarray([predicted[t] for t in tids], np.float32)
        iou = iou_matrix(track_boxes, dets.xyxy[free])
        for r, tid in enumerate(tids):  # labels must agree
            for c, d in enumerate(free):
                if labels[d] != self._tracks[tid].label:
                    iou[r, c] = 0.0
        matched: set[int] = set()
        for r, c in _greedy_match(iou, threshold):
            d = free[c]
            self._hit(self._tracks[tids[r]], dets, d, now)
            claimed.add(d)
            matched.add(tids[r])
        return matched

    def _hit(self, track: Track, dets: Detections, d: int, now: float) -> None:
        box: Box = tuple(float(v) for v in dets.xyxy[d])  # type: ignore[assignment]
        dt = now - track.last_seen
        if dt > 0:
            vx = ((box[0] + box[2]) - (track.box[0] + track.box[2])) / 2 / dt
            vy = ((box[1] + box[3]) - (track.box[1] + track.box[3])) / 2 / dt
            track.velocity = (0.5 * track.velocity[0] + 0.5 * vx, 0.5 * track.velocity[1] + 0.5 * vy)
        track.box, track.score, track.last_seen = box, float(dets.scores[d]), now
        track.scores.append(track.score)
        track.hits += 1
        track.missed = 0
        track.missed_since = None
        if not track.confirmed and track.hits >= self.settings.min_hits:
            track.confirmed = track.median_score >= self.settings.confirm_score
        self._update_stationary(track, now)

    def _miss(self, track: Track, predicted: Box, now: float, region: Box | None) -> None:
        if region is not None and box_iou(track.box, region) == 0.0:
            return  # detection did not look there this frame: nothing learned
        track.missed += 1
        track.missed_since = track.missed_since if track.missed_since is not None else now
        if track.stationary_since is None:
            track.box = predicted
        limit = self._limit(track)
        overdue = now - track.missed_since > limit * self.frame_interval_s
        if track.missed > limit or overdue or not track.confirmed:
            del self._tracks[track.track_id]
        else:
            self._update_stationary(track, now)

    def _limit(self, track: Track) -> int:
        """Analysed frames the track may stay undetected (more while it is stationary)."""
        if track.stationary_since is not None:
            return self.settings.stationary_max_disappeared
        return self.settings.max_disappeared

    def _start_new(self, dets: Detections, labels: list[str], new: list[int], now: float) -> None:
        for d in new:
            box: Box = tuple(float(v) for v in dets.xyxy[d])  # type: ignore[assignment]
            track = Track(self._next_id, labels[d], box, float(dets.scores[d]), now, now, anchor=box, anchor_since=now)
            track.scores.append(track.score)
            track.confirmed = self.settings.min_hits <= 1 and track.score >= self.settings.confirm_score
            self._tracks[track.track_id] = track
            self._next_id += 1

    def _update_stationary(self, track: Track, now: float) -> None:
        """Still while the box stays on its anchor; stationary after `stationary_s` still."""
        if box_iou(track.box, track.anchor) < self.settings.stationary_iou:
            track.anchor, track.anchor_since, track.stationary_since = track.box, now, None
            return
        if track.stationary_since is None and now - track.anchor_since >= self.settings.stationary_s:
            track.stationary_since = track.anchor_since


def _predict(track: Track, dt: float) -> Box:
    """Constant-velocity prediction of the box centre over `dt` seconds (still objects stay put)."""
    if track.stationary_since is not None or dt <= 0:
        return track.box
    dx, dy = track.velocity[0] * dt, track.velocity[1] * dt
    x1, y1, x2, y2 = track.box
    return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)
