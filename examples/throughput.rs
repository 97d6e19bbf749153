//! Throughput of SSD300 (21 classes, VGG16 widths) on one backend, and of the data loader: the
//! numbers `scripts/gpu-bench.sh` puts beside PyTorch's (`benches/peers/gpu_model.py`).
//!
//! ```text
//! throughput model --backend cuda [--train-batch 32] [--infer-batches 1,32] [--warmup 10]
//!            [--iters 30] [--phases] [--model ssd300]
//! throughput loader [--workers 4,8,16] [--images 256] [--batches 32]
//! ```
//!
//! `model` prints one JSON line per measurement: the training step at `--train-batch` (the step of
//! `ssd train`: forward, MultiBox loss with the positives counted on the host, backward, global
//! gradient norm, one read back of the loss parts and the norm, SGD with momentum, weight decay
//! and the Caffe bias group), then inference with post-processing (score 0.01, top 400 per
//! class, NMS 0.45, 200 per image; detections on the host) at batch 1 and 32 (`--infer-batches`). Each is timed
//! after `--warmup` iterations (autotuning happens there) over `--iters` iterations, wall clock
//! of the whole loop, so a backend's queued work is counted. `--phases` adds a training step cut
//! into phases with a device sync after each (forward, loss, backward, gradient norm and read,
//! optimizer): slower in total, it shows where the time goes. `--model` takes any `ssd train
//! --model` name (`small` for a dry run on a software GPU).
//!
//! `loader` writes synthetic VOC-sized (500x375) JPEGs to a temporary folder and times the
//! training loader alone (decode, SSD300 augmentation, matching to the 8,732 priors, batches of
//! 32) with each worker count, from the loader's start to its last batch.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use ssd_backend::Backend;
use ssd_data::{
    Augment, BatchPlan, ClassList, DetectionDataset, Prefetcher, SsdDataset, SyntheticConfig,
    TargetEncoder, write_synthetic,
};
use ssd_model::{MultiBoxLoss, PostProcessConfig, PostProcessor, Ssd, SsdConfig};
use ssd_train::{TrainConfig, build_optimizer, grad_norm, lr_schedule};

type Failure = Box<dyn std::error::Error>;

/// The value after `--name`, parsed, or `default`.
fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, Failure> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => {
            let value = args
                .get(i + 1)
                .ok_or_else(|| format!("{name} needs a value"))?;
            value
                .parse()
                .map_err(|_| format!("{name} {value}: not a valid value").into())
        }
    }
}

/// Deterministic values in [-1, 1).
fn unit(count: usize, salt: u64) -> Vec<f32> {
    (0..count as u64)
        .map(|i| {
            let h = ((i + salt).wrapping_mul(2_654_435_761)) % (1u64 << 32);
            (h as f64 / 4_294_967_296.0 * 2.0 - 1.0) as f32
        })
        .collect()
}

fn images(batch: usize, side: usize, device: &Device) -> Tensor<4> {
    let values: Vec<f32> = unit(batch * 3 * side * side, 1)
        .into_iter()
        .map(|v| v * 100.0)
        .collect();
    Tensor::from_data(TensorData::new(values, [batch, 3, side, side]), device)
}

/// Targets with about 20 positives per image (as `benches/peers/gpu_model.py`), and the
/// positives of each image counted on the host, as the loader does.
fn targets(
    batch: usize,
    priors: usize,
    device: &Device,
) -> (Tensor<2, Int>, Tensor<3>, Vec<usize>) {
    let labels: Vec<i64> = (0..batch * priors)
        .map(|i| if i % 431 == 0 { (i % 20 + 1) as i64 } else { 0 })
        .collect();
    let positives = labels
        .chunks(priors)
        .map(|row| row.iter().filter(|&&l| l > 0).count())
        .collect();
    let locations = unit(batch * priors * 4, 2);
    (
        Tensor::from_data(TensorData::new(labels, [batch, priors]), device),
        Tensor::from_data(TensorData::new(locations, [batch, priors, 4]), device),
        positives,
    )
}

