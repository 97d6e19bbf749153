//! PASCAL VOC detection metrics as the devkit computes them: VOC07 11-point and VOC2010+ area AP,
//! difficult handling, devkit result files and per-class tables.
//!
//! Not implemented yet: this crate is filled by the ssd-eval issue. It exports nothing today.
