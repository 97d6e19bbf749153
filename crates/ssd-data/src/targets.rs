//! Per-sample training targets: ground truth matched to the priors (runs in loader workers).

use std::sync::Arc;

use ssd_core::{
    BoxCoder, CenterBox, CoreError, CornerBox, PriorConfig, PriorTargets, match_priors,
};

/// Encodes one sample's ground truth against a fixed set of priors.
#[derive(Debug, Clone)]
pub struct TargetEncoder {
    priors: Arc<[CenterBox]>,
    threshold: f32,
    coder: BoxCoder,
}

impl TargetEncoder {
    /// An encoder for the priors of `config`, matching at IoU `threshold` (the paper: 0.5) with
    /// the default variances (0.1, 0.2).
    pub fn new(config: &PriorConfig, threshold: f32) -> Result<Self, CoreError> {
        Ok(Self::from_priors(
            config.priors()?,
            threshold,
            BoxCoder::default(),
        ))
    }

    /// An encoder for explicit priors and coder.
    pub fn from_priors(priors: Vec<CenterBox>, threshold: f32, coder: BoxCoder) -> Self {
        Self {
            priors: priors.into(),
            threshold,
            coder,
        }
    }

    /// Number of priors `P`.
    pub fn num_priors(&self) -> usize {
        self.priors.len()
    }

    /// The priors.
    pub fn priors(&self) -> &[CenterBox] {
        &self.priors
    }

    /// Labels `[P]` (0 = background) and encoded locations `[P, 4]` for normalised `boxes` with
    /// 1-based `labels`. No boxes gives all-background targets.
    pub fn encode(&self, boxes: &[CornerBox], labels: &[usize]) -> Result<PriorTargets, CoreError> {
        match_priors(boxes, labels, &self.priors, self.threshold, &self.coder)
    }
}
