//! Writes the synthetic VOC-format dataset: `cargo run -p ssd-data --release --example
//! write_synthetic -- <out dir> [train images] [test images] [seed]`.

use std::path::PathBuf;

use ssd_data::{SyntheticConfig, write_synthetic};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: write_synthetic <out dir> [train] [test] [seed]")?,
    );
    let mut config = SyntheticConfig::default();
    if let Some(n) = args.next() {
        config.train_images = n.parse()?;
    }
    if let Some(n) = args.next() {
        config.test_images = n.parse()?;
    }
    if let Some(n) = args.next() {
        config.seed = n.parse()?;
    }
    let start = std::time::Instant::now();
    let summary = write_synthetic(&out, &config)?;
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
