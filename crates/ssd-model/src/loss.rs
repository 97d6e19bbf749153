//! The MultiBox loss with hard negative mining, on device.

use burn::tensor::activation::log_softmax;
use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData};

use crate::reduce::sum_exact;

/// The two parts of the loss, each a `[1]` tensor already divided by the number of positives.
#[derive(Debug, Clone)]
pub struct LossParts {
    /// Smooth L1 over the positive priors' encoded coordinates.
    pub loc: Tensor<1>,
    /// Softmax cross-entropy over positives and mined hard negatives.
    pub conf: Tensor<1>,
}

impl LossParts {
    /// `alpha * loc + conf`, the training objective.
    pub fn total(&self, alpha: f64) -> Tensor<1> {
        self.loc.clone().mul_scalar(alpha).add(self.conf.clone())
    }
}

/// SSD's MultiBox loss (Liu et al. 2016, eq. 1-3), computed on the device with no per-prior host
/// round trips.
///
/// - Localisation: smooth L1 (beta 1) over the 4 encoded coordinates of the positive priors
///   (`labels > 0`).
/// - Confidence: softmax cross-entropy over the positives plus, per image, the
///   `neg_pos_ratio x positives` (at most `P - 1`) negatives with the highest background loss
///   `-log_softmax(conf)[.., 0]` (hard negative mining, on detached values, see [`hard_negatives`]).
/// - Both sums are divided by `max(1, positives in the batch)`, so an image or batch without
///   positives gives a finite loss.
///
/// Long sums go through [`sum_exact`], so the loss is right on every backend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MultiBoxLoss {
    /// Hard negatives per positive (3).
    pub neg_pos_ratio: f64,
}

impl Default for MultiBoxLoss {
    fn default() -> Self {
        Self { neg_pos_ratio: 3.0 }
    }
}

impl MultiBoxLoss {
    /// `loc [N, P, 4]` and `conf [N, P, C]` from the network, `labels [N, P]` (0 = background)
    /// and `loc_targets [N, P, 4]` from the matcher.
    ///
    /// Reads `labels` back to count each image's positives; a caller that knows the counts
    /// (the data pipeline does) calls [`MultiBoxLoss::forward_with_positives`], which reads
    /// nothing back.
    pub fn forward(
        &self,
        loc: Tensor<3>,
        conf: Tensor<3>,
        labels: Tensor<2, Int>,
        loc_targets: Tensor<3>,
    ) -> LossParts {
        let [n, p] = labels.dims();
        let host: Vec<i64> = labels
            .clone()
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .unwrap_or_default();
        let positives: Vec<usize> = (0..n)
            .map(|i| {
                host.get(i * p..(i + 1) * p)
                    .map_or(0, |row| row.iter().filter(|&&l| l > 0).count())
            })
            .collect();
        self.forward_with_positives(loc, conf, labels, loc_targets, &positives)
    }

    /// [`MultiBoxLoss::forward`] with each image's number of positive priors given
    /// (`positives[i]` = labels of image `i` above 0): nothing is read back from the device.
    pub fn forward_with_positives(
        &self,
        loc: Tensor<3>,
        conf: Tensor<3>,
        labels: Tensor<2, Int>,
        loc_targets: Tensor<3>,
        positives: &[usize],
    ) -> LossParts {
        let positive = labels.clone().greater_elem(0).float(); // [N, P]
        let denominator = sum_exact(positive.clone()).clamp_min(1.0); // [1]
        self.parts(
            loc,
            conf,
            labels,
            loc_targets,
            positives,
            positive,
            denominator,
        )
    }

    /// The loss of one shard of a batch split over several devices: the sums over this shard's
    /// images divided by `normaliser`, the number of positive priors in the *whole* batch (at
    /// least 1 is used). The shards' parts add up to the loss of the whole batch on one device,
    /// and so do their gradients; a per-shard normaliser would be another objective whenever
    /// the shards hold different numbers of positives. Reads nothing back.
    pub fn forward_shard(
        &self,
        loc: Tensor<3>,
        conf: Tensor<3>,
        labels: Tensor<2, Int>,
        loc_targets: Tensor<3>,
        positives: &[usize],
        normaliser: usize,
    ) -> LossParts {
        let device = conf.device();
        let positive = labels.clone().greater_elem(0).float();
        let denominator = Tensor::<1>::from_data(
            TensorData::new(vec![normaliser.max(1) as f32], [1]),
            &device,
        );
        self.parts(
            loc,
            conf,
            labels,
            loc_targets,
            positives,
            positive,
            denominator,
        )
    }

