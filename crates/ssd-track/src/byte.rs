//! ByteTrack (Zhang et al., ECCV 2022): tracking by associating every detection box, the
//! low-scoring ones included.
//!
//! Each frame, per class:
//! 1. every confirmed or lost track is moved one frame ahead by its Kalman filter;
//! 2. detections scoring at least [`TrackerConfig::high_score`] are matched to those tracks by
//!    IoU (times the detection's score with [`TrackerConfig::fuse_score`]), an optimal
//!    assignment, pairs under [`TrackerConfig::match_iou`] refused;
//! 3. the tracks still unmatched that were seen last frame are matched to the low-scoring
//!    detections (IoU at least [`LOW_MATCH_IOU`]): an object that an occlusion or blur makes
//!    the detector unsure of keeps its track, and a low-scoring detection alone never starts one;
//! 4. tracks started last frame and not yet confirmed are matched to the high detections left
//!    (at least [`UNCONFIRMED_MATCH_IOU`]); unmatched, they are dropped;
//! 5. high detections still left scoring at least [`TrackerConfig::new_track_score`] start new
//!    tracks, confirmed when they are matched in the next frame (at once in the first frame);
//! 6. tracks unmatched for more than [`TrackerConfig::track_buffer`] frames (at 30 frames per
//!    second, scaled to [`TrackerConfig::frame_rate`]) are forgotten; until then a lost track
//!    can take its identity back.
//!
//! Identities are numbered from 1 as tracks are confirmed, over all classes, so they are
//! consecutive and a track that never got confirmed uses none. Classes are tracked apart: a
//! detection never continues a track of another class.

use std::collections::BTreeMap;

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;
use serde::Serialize;
use ssd_core::{CornerBox, iou};

use crate::kalman::KalmanBox;

/// IoU at least this high is needed to continue a track with a low-scoring detection
/// (ByteTrack's second association, a distance threshold of 0.5).
pub const LOW_MATCH_IOU: f32 = 0.5;
/// IoU (fused with the score) at least this high is needed to confirm a new track (ByteTrack's
/// distance threshold 0.7 for unconfirmed tracks).
pub const UNCONFIRMED_MATCH_IOU: f32 = 0.3;
/// A tracked and a lost track overlapping by more than this IoU are one object twice: the
/// younger goes (ByteTrack's duplicate removal, a distance of 0.15).
const DUPLICATE_IOU: f32 = 0.85;

/// The settings of the tracker, with ByteTrack's defaults (its MOT17 setting). The lowest score
/// a detection may have is the detector's own threshold: every detection given to
/// [`ByteTracker::update`] under `high_score` is a low one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackerConfig {
    /// Detections scoring at least this are matched first and may start tracks; those under it
    /// only continue tracks (in [0, 1]).
    pub high_score: f32,
    /// A detection left unmatched starts a track only when it scores at least this (in [0, 1]).
    pub new_track_score: f32,
    /// Least IoU (times the score with `fuse_score`) between a track's predicted box and a high
    /// detection for them to be matched (in [0, 1]; ByteTrack's `match_thresh` 0.8 is 1 - 0.2).
    pub match_iou: f32,
    /// Frames (at 30 per second) a lost track is kept to take its identity back.
    pub track_buffer: u32,
    /// Frames per second of the video: `track_buffer` is scaled by `frame_rate / 30`.
    pub frame_rate: f64,
    /// Weigh the first association's IoU by the detection's score (ByteTrack's default; its
    /// MOT20 setting turns it off).
    pub fuse_score: bool,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            high_score: 0.5,
            new_track_score: 0.6,
            match_iou: 0.2,
            track_buffer: 30,
            frame_rate: 30.0,
            fuse_score: true,
        }
    }
}

/// A setting of [`TrackerConfig`] out of its range, named as its field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} must be {range}, not {value}")]
pub struct ConfigError {
    /// The field (the flag of `ssd track` is the same name with dashes).
    pub field: &'static str,
    /// What it must be.
    pub range: &'static str,
    /// What it was.
    pub value: String,
}

