//! Detects objects in one image with any supported weights file and prints one JSON line, as
//! `ssd detect` does: `cargo run --release -p ssd-model --example detect -- WEIGHTS IMAGE`.
//!
//! WEIGHTS: a checkpoint of `ssd train` (`.bpk` or its folder) or an amdegroot, torchvision or
//! lufficc `.pth` with VOC's 21 outputs.

use ssd_model::Detector;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [weights, image_path] = args.as_slice() else {
        return Err("usage: detect WEIGHTS IMAGE".into());
    };
    let device = burn::tensor::Device::flex();
    let detector = Detector::load(weights, &device)?;
    let image = ssd_data::load_rgb(image_path.as_ref())?;
    let found = detector.detect(std::slice::from_ref(&image))?;
    let report = detector.describe(image_path, [image.width(), image.height()], &found[0]);
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
