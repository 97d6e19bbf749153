//! The SSD network on Burn: VGG16 base with L2Norm, extra layers and multibox heads (SSD300,
//! SSD512 and a small CPU preset), the MultiBox loss, post-processing to detections, PyTorch
//! weight import and native checkpoints.
//!
//! Not implemented yet: this crate is filled by the ssd-model issue. It exports nothing today.