    #[allow(clippy::too_many_arguments)] // the loss's inputs, named as in the public methods
    fn parts(
        &self,
        loc: Tensor<3>,
        conf: Tensor<3>,
        labels: Tensor<2, Int>,
        loc_targets: Tensor<3>,
        positives: &[usize],
        positive: Tensor<2>,
        denominator: Tensor<1>,
    ) -> LossParts {
        let [n, p, _] = conf.dims();

        // Smooth L1: with m = min(|d|, 1), 0.5 m^2 + (|d| - m).
        let diff = loc.sub(loc_targets).abs();
        let m = diff.clone().clamp_max(1.0);
        let smooth = m.clone().mul(m.clone()).mul_scalar(0.5).add(diff.sub(m));
        let per_prior = smooth.sum_dim(2).reshape([n, p]);
        let loc_loss = sum_exact(per_prior.mul(positive.clone())).div(denominator.clone());

        // Cross-entropy of each prior against its label, and the background loss for mining.
        let log_probs = log_softmax(conf, 2);
        let ce = log_probs
            .clone()
            .gather(2, labels.reshape([n, p, 1]))
            .reshape([n, p])
            .neg();
        let background = log_probs.slice([0..n, 0..p, 0..1]).reshape([n, p]).neg();
        let mining = background
            .detach()
            .mul(positive.clone().neg().add_scalar(1.0)); // positives rank last (0)
        let negatives: Vec<usize> = positives
            .iter()
            .map(|&k| ((k as f64 * self.neg_pos_ratio).ceil() as usize).min(p - 1))
            .collect();
        let hard = hard_negatives(mining, &negatives);
        let selected = positive.max_pair(hard);
        let conf_loss = sum_exact(ce.mul(selected)).div(denominator);
        LossParts {
            loc: loc_loss,
            conf: conf_loss,
        }
    }
}

