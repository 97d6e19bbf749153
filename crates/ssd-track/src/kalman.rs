//! The Kalman filter of SORT and ByteTrack: a box as `(cx, cy, a, h)` (centre, aspect ratio
//! `w / h`, height) with constant velocity, its noise proportional to the box's height.
//!
//! The state is 8 numbers, `(cx, cy, a, h)` and their velocities per frame; a measurement is the
//! first four. The process and measurement noise are those of ByteTrack's `KalmanFilter`
//! (standard deviations of 1/20 of the height for positions, 1/160 for velocities), so a track
//! moves as ByteTrack's would. Eight dimensions are small enough for plain arrays: no linear
//! algebra crate is needed.

// Small matrix arithmetic reads as the formulas do with row and column indices.
#![allow(clippy::needless_range_loop)]

/// Standard deviation of a position, per unit of the box's height.
const POSITION_WEIGHT: f64 = 1.0 / 20.0;
/// Standard deviation of a velocity, per unit of the box's height.
const VELOCITY_WEIGHT: f64 = 1.0 / 160.0;

type Mat8 = [[f64; 8]; 8];
type Mat4 = [[f64; 4]; 4];

/// A track's box estimate: mean and covariance of `(cx, cy, a, h, vcx, vcy, va, vh)`.
#[derive(Debug, Clone, PartialEq)]
pub struct KalmanBox {
    /// The state's mean.
    pub mean: [f64; 8],
    /// The state's covariance.
    pub covariance: [[f64; 8]; 8],
}

/// Standard deviations of the state for a box of height `h`: positions `position` x 1/20 of
/// it, velocities `velocity` x 1/160 of it, the aspect ratio's fixed (1e-2, 1e-5).
fn deviations(h: f64, position: f64, velocity: f64) -> [f64; 8] {
    let p = position * POSITION_WEIGHT * h;
    let v = velocity * VELOCITY_WEIGHT * h;
    [p, p, 1e-2, p, v, v, 1e-5, v]
}

/// `[xmin, ymin, xmax, ymax]` as `(cx, cy, w / h, h)`.
fn measure(bbox: [f32; 4]) -> [f64; 4] {
    let [x0, y0, x1, y1] = bbox.map(f64::from);
    let h = (y1 - y0).max(1e-6);
    [(x0 + x1) / 2.0, (y0 + y1) / 2.0, (x1 - x0) / h, h]
}

impl KalmanBox {
    /// A new track at `bbox` (`[xmin, ymin, xmax, ymax]`), not moving, with ByteTrack's initial
    /// uncertainty.
    pub fn new(bbox: [f32; 4]) -> Self {
        let z = measure(bbox);
        let std = deviations(z[3], 2.0, 10.0);
        let mut covariance = [[0.0; 8]; 8];
        for (i, s) in std.iter().enumerate() {
            covariance[i][i] = s * s;
        }
        let mut mean = [0.0; 8];
        mean[..4].copy_from_slice(&z);
        Self { mean, covariance }
    }

    /// One frame ahead: position plus velocity, uncertainty grown by the process noise.
    pub fn predict(&mut self) {
        let std = deviations(self.mean[3], 1.0, 1.0);
        for i in 0..4 {
            self.mean[i] += self.mean[i + 4];
        }
        // F P F^T with F = [[I, I], [0, I]]: rows then columns i += i + 4.
        let p = &mut self.covariance;
        for i in 0..4 {
            for j in 0..8 {
                p[i][j] += p[i + 4][j];
            }
        }
        for row in p.iter_mut() {
            for j in 0..4 {
                row[j] += row[j + 4];
            }
        }
        for (i, s) in std.iter().enumerate() {
            p[i][i] += s * s;
        }
    }

