//! Checks a VOC or COCO dataset the way training does before its first step, and times it:
//! `cargo run -p ssd-data --release --example check_dataset -- ROOT[,ROOT...] [SET]
//! [--decode | --annotations-only]` (a ROOT may be a COCO `.json` file).
//!
//! Every annotation is parsed (opening the dataset), every image's header is read (complete,
//! and of the annotated size: `DetectionDataset::check_images`); with `--decode`, every image is also
//! decoded in full, on all cores, to compare the cost.

use std::path::PathBuf;
use std::time::Instant;

use ssd_core::parallel_map;
use ssd_data::{ClassList, DetectionDataset};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let roots: Vec<PathBuf> = args
        .first()
        .ok_or("usage: check_dataset ROOT[,ROOT...] [IMAGE_SET] [--decode]")?
        .split(',')
        .map(PathBuf::from)
        .collect();
    let set = args
        .get(1)
        .filter(|a| !a.starts_with("--"))
        .map_or("trainval", String::as_str);
    // A VOC root's class file, else VOC's 20 classes or a COCO file's own categories.
    let classes = match roots[0].join("classes.txt") {
        file if file.exists() => Some(ClassList::from_file(&file)?),
        _ => None,
    };
    let start = Instant::now();
    if args.iter().any(|a| a == "--annotations-only") {
        let dataset = DetectionDataset::open_annotations(&roots, set, classes)?;
        println!(
            "{}\nannotations parsed in {:.2?}",
            dataset.report(),
            start.elapsed()
        );
        return Ok(());
    }
    let voc = DetectionDataset::open(&roots, set, classes)?;
    println!(
        "{}\nopened (annotations parsed) in {:.2?}",
        voc.report(),
        start.elapsed()
    );
    let start = Instant::now();
    voc.check_images()?;
    println!(
        "{} image headers checked in {:.2?}",
        voc.len(),
        start.elapsed()
    );
    if args.iter().any(|a| a == "--decode") {
        let start = Instant::now();
        let indices: Vec<usize> = (0..voc.len()).collect();
        let decoded = parallel_map(&indices, |_, &i| voc.load(i).map(|_| ()));
        decoded.into_iter().collect::<Result<Vec<()>, _>>()?;
        println!("{} images decoded in {:.2?}", voc.len(), start.elapsed());
    }
    Ok(())
}
