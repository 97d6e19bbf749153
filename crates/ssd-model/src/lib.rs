//! The SSD network on Burn: VGG16 base with L2Norm, extra layers and multibox heads (SSD300,
//! SSD512 and a small CPU preset), the MultiBox loss, post-processing to detections, PyTorch
//! weight import and native checkpoints.
//!
//! Today this crate holds only [`reduce`], reductions that stay exact on every backend (the
//! MultiBox loss will sum far more values than burn-wgpu sums correctly on Mesa's software
//! renderers); the network, loss and weights come with the ssd-model issue. Like every library
//! crate of `ssd`, it enables no Burn backend: callers pass a `Device`.

pub mod reduce;