    /// The measurement `bbox` (`[xmin, ymin, xmax, ymax]`) merged into the estimate.
    pub fn update(&mut self, bbox: [f32; 4]) {
        let z = measure(bbox);
        let h = self.mean[3];
        let noise = [
            POSITION_WEIGHT * h,
            POSITION_WEIGHT * h,
            1e-1,
            POSITION_WEIGHT * h,
        ];
        // Innovation covariance S = H P H^T + R (the top-left block plus R).
        let mut s: Mat4 = [[0.0; 4]; 4];
        for i in 0..4 {
            for j in 0..4 {
                s[i][j] = self.covariance[i][j];
            }
            s[i][i] += noise[i] * noise[i];
        }
        let Some(s_inv) = invert4(&s) else {
            return; // a degenerate covariance: keep the prediction
        };
        // Gain K = P H^T S^-1 (8 x 4); P H^T is P's first four columns.
        let mut gain = [[0.0; 4]; 8];
        for (i, row) in gain.iter_mut().enumerate() {
            for (j, g) in row.iter_mut().enumerate() {
                *g = (0..4).map(|k| self.covariance[i][k] * s_inv[k][j]).sum();
            }
        }
        let innovation: [f64; 4] = std::array::from_fn(|i| z[i] - self.mean[i]);
        for (m, row) in self.mean.iter_mut().zip(&gain) {
            *m += (0..4).map(|k| row[k] * innovation[k]).sum::<f64>();
        }
        // P - K S K^T, which equals P - K H P.
        let mut ks = [[0.0; 4]; 8];
        for i in 0..8 {
            for j in 0..4 {
                ks[i][j] = (0..4).map(|k| gain[i][k] * s[k][j]).sum();
            }
        }
        let mut next: Mat8 = self.covariance;
        for (i, row) in next.iter_mut().enumerate() {
            for (j, value) in row.iter_mut().enumerate() {
                *value -= (0..4).map(|k| ks[i][k] * gain[j][k]).sum::<f64>();
            }
        }
        self.covariance = next;
    }

    /// The estimated box as `[xmin, ymin, xmax, ymax]`.
    pub fn bbox(&self) -> [f32; 4] {
        let [cx, cy, a, h] = [self.mean[0], self.mean[1], self.mean[2], self.mean[3]];
        let w = a * h;
        [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0].map(|v| v as f32)
    }

    /// Stops the height from changing while the track is not seen (ByteTrack zeroes the height's
    /// velocity of a lost track before predicting it, so that it does not shrink to nothing).
    pub fn hold_height(&mut self) {
        self.mean[7] = 0.0;
    }
}

/// The inverse of a 4 x 4 matrix by Gauss-Jordan elimination with partial pivoting; `None` when
/// it is singular.
fn invert4(m: &Mat4) -> Option<Mat4> {
    let mut a = *m;
    let mut inv: Mat4 = std::array::from_fn(|i| std::array::from_fn(|j| f64::from(i == j)));
    for col in 0..4 {
        let pivot = (col..4).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let d = a[col][col];
        for j in 0..4 {
            a[col][j] /= d;
            inv[col][j] /= d;
        }
        for row in 0..4 {
            if row != col {
                let f = a[row][col];
                for j in 0..4 {
                    a[row][j] -= f * a[col][j];
                    inv[row][j] -= f * inv[col][j];
                }
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_moving_at_constant_speed_is_predicted_ahead() {
        let mut k = KalmanBox::new([10.0, 20.0, 30.0, 60.0]);
        for step in 1..=20 {
            k.predict();
            let dx = 3.0 * step as f32;
            k.update([10.0 + dx, 20.0, 30.0 + dx, 60.0]);
        }
        // The velocity is learnt: the prediction of the next frame is 3 px further right.
        k.predict();
        let b = k.bbox();
        let expected = [10.0 + 63.0, 20.0, 30.0 + 63.0, 60.0];
        for (got, want) in b.iter().zip(expected) {
            assert!((got - want).abs() < 0.5, "{b:?} vs {expected:?}");
        }
    }

    #[test]
    fn an_update_moves_the_estimate_towards_the_measurement() {
        let mut k = KalmanBox::new([0.0, 0.0, 10.0, 10.0]);
        k.predict();
        k.update([4.0, 0.0, 14.0, 10.0]);
        let cx = k.mean[0];
        assert!(cx > 5.0 && cx < 9.0, "{cx}");
        // The covariance stays symmetric.
        for i in 0..8 {
            for j in 0..8 {
                assert!((k.covariance[i][j] - k.covariance[j][i]).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn inversion_is_exact_on_a_known_matrix() {
        let m = [
            [4.0, 1.0, 0.0, 0.0],
            [1.0, 3.0, 0.0, 0.0],
            [0.0, 0.0, 2.0, 0.0],
            [0.0, 0.0, 0.0, 5.0],
        ];
        let inv = invert4(&m).expect("invertible");
        for i in 0..4 {
            for j in 0..4 {
                let v: f64 = (0..4).map(|k| m[i][k] * inv[k][j]).sum();
                assert!((v - f64::from(i == j)).abs() < 1e-12);
            }
        }
        assert!(invert4(&[[0.0; 4]; 4]).is_none());
    }
}
