//! Writes a preset with random weights and the 20 VOC classes as a checkpoint, for load tests
//! and benchmarks where what the network detects does not matter (a forward costs the same):
//! `cargo run --release -p ssd-model --example random_weights -- PRESET OUT.bpk`.

use ssd_data::ClassList;
use ssd_model::{CheckpointInfo, SsdConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [preset, out] = args.as_slice() else {
        return Err("usage: random_weights PRESET OUT.bpk".into());
    };
    let classes = ClassList::voc();
    let config = SsdConfig::named(preset, classes.num_classes_with_background())?;
    let model = config.init(&burn::tensor::Device::flex())?;
    let info = CheckpointInfo {
        config,
        classes,
        iteration: None,
    };
    model.save_trained(out.as_ref(), &info)?;
    println!("wrote {out}: {preset} with random weights, VOC classes");
    Ok(())
}
