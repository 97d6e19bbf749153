//! ByteTracker's behaviour on scripted scenes: crossings, occlusions, flicker, classes.

use proptest::prelude::*;
use ssd_track::{ByteTracker, Observation, Track, TrackerConfig};

fn seen(x: f32, y: f32, score: f32, class: usize) -> Observation {
    Observation {
        bbox: [x, y, x + 40.0, y + 40.0],
        score,
        class,
    }
}

fn tracker() -> ByteTracker {
    ByteTracker::new(TrackerConfig::default()).expect("the defaults are valid")
}

/// The identity of the track fed by detection `index`, if any.
fn id_of(tracks: &[Track], index: usize) -> Option<u64> {
    tracks.iter().find(|t| t.detection == index).map(|t| t.id)
}

#[test]
fn two_objects_crossing_keep_their_ids() {
    let mut t = tracker();
    let (mut a_id, mut b_id) = (None, None);
    for frame in 0..60 {
        let f = frame as f32;
        // A goes right, B goes left, on nearly the same row: they overlap for several frames.
        let dets = [
            seen(10.0 + 5.0 * f, 100.0, 0.9, 1),
            seen(310.0 - 5.0 * f, 108.0, 0.85, 1),
        ];
        let tracks = t.update(&dets);
        let (a, b) = (id_of(&tracks, 0), id_of(&tracks, 1));
        assert!(a.is_some() && b.is_some(), "frame {frame}: {tracks:?}");
        if frame == 0 {
            (a_id, b_id) = (a, b);
        }
        assert_eq!((a, b), (a_id, b_id), "frame {frame}");
    }
    assert_ne!(a_id, b_id);
    assert_eq!(t.identities(), 2);
}

#[test]
fn an_object_hidden_for_a_few_frames_gets_its_id_back() {
    let mut t = tracker();
    let mut first = None;
    for frame in 0..40 {
        let x = 20.0 + 4.0 * frame as f32;
        // Hidden behind something in frames 15 to 22 (8 frames).
        let dets = if (15..23).contains(&frame) {
            vec![]
        } else {
            vec![seen(x, 50.0, 0.9, 2)]
        };
        let tracks = t.update(&dets);
        if dets.is_empty() {
            assert!(tracks.is_empty(), "a lost track is not reported");
            continue;
        }
        let id = id_of(&tracks, 0).expect("tracked");
        assert_eq!(*first.get_or_insert(id), id, "frame {frame}");
    }
    assert_eq!(t.identities(), 1);
}

#[test]
fn an_object_hidden_longer_than_the_buffer_gets_a_new_id() {
    let config = TrackerConfig {
        track_buffer: 5,
        ..TrackerConfig::default()
    };
    let mut t = ByteTracker::new(config).expect("valid");
    let mut ids = Vec::new();
    for frame in 0..30 {
        let dets = if (10..20).contains(&frame) {
            vec![]
        } else {
            vec![seen(100.0, 100.0, 0.9, 1)]
        };
        ids.extend(t.update(&dets).iter().map(|tr| tr.id));
    }
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.last(), Some(&2));
}

#[test]
fn a_flicker_below_the_high_score_starts_no_track() {
    let mut t = tracker();
    for frame in 0..30 {
        // A background patch the detector is unsure of, every other frame.
        let dets = if frame % 2 == 0 {
            vec![seen(200.0, 200.0, 0.4, 3)]
        } else {
            vec![]
        };
        assert!(t.update(&dets).is_empty(), "frame {frame}");
    }
    assert_eq!(t.identities(), 0);
}

#[test]
fn a_new_detection_is_confirmed_by_the_next_frame_only() {
    let mut t = tracker();
    assert_eq!(
        t.update(&[seen(0.0, 0.0, 0.9, 1)]).len(),
        1,
        "frame 1 confirms at once"
    );
    // A second object from frame 2: unconfirmed in its first frame, confirmed in its second;
    // one that shows once is never reported and uses no identity.
    let out = t.update(&[seen(0.0, 0.0, 0.9, 1), seen(200.0, 0.0, 0.9, 1)]);
    assert_eq!(out.len(), 1);
    let out = t.update(&[seen(0.0, 0.0, 0.9, 1), seen(200.0, 0.0, 0.9, 1)]);
    assert_eq!(out.iter().map(|tr| tr.id).collect::<Vec<_>>(), [1, 2]);
    let out = t.update(&[seen(0.0, 0.0, 0.9, 1), seen(400.0, 0.0, 0.9, 1)]);
    assert_eq!(out.len(), 1);
    assert_eq!(t.identities(), 2);
}

#[test]
fn low_scoring_detections_continue_a_track() {
    let mut t = tracker();
    for frame in 0..20 {
        let x = 50.0 + 3.0 * frame as f32;
        // Partly occluded from frame 8 on: the detector's score drops under the high threshold.
        let score = if frame < 8 { 0.9 } else { 0.3 };
        let tracks = t.update(&[seen(x, 80.0, score, 1)]);
        assert_eq!(id_of(&tracks, 0), Some(1), "frame {frame}");
    }
}

#[test]
fn classes_are_tracked_apart() {
    let mut t = tracker();
    for frame in 0..10 {
        // Two classes on the same spot: two identities, never swapped.
        let tracks = t.update(&[seen(10.0, 10.0, 0.9, 1), seen(12.0, 10.0, 0.9, 2)]);
        assert_eq!(tracks.len(), 2, "frame {frame}");
        for tr in &tracks {
            assert_eq!(tr.class, tr.detection + 1);
            assert_eq!(tr.id as usize, tr.class);
        }
    }
}

#[test]
fn settings_out_of_range_are_named() {
    let bad = TrackerConfig {
        match_iou: 1.5,
        ..TrackerConfig::default()
    };
    let e = ByteTracker::new(bad).expect_err("out of range");
    assert_eq!(e.field, "match_iou");
}

proptest! {
    /// On any detections: identities are unique within a frame, each track names a detection of
    /// its class, and an identity never changes class.
    #[test]
    fn tracks_are_consistent_on_any_input(
        frames in prop::collection::vec(
            prop::collection::vec((0f32..300.0, 0f32..300.0, 1f32..80.0, 1f32..80.0, 0f32..1.0, 0usize..3), 0..8),
            1..30,
        )
    ) {
        let mut t = tracker();
        let mut classes = std::collections::HashMap::new();
        for dets in frames {
            let obs: Vec<Observation> = dets
                .iter()
                .map(|&(x, y, w, h, score, class)| Observation { bbox: [x, y, x + w, y + h], score, class })
                .collect();
            let tracks = t.update(&obs);
            let mut ids: Vec<u64> = tracks.iter().map(|tr| tr.id).collect();
            ids.dedup();
            prop_assert_eq!(ids.len(), tracks.len());
            let mut used: Vec<usize> = tracks.iter().map(|tr| tr.detection).collect();
            used.sort_unstable();
            used.dedup();
            prop_assert_eq!(used.len(), tracks.len());
            for tr in &tracks {
                prop_assert!(tr.detection < obs.len());
                prop_assert_eq!(obs[tr.detection].class, tr.class);
                prop_assert_eq!(*classes.entry(tr.id).or_insert(tr.class), tr.class);
                prop_assert!(tr.bbox.iter().all(|v| v.is_finite()));
            }
        }
    }
}