impl TrackerConfig {
    /// Checks every setting's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let unit = |field, v: f32| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError {
                    field,
                    range: "in [0, 1]",
                    value: v.to_string(),
                })
            }
        };
        unit("high_score", self.high_score)?;
        unit("new_track_score", self.new_track_score)?;
        unit("match_iou", self.match_iou)?;
        if !(self.frame_rate.is_finite() && self.frame_rate > 0.0) {
            return Err(ConfigError {
                field: "frame_rate",
                range: "a positive number",
                value: self.frame_rate.to_string(),
            });
        }
        Ok(())
    }

    /// Frames a lost track is kept, at the video's frame rate.
    pub fn max_lost_frames(&self) -> u64 {
        (self.frame_rate / 30.0 * f64::from(self.track_buffer)) as u64
    }
}

/// A detection of one frame, as the tracker takes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// `[xmin, ymin, xmax, ymax]` in pixels.
    pub bbox: [f32; 4],
    /// The detector's score.
    pub score: f32,
    /// The class (any numbering; tracks never change class).
    pub class: usize,
}

/// A track in a frame: a confirmed identity matched to a detection of that frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Track {
    /// The identity, from 1, unique over all classes.
    pub id: u64,
    /// The class of its detections.
    pub class: usize,
    /// The Kalman filter's box after this frame's detection, `[xmin, ymin, xmax, ymax]`.
    pub bbox: [f32; 4],
    /// The score of this frame's detection.
    pub score: f32,
    /// The index of this frame's detection in the slice given to [`ByteTracker::update`].
    pub detection: usize,
    /// Frames since the track started (0 in its first frame).
    pub age: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Tracked,
    Lost,
}

#[derive(Debug, Clone)]
struct Tracklet {
    /// 0 until confirmed.
    id: u64,
    kalman: KalmanBox,
    score: f32,
    state: State,
    confirmed: bool,
    start_frame: u64,
    /// The last frame it was matched in.
    last_frame: u64,
    /// The detection it was matched to in the current frame.
    detection: Option<usize>,
}

impl Tracklet {
    fn matched(&mut self, det: &Observation, index: usize, frame: u64) {
        self.kalman.update(det.bbox);
        self.score = det.score;
        self.state = State::Tracked;
        self.confirmed = true;
        self.last_frame = frame;
        self.detection = Some(index);
    }

    fn corner(&self) -> CornerBox {
        let [x0, y0, x1, y1] = self.kalman.bbox();
        CornerBox::new(x0, y0, x1, y1)
    }
}

/// The tracks of one class.
#[derive(Debug, Clone, Default)]
struct ClassTracks {
    tracked: Vec<Tracklet>,
    lost: Vec<Tracklet>,
}

/// ByteTrack over every class of a video; one [`update`](Self::update) per frame.
#[derive(Debug, Clone)]
pub struct ByteTracker {
    config: TrackerConfig,
    classes: BTreeMap<usize, ClassTracks>,
    frame: u64,
    next_id: u64,
}