/// Runs `step` `warmup` times, then `iters` times, and prints the rate.
fn measure(
    label: &str,
    backend: Backend,
    batch: usize,
    warmup: usize,
    iters: usize,
    mut step: impl FnMut() -> Result<(), Failure>,
) -> Result<(), Failure> {
    let start = Instant::now();
    for _ in 0..warmup {
        step()?;
    }
    let warm = start.elapsed();
    let start = Instant::now();
    for _ in 0..iters {
        step()?;
    }
    let took = start.elapsed();
    let per_step = took.as_secs_f64() / iters as f64;
    println!(
        "{{\"backend\":\"{backend}\",\"what\":\"{label}\",\"batch\":{batch},\"iters\":{iters},\
         \"ms_per_step\":{:.3},\"images_per_s\":{:.1},\"warmup_s\":{:.2}}}",
        per_step * 1e3,
        batch as f64 / per_step,
        warm.as_secs_f64()
    );
    Ok(())
}

struct TrainStep {
    model: Option<Ssd>,
    optimizer: burn::optim::ModuleOptimizer,
    config: TrainConfig,
    criterion: MultiBoxLoss,
    x: Tensor<4>,
    labels: Tensor<2, Int>,
    locations: Tensor<3>,
    positives: Vec<usize>,
    /// The loss of the last step.
    loss: f32,
}

impl TrainStep {
    /// One step; with `phases`, syncs the device after each phase and adds its time.
    fn run(&mut self, phases: Option<(&Device, &mut [Duration; 5])>) -> Result<(), Failure> {
        let mut clock = phases.map(|(d, t)| (d, t, Instant::now()));
        let mut lap = |i: usize| -> Result<(), Failure> {
            if let Some((device, times, last)) = clock.as_mut() {
                device.sync().map_err(|e| format!("device sync: {e:?}"))?;
                times[i] += last.elapsed();
                *last = Instant::now();
            }
            Ok(())
        };
        let model = self.model.take().ok_or("no model")?;
        let (loc, conf) = model.forward(self.x.clone());
        lap(0)?;
        let parts = self.criterion.forward_with_positives(
            loc,
            conf,
            self.labels.clone(),
            self.locations.clone(),
            &self.positives,
        );
        let loss = parts.total(1.0);
        let scalars = Tensor::cat(vec![loss.clone(), parts.loc, parts.conf], 0);
        lap(1)?;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        lap(2)?;
        let norm = grad_norm(&model, &grads).ok_or("no gradients")?;
        let values = Tensor::cat(vec![scalars, norm], 0).into_data();
        self.loss = values.iter::<f32>().next().unwrap_or(f32::NAN);
        lap(3)?;
        let mut schedule = lr_schedule(&self.config, 0);
        self.model = Some(self.optimizer.step(schedule.step(), model, grads));
        lap(4)?;
        Ok(())
    }
}

