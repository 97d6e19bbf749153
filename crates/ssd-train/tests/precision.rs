//! `precision = fp64`: a run computes in float64 on Flex (weights, gradients, optimizer state,
//! the dumped weights), and a device already computing in another float type is refused with an
//! error naming the setting. Its own test binary: a device's float type is set once per process.

use burn::tensor::Device;
use ssd_train::{Quiet, TrainConfig, TrainError, TrainPrecision, Trainer};

mod common;
use common::{scratch, settings, tiny_config, tiny_data};

#[test]
fn fp64_trains_in_float64_and_a_device_in_use_keeps_its_type() {
    let dir = scratch("fp64");
    let data = dir.join("data");
    tiny_data(&data, 16, 2);
    let config = TrainConfig {
        precision: TrainPrecision::Fp64,
        ..tiny_config(&data, &dir.join("results"), 2)
    };
    let mut trainer = Trainer::new(settings(config.clone(), None)).expect("an fp64 run on Flex");
    let dump = dir.join("dump");
    trainer.dump_batches(&dump).expect("dump");
    let outcome = trainer.run(&mut Quiet).expect("trains");
    drop(trainer);
    assert_eq!(outcome.iterations, 2);
    assert_eq!(
        Device::flex().settings().float_dtype,
        burn::tensor::FloatDType::F64
    );
    let bytes = std::fs::read(dump.join("weights_000002.safetensors")).expect("weights");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    for (name, view) in file.tensors() {
        assert_eq!(view.dtype(), safetensors::Dtype::F64, "{name}");
    }
    // The Flex device of this process now computes in float64: a float32 run is refused.
    let fp32 = TrainConfig {
        precision: TrainPrecision::Fp32,
        model_save_name: "fp32".to_owned(),
        ..config
    };
    match Trainer::new(settings(fp32, None)) {
        Err(
            e @ TrainError::Setting {
                name: "precision", ..
            },
        ) => {
            assert!(e.to_string().contains("fp32"), "{e}");
        }
        other => panic!("expected a precision error, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