impl ByteTracker {
    /// A tracker with `config` (checked).
    pub fn new(config: TrackerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            classes: BTreeMap::new(),
            frame: 0,
            next_id: 1,
        })
    }

    /// The settings.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Frames seen so far.
    pub fn frames(&self) -> u64 {
        self.frame
    }

    /// Identities given so far.
    pub fn identities(&self) -> u64 {
        self.next_id - 1
    }

    /// Takes the detections of the next frame and returns the confirmed tracks matched in it,
    /// ordered by identity.
    pub fn update(&mut self, detections: &[Observation]) -> Vec<Track> {
        self.frame += 1;
        let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, d) in detections.iter().enumerate() {
            by_class.entry(d.class).or_default().push(i);
        }
        for class in by_class.keys() {
            self.classes.entry(*class).or_default();
        }
        let mut out = Vec::new();
        let classes: Vec<usize> = self.classes.keys().copied().collect();
        for class in classes {
            let indices = by_class.remove(&class).unwrap_or_default();
            let mut tracks = self.classes.remove(&class).unwrap_or_default();
            self.step(&mut tracks, detections, &indices);
            for t in tracks.tracked.iter_mut().filter(|t| t.confirmed) {
                if t.id == 0 {
                    t.id = self.next_id;
                    self.next_id += 1;
                }
                if let Some(detection) = t.detection {
                    out.push(Track {
                        id: t.id,
                        class,
                        bbox: t.kalman.bbox(),
                        score: t.score,
                        detection,
                        age: self.frame - t.start_frame,
                    });
                }
            }
            if !(tracks.tracked.is_empty() && tracks.lost.is_empty()) {
                self.classes.insert(class, tracks);
            }
        }
        out.sort_by_key(|t| t.id);
        out
    }

    /// One frame of one class: ByteTrack's association steps (see the module's documentation).
    fn step(&self, tracks: &mut ClassTracks, all: &[Observation], indices: &[usize]) {
        let c = &self.config;
        let frame = self.frame;
        let (high, low): (Vec<usize>, Vec<usize>) =
            indices.iter().partition(|&&i| all[i].score >= c.high_score);

        let (unconfirmed, confirmed): (Vec<Tracklet>, Vec<Tracklet>) =
            std::mem::take(&mut tracks.tracked)
                .into_iter()
                .partition(|t| !t.confirmed);
        let mut pool: Vec<Tracklet> = confirmed;
        pool.append(&mut tracks.lost);
        for t in &mut pool {
            t.detection = None;
            if t.state != State::Tracked {
                t.kalman.hold_height();
            }
            t.kalman.predict();
        }

        // 1. Confirmed and lost tracks against the high detections.
        let (pairs, pool_left, high_left) = associate(&pool, &high, all, c.match_iou, c.fuse_score);
        let mut tracked = Vec::new();
        let mut taken = vec![false; pool.len()];
        for (t, d) in pairs {
            let mut track = pool[t].clone();
            track.matched(&all[high[d]], high[d], frame);
            tracked.push(track);
            taken[t] = true;
        }
        // 2. Tracks seen last frame, still unmatched, against the low detections.
        let recent: Vec<usize> = pool_left
            .iter()
            .copied()
            .filter(|&t| pool[t].state == State::Tracked)
            .collect();
        let recent_tracks: Vec<Tracklet> = recent.iter().map(|&t| pool[t].clone()).collect();
        let (pairs, recent_left, _) = associate(&recent_tracks, &low, all, LOW_MATCH_IOU, false);
        for (r, d) in pairs {
            let mut track = recent_tracks[r].clone();
            track.matched(&all[low[d]], low[d], frame);
            tracked.push(track);
            taken[recent[r]] = true;
        }
        let mut lost = Vec::new();
        for r in recent_left {
            let mut track = recent_tracks[r].clone();
            track.state = State::Lost;
            lost.push(track);
            taken[recent[r]] = true;
        }
        // Lost tracks left unmatched stay lost.
        for (t, track) in pool.into_iter().enumerate() {
            if !taken[t] {
                lost.push(track);
            }
        }
        // 3. Tracks of last frame not yet confirmed against the high detections left.
        let high_rest: Vec<usize> = high_left.iter().map(|&d| high[d]).collect();
        let (pairs, _, rest_left) = associate(
            &unconfirmed,
            &high_rest,
            all,
            UNCONFIRMED_MATCH_IOU,
            c.fuse_score,
        );
        for (t, d) in pairs {
            let mut track = unconfirmed[t].clone();
            track.matched(&all[high_rest[d]], high_rest[d], frame);
            tracked.push(track);
        }
        // 4. New tracks from the high detections still left.
        for d in rest_left {
            let index = high_rest[d];
            let det = &all[index];
            if det.score < c.new_track_score {
                continue;
            }
            tracked.push(Tracklet {
                id: 0,
                kalman: KalmanBox::new(det.bbox),
                score: det.score,
                state: State::Tracked,
                confirmed: frame == 1,
                start_frame: frame,
                last_frame: frame,
                detection: Some(index),
            });
        }
        // 5. Lost tracks unseen for too long are forgotten.
        let keep = self.config.max_lost_frames();
        lost.retain(|t| frame - t.last_frame <= keep);
        remove_duplicates(&mut tracked, &mut lost, frame);
        tracks.tracked = tracked;
        tracks.lost = lost;
    }
}