fn model(args: &[String]) -> Result<(), Failure> {
    let backend: Backend = flag(args, "--backend", Backend::Flex)?;
    let train_batch: usize = flag(args, "--train-batch", 32)?;
    let warmup: usize = flag(args, "--warmup", 10)?;
    let iters: usize = flag(args, "--iters", 30)?;
    let phases = args.iter().any(|a| a == "--phases");
    let infer_batches: String = flag(args, "--infer-batches", "1,32".to_owned())?;
    let name: String = flag(args, "--model", "ssd300".to_owned())?;
    let config = SsdConfig::named(&name, 21)?;
    let side = config.input_size();
    println!("{{\"model\":\"{name}\",\"side\":{side},\"classes\":21}}");
    let priors = config.priors.priors()?;
    let device = backend.device()?;
    let train_device = backend.autodiff_device()?;

    // lr 1e-4: at 1e-3 a fresh model on one fixed batch diverges within a few steps (timing only,
    // but a NaN run is not the work being compared); the same in the PyTorch peer.
    let train_config = TrainConfig {
        lr: 1e-4,
        ..TrainConfig::default()
    };
    let (labels, locations, positives) = targets(train_batch, priors.len(), &train_device);
    let mut step = TrainStep {
        model: Some(config.init(&train_device)?),
        optimizer: build_optimizer(&train_config),
        config: train_config,
        criterion: MultiBoxLoss::default(),
        x: images(train_batch, side, &train_device),
        labels,
        locations,
        positives,
        loss: f32::NAN,
    };
    measure("train_step", backend, train_batch, warmup, iters, || {
        step.run(None)
    })?;
    if phases {
        let mut times = [Duration::ZERO; 5];
        for _ in 0..iters {
            step.run(Some((&train_device, &mut times)))?;
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3 / iters as f64;
        println!(
            "{{\"backend\":\"{backend}\",\"what\":\"train_phases_ms\",\"batch\":{train_batch},\
             \"forward\":{:.3},\"loss\":{:.3},\"backward\":{:.3},\"norm_and_read\":{:.3},\
             \"optimizer\":{:.3}}}",
            ms(times[0]),
            ms(times[1]),
            ms(times[2]),
            ms(times[3]),
            ms(times[4])
        );
    }
    // JSON has no NaN: a loss that is not finite is `null`, with the reason.
    if step.loss.is_finite() {
        println!("{{\"backend\":\"{backend}\",\"final_loss\":{}}}", step.loss);
    } else {
        println!(
            "{{\"backend\":\"{backend}\",\"final_loss\":null,\"error\":\"the loss is {}\"}}",
            step.loss
        );
    }
    let trained = step.model.take().ok_or("no model")?;
    drop(step);

    let net = trained.valid();
    let post = PostProcessor::new(priors, PostProcessConfig::default());
    for batch in infer_batches.split(',') {
        let batch: usize = batch
            .trim()
            .parse()
            .map_err(|_| format!("--infer-batches {batch}: not a number"))?;
        let x = images(batch, side, &device);
        let sizes = vec![[500u32, 375u32]; batch];
        measure("inference", backend, batch, warmup, iters, || {
            let (loc, conf) = net.forward(x.clone());
            let detections = post.detect(loc, conf, &sizes)?;
            std::hint::black_box(detections);
            Ok(())
        })?;
    }
    Ok(())
}

fn loader(args: &[String]) -> Result<(), Failure> {
    let workers: String = flag(args, "--workers", "4,8,16".to_owned())?;
    let count: usize = flag(args, "--images", 256)?;
    let batches: u64 = flag(args, "--batches", 32)?;
    let root: PathBuf = std::env::temp_dir().join(format!("ssd-throughput-voc500x375-{count}"));
    if !root.join("classes.txt").exists() {
        let synthetic = SyntheticConfig {
            seed: 2016,
            train_images: count,
            test_images: 1,
            width: [500, 500],
            height: [375, 375],
            ..SyntheticConfig::default()
        };
        write_synthetic(&root, &synthetic)?;
    }
    let classes = ClassList::from_file(&root.join("classes.txt"))?;
    let voc = Arc::new(DetectionDataset::open(
        std::slice::from_ref(&root),
        "trainval",
        classes,
    )?);
    let model = SsdConfig::ssd300(21);
    for w in workers.split(',') {
        let w: usize = w
            .trim()
            .parse()
            .map_err(|_| format!("--workers {w}: not a number"))?;
        let dataset = SsdDataset::train(
            Arc::clone(&voc),
            Augment::ssd_train(300),
            TargetEncoder::new(&model.priors, 0.5)?,
            true,
            0,
        );
        let plan = BatchPlan {
            len: voc.len(),
            batch_size: 32,
            shuffle: Some(0),
            keep_partial: false,
        };
        // From the start: every batch is produced inside the timed span (workers run ahead,
        // so skipping "warm-up" batches would count prefetched ones as free).
        let start = Instant::now();
        let mut prefetcher = Prefetcher::new(dataset, plan, 0, batches, w);
        let mut images = 0;
        for _ in 0..batches {
            let (_, _, items) = prefetcher.next().ok_or("the loader stopped")??;
            images += items.len();
        }
        let took = start.elapsed().as_secs_f64();
        println!(
            "{{\"what\":\"loader\",\"workers\":{w},\"images\":{images},\"images_per_s\":{:.1}}}",
            images as f64 / took
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("model") => model(&args),
        Some("loader") => loader(&args),
        _ => Err("usage: throughput model --backend NAME [--train-batch 32] \
                  [--infer-batches 1,32] [--warmup 10] [--iters 30] [--phases] | throughput loader [--workers 4,8,16] [--images 256] \
                  [--batches 32]"
            .into()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, the error's message (a bench script logs it as the backend's reason).
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