/// The hard negatives of each row of `mining [N, P]` as a 0/1 mask: the `negatives[i]` largest
/// values of row `i` (the first `negatives[i]` places of a descending sort; equal values in the
/// backend's order). Found without a sort — Burn's CubeCL backends (cuda, wgpu) sort on the
/// host — by one on-device top-k of the largest count (known on the host), whose first
/// `negatives[i]` indices of row `i` are scattered into the mask.
pub fn hard_negatives(mining: Tensor<2>, negatives: &[usize]) -> Tensor<2> {
    let [n, p] = mining.dims();
    let device = mining.device();
    let k_max = negatives.iter().copied().max().unwrap_or(0).min(p);
    if k_max == 0 {
        return Tensor::zeros([n, p], &device);
    }
    let (_, top) = mining.topk_with_indices(k_max, 1); // [N, k_max], descending
    let take: Vec<f32> = negatives
        .iter()
        .flat_map(|&k| (0..k_max).map(move |j| if j < k { 1.0 } else { 0.0 }))
        .collect();
    let take = Tensor::<2>::from_data(TensorData::new(take, [n, k_max]), &device);
    Tensor::zeros([n, p], &device).scatter(1, top, take, IndexingUpdateOp::Add)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn loss(labels: Vec<i64>, n: usize, p: usize, c: usize) -> (f32, f32) {
        let device = Device::default();
        let loc = Tensor::<3>::from_data(
            TensorData::new(
                (0..n * p * 4)
                    .map(|i| (i % 7) as f32 * 0.3)
                    .collect::<Vec<_>>(),
                [n, p, 4],
            ),
            &device,
        );
        let conf = Tensor::<3>::from_data(
            TensorData::new(
                (0..n * p * c)
                    .map(|i| (i % 5) as f32 * 0.7 - 1.0)
                    .collect::<Vec<_>>(),
                [n, p, c],
            ),
            &device,
        );
        let labels = Tensor::<2, Int>::from_data(TensorData::new(labels, [n, p]), &device);
        let targets = Tensor::<3>::zeros([n, p, 4], &device);
        let parts = MultiBoxLoss::default().forward(loc, conf, labels, targets);
        let read = |t: Tensor<1>| {
            t.into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("f32")[0]
        };
        (read(parts.loc), read(parts.conf))
    }

    /// The argsort-of-argsort ranking the mask replaces (`rank < k`, stable descending order).
    fn ranked(values: &[f32], p: usize, negatives: &[usize]) -> Vec<f32> {
        let mut out = vec![0.0; values.len()];
        for (i, row) in values.chunks(p).enumerate() {
            let mut order: Vec<usize> = (0..p).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            for &j in order.iter().take(negatives[i]) {
                out[i * p + j] = 1.0;
            }
        }
        out
    }

    #[test]
    fn hard_negatives_are_the_first_places_of_a_descending_sort() {
        let device = Device::default();
        let (n, p) = (5, 40);
        // Distinct values (the backends' sorts order ties differently).
        let values: Vec<f32> = (0..n * p)
            .map(|i| ((i * 7919 + 13) % 1009) as f32 * 0.25)
            .collect();
        for negatives in [
            [0, 1, 3, 39, 12],
            [5, 5, 5, 5, 5],
            [0, 0, 0, 0, 0],
            [40, 2, 0, 17, 9],
        ] {
            let mining = Tensor::<2>::from_data(TensorData::new(values.clone(), [n, p]), &device);
            let got: Vec<f32> = hard_negatives(mining, &negatives)
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("f32");
            assert_eq!(got, ranked(&values, p, &negatives), "{negatives:?}");
        }
    }

    #[test]
    fn a_batch_without_positives_gives_a_finite_loss() {
        let (l, c) = loss(vec![0; 2 * 10], 2, 10, 3);
        assert_eq!(l, 0.0);
        // No positives: no hard negatives either (3 x 0), so nothing is selected.
        assert!(c.is_finite() && c == 0.0, "{c}");
    }

    #[test]
    fn hard_negatives_are_three_per_positive_per_image() {
        // Image 0: one positive; image 1: none. Selected: 1 positive + 3 negatives of image 0.
        let mut labels = vec![0i64; 2 * 10];
        labels[4] = 2;
        let (l, c) = loss(labels, 2, 10, 3);
        assert!(l > 0.0 && l.is_finite());
        // Recompute by hand: cross-entropy of the positive plus the 3 largest background losses
        // among image 0's other priors, divided by 1 positive.
        let logits = |prior: usize| -> Vec<f32> {
            (0..3)
                .map(|k| ((prior * 3 + k) % 5) as f32 * 0.7 - 1.0)
                .collect()
        };
        let ce = |prior: usize, label: usize| {
            let z = logits(prior);
            let lse = z.iter().map(|v| v.exp()).sum::<f32>().ln();
            lse - z[label]
        };
        let mut background: Vec<f32> = (0..10).filter(|&p| p != 4).map(|p| ce(p, 0)).collect();
        background.sort_by(|a, b| b.total_cmp(a));
        let want = ce(4, 2) + background[..3].iter().sum::<f32>();
        assert!((c - want).abs() < 1e-5, "{c} vs {want}");
    }

    /// Two shards with the whole batch's normaliser add up to the one-batch loss, although they
    /// hold different numbers of positives (3 and 1); each shard's own normaliser would not.
    #[test]
    fn shards_with_the_global_normaliser_add_up_to_the_whole_batch() {
        let device = Device::default();
        let (n, p, c) = (4, 12, 3);
        let values = |len: usize, m: usize, scale: f32| -> Vec<f32> {
            (0..len)
                .map(|i| ((i * 31 + 7) % m) as f32 * scale - 1.0)
                .collect()
        };
        let mut labels = vec![0i64; n * p];
        for (i, j, l) in [(0, 1, 1), (0, 5, 2), (1, 3, 1), (3, 8, 2)] {
            labels[i * p + j] = l;
        }
        let positives = [2, 1, 0, 1];
        let loc = Tensor::<3>::from_data(
            TensorData::new(values(n * p * 4, 11, 0.2), [n, p, 4]),
            &device,
        );
        let conf = Tensor::<3>::from_data(
            TensorData::new(values(n * p * c, 13, 0.3), [n, p, c]),
            &device,
        );
        let targets = Tensor::<3>::from_data(
            TensorData::new(values(n * p * 4, 5, 0.1), [n, p, 4]),
            &device,
        );
        let labels = Tensor::<2, Int>::from_data(TensorData::new(labels, [n, p]), &device);
        let read = |t: Tensor<1>| t.into_data().iter::<f32>().next().expect("a value");
        let criterion = MultiBoxLoss::default();
        let whole = criterion.forward_with_positives(
            loc.clone(),
            conf.clone(),
            labels.clone(),
            targets.clone(),
            &positives,
        );
        let shard = |range: std::ops::Range<usize>, normaliser| {
            let parts = criterion.forward_shard(
                loc.clone().slice(range.clone()),
                conf.clone().slice(range.clone()),
                labels.clone().slice(range.clone()),
                targets.clone().slice(range.clone()),
                &positives[range],
                normaliser,
            );
            (read(parts.loc), read(parts.conf))
        };
        let (a, b) = (shard(0..2, 4), shard(2..4, 4));
        let (loc_whole, conf_whole) = (read(whole.loc), read(whole.conf));
        assert!(
            (a.0 + b.0 - loc_whole).abs() < 1e-5 * loc_whole,
            "{a:?} + {b:?} vs {loc_whole}"
        );
        assert!(
            (a.1 + b.1 - conf_whole).abs() < 1e-5 * conf_whole,
            "{a:?} + {b:?} vs {conf_whole}"
        );
        // Per-shard normalisers (3 and 1), averaged: another number.
        let (own_a, own_b) = (shard(0..2, 3), shard(2..4, 1));
        let averaged = (own_a.1 + own_b.1) / 2.0;
        assert!(
            (averaged - conf_whole).abs() > 1e-3,
            "{averaged} vs {conf_whole}"
        );
    }
}