/// Matches `tracks` to the detections `all[d]` for `d` in `dets` by an optimal assignment that
/// maximises the summed similarity above `min_similarity` (IoU, times the score with `fuse`):
/// the assignment ByteTrack's `lapjv` with a cost limit finds. Returns the pairs (track index,
/// index into `dets`), the unmatched tracks and the unmatched detections, each ascending.
fn associate(
    tracks: &[Tracklet],
    dets: &[usize],
    all: &[Observation],
    min_similarity: f32,
    fuse: bool,
) -> (Vec<(usize, usize)>, Vec<usize>, Vec<usize>) {
    let (n, m) = (tracks.len(), dets.len());
    if n == 0 || m == 0 {
        return (Vec::new(), (0..n).collect(), (0..m).collect());
    }
    let boxes: Vec<CornerBox> = tracks.iter().map(Tracklet::corner).collect();
    let similarity = |t: usize, d: usize| {
        let det = &all[dets[d]];
        let [x0, y0, x1, y1] = det.bbox;
        let overlap = iou(&boxes[t], &CornerBox::new(x0, y0, x1, y1));
        if fuse { overlap * det.score } else { overlap }
    };
    // Integer weights (micro-units of similarity) over the threshold: the pairs under it weigh 0
    // and are dropped after the assignment. The solver wants rows <= columns.
    let weight = |t: usize, d: usize| {
        let s = similarity(t, d);
        if s >= min_similarity {
            1 + ((s - min_similarity) * 1e6).round() as i64
        } else {
            0
        }
    };
    let transpose = n > m;
    let (rows, cols) = if transpose { (m, n) } else { (n, m) };
    let values: Vec<i64> = (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (r, c)))
        .map(|(r, c)| {
            if transpose {
                weight(c, r)
            } else {
                weight(r, c)
            }
        })
        .collect();
    let Ok(matrix) = Matrix::from_vec(rows, cols, values.clone()) else {
        return (Vec::new(), (0..n).collect(), (0..m).collect());
    };
    let (_, assignment) = kuhn_munkres(&matrix);
    let mut pairs = Vec::new();
    for (r, &c) in assignment.iter().enumerate() {
        if values[r * cols + c] > 0 {
            pairs.push(if transpose { (c, r) } else { (r, c) });
        }
    }
    pairs.sort_unstable();
    let mut track_used = vec![false; n];
    let mut det_used = vec![false; m];
    for &(t, d) in &pairs {
        track_used[t] = true;
        det_used[d] = true;
    }
    let unmatched = |used: &[bool]| (0..used.len()).filter(|&i| !used[i]).collect::<Vec<_>>();
    (pairs, unmatched(&track_used), unmatched(&det_used))
}

/// A tracked and a lost track on the same spot: the one followed for fewer frames goes.
fn remove_duplicates(tracked: &mut Vec<Tracklet>, lost: &mut Vec<Tracklet>, frame: u64) {
    let mut drop_tracked = vec![false; tracked.len()];
    let mut drop_lost = vec![false; lost.len()];
    for (i, a) in tracked.iter().enumerate() {
        for (j, b) in lost.iter().enumerate() {
            if iou(&a.corner(), &b.corner()) > DUPLICATE_IOU {
                if frame - a.start_frame > frame - b.start_frame {
                    drop_lost[j] = true;
                } else {
                    drop_tracked[i] = true;
                }
            }
        }
    }
    let mut i = 0;
    tracked.retain(|_| (!drop_tracked[i], i += 1).0);
    let mut j = 0;
    lost.retain(|_| (!drop_lost[j], j += 1).0);
}
