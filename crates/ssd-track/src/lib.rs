//! Multi-object tracking for `ssd`: identities that stay with objects from frame to frame.
//!
//! - [`ByteTracker`]: ByteTrack's association (high- and low-scoring detections, Kalman-filtered
//!   boxes, IoU matching by an optimal assignment), per class, with its usual settings in
//!   [`TrackerConfig`].
//! - [`KalmanBox`]: the constant-velocity Kalman filter of SORT and ByteTrack.
//! - [`MotRow`]: the MOTChallenge text format of tracker results and ground truth.
//!
//! The crate depends on `ssd-core`'s geometry only (no Burn, no I/O): any detector's boxes can
//! be tracked with it.
//!
//! ```
//! use ssd_track::{ByteTracker, Observation, TrackerConfig};
//!
//! let mut tracker = ByteTracker::new(TrackerConfig::default())?;
//! for step in 0..5 {
//!     let x = 10.0 + 4.0 * step as f32;
//!     let seen = [Observation { bbox: [x, 20.0, x + 30.0, 60.0], score: 0.9, class: 1 }];
//!     let tracks = tracker.update(&seen);
//!     assert_eq!(tracks[0].id, 1);
//! }
//! # Ok::<(), ssd_track::ConfigError>(())
//! ```

pub mod byte;
pub mod kalman;
pub mod mot;

pub use byte::{ByteTracker, ConfigError, Observation, Track, TrackerConfig};
pub use kalman::KalmanBox;
pub use mot::{MotParseError, MotRow, parse_mot};
