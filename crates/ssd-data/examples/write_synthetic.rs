//! Writes the synthetic dataset: `cargo run -p ssd-data --release --example write_synthetic --
//! <out dir> [train images] [test images] [seed] [--format voc|coco]` (VOC by default; `coco`
//! writes the COCO layout, see `ssd_data::SyntheticFormat`).

use std::path::PathBuf;

use ssd_data::{SyntheticConfig, SyntheticFormat, write_synthetic_as};

const USAGE: &str = "usage: write_synthetic <out dir> [train] [test] [seed] [--format voc|coco]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let mut format = SyntheticFormat::Voc;
    let mut positional = Vec::new();
    let mut args = all.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--format" => {
                format = match args.next().map(String::as_str) {
                    Some("voc") => SyntheticFormat::Voc,
                    Some("coco") => SyntheticFormat::Coco,
                    _ => return Err(USAGE.into()),
                }
            }
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    let out = PathBuf::from(positional.next().ok_or(USAGE)?);
    let mut config = SyntheticConfig::default();
    if let Some(n) = positional.next() {
        config.train_images = n.parse()?;
    }
    if let Some(n) = positional.next() {
        config.test_images = n.parse()?;
    }
    if let Some(n) = positional.next() {
        config.seed = n.parse()?;
    }
    let start = std::time::Instant::now();
    let summary = write_synthetic_as(&out, &config, format)?;
    println!(
        "wrote {} images, {} objects ({} truncated, {} difficult) to {} in {:.2?}",
        summary.images,
        summary.objects,
        summary.truncated,
        summary.difficult,
        summary.root.display(),
        start.elapsed()
    );
    Ok(())
}
