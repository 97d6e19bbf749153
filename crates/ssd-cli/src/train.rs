//! `ssd train`: the SSD training loop.
//!
//! The Caffe recipe by default: SGD with momentum 0.9, weight decay 5e-4, biases at twice the
//! learning rate without weight decay, step decay (x0.1 at 80k and 100k of 120k iterations), an
//! optional linear warmup. It runs for as many epochs as the iteration count needs.
//!
//! Checkpoints (`results/weights/<name>_<iteration>/`: `model.bpk`, `optimizer.bpk`, `train.json`)
//! are written into a temporary folder and renamed into place, so a kill at any moment leaves
//! only complete checkpoints. A resumed run restores the weights, the optimizer's momentum, the
//! iteration and the settings; the learning rate and the data order follow from the iteration and
//! the seed, so `N + N` iterations with a resume in between give the weights of `2N` in one go.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use burn::data::dataloader::batcher::Batcher;
use burn::module::{Module, ModuleVisitor, Param, ParamGroup};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use ssd_data::{Augment, ClassList, SsdBatcher, SsdDataset, TargetEncoder, VocDataset};
use ssd_model::{LoadMode, MultiBoxLoss, Ssd, SsdConfig};

use crate::backend::Backend;
use crate::batches::{BatchPlan, Prefetcher};
use crate::model_io::{MODEL_FILE, checkpoint_meta, model_config, model_file};
use crate::render::{LossPoint, plot_losses};

/// Every training setting. The config file (`--config`, JSON or TOML) uses the flag names
/// (`batch-size = 32`); flags given on the command line override it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct TrainConfig {
    /// VOC roots (`VOC2007`, `VOC2012`).
    pub dataroot: Vec<PathBuf>,
    /// Image set (`ImageSets/Main/<name>.txt`).
    pub datanames: String,
    /// Drop difficult objects from the training targets.
    pub discard_difficult: bool,
    /// The SSD augmentation (else resize only).
    pub use_augment: bool,
    /// Largest zoom-out canvas of the augmentation, as a multiple of the image side (the
    /// paper's 4; 1 turns zoom-out off).
    pub expand_ratio: f64,
    /// Images per iteration.
    pub batch_size: usize,
    /// Iterations to train to (a resumed run continues up to this count).
    pub iterations: u64,
    /// Base learning rate.
    pub lr: f64,
    /// Iterations at which the learning rate is multiplied by `gamma`.
    pub lr_decay: Vec<u64>,
    /// Step decay factor.
    pub gamma: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay (not on biases with `caffe-bias`).
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value (0: off).
    pub clip_grad: f64,
    /// IoU for a prior to match a ground truth.
    pub overlap_threshold: f64,
    /// Hard negatives per positive.
    pub negpos_ratio: f64,
    /// Weight of the localisation loss.
    pub alpha: f64,
    /// ImageNet VGG16 backbone `.pth` (torchvision `vgg16` or amdegroot's `vgg16_reducedfc.pth`).
    pub pretrained_model: Option<PathBuf>,
    /// `ssd300`, `ssd512`, `small` or a JSON model configuration.
    pub model: String,
    /// Class list file, one name per line (default: the 20 VOC classes).
    pub classes: Option<PathBuf>,
    /// `flex`, `tch` or `wgpu` (default: the first compiled in).
    pub backend: Option<String>,
    /// Device indices (one; data-parallel training is not supported yet).
    pub devices: Vec<usize>,
    /// Data loading threads.
    pub workers: usize,
    /// Seed of the initialisation, the data order and the augmentation.
    pub seed: u64,
    /// Linear learning-rate warmup over this many iterations (0: none).
    pub warmup: u64,
    /// Biases at twice the learning rate and without weight decay (Caffe's `lr_mult: 2`,
    /// `decay_mult: 0`).
    pub caffe_bias: bool,
    /// Save a checkpoint every this many iterations (and at the end).
    pub save_every: u64,
    /// Print a log line every this many iterations.
    pub log_every: u64,
    /// Name of the checkpoints and the loss files (default: the model name).
    pub model_save_name: Option<String>,
    /// Output folder (`weights/`, `loss/`).
    pub results: PathBuf,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            dataroot: Vec::new(),
            datanames: "trainval".to_owned(),
            discard_difficult: false,
            use_augment: true,
            expand_ratio: 4.0,
            batch_size: 32,
            iterations: 120_000,
            lr: 1e-3,
            lr_decay: vec![80_000, 100_000],
            gamma: 0.1,
            momentum: 0.9,
            weight_decay: 5e-4,
            clip_grad: 0.0,
            overlap_threshold: 0.5,
            negpos_ratio: 3.0,
            alpha: 1.0,
            pretrained_model: None,
            model: "ssd300".to_owned(),
            classes: None,
            backend: None,
            devices: Vec::new(),
            workers: 4,
            seed: 0,
            warmup: 0,
            caffe_bias: true,
            save_every: 5_000,
            log_every: 10,
            model_save_name: None,
            results: PathBuf::from("results"),
        }
    }
}

impl TrainConfig {
    /// Reads a JSON (`.json`) or TOML (other extensions) config file over `self`: keys in the file
    /// replace the current values.
    pub fn merge_file(self, path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        // Start from the current values, then apply the file's keys.
        let mut value = serde_json::to_value(&self).context("serialising the current settings")?;
        let file: serde_json::Value = if path.extension().and_then(|e| e.to_str()) == Some("json") {
            serde_json::from_str(&text)
                .with_context(|| format!("config file {}", path.display()))?
        } else {
            let t: toml::Value =
                toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?;
            serde_json::to_value(t)?
        };
        let Some(entries) = file.as_object() else {
            bail!(
                "config file {}: expected a table of settings",
                path.display()
            );
        };
        if let Some(object) = value.as_object_mut() {
            for (k, v) in entries {
                object.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(value).with_context(|| format!("config file {}", path.display()))
    }

    /// The name of checkpoints and loss files.
    pub fn save_name(&self) -> String {
        self.model_save_name.clone().unwrap_or_else(|| {
            Path::new(&self.model)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("ssd")
                .to_owned()
        })
    }

    /// Learning rate of iteration `i` (0-based) for the base group: step decay times the warmup
    /// ramp `(i + 1) / warmup`.
    pub fn lr_at(&self, i: u64) -> f64 {
        let decays = self.lr_decay.iter().filter(|&&s| i >= s).count();
        let warm = if self.warmup > 0 && i < self.warmup {
            (i + 1) as f64 / self.warmup as f64
        } else {
            1.0
        };
        self.lr * self.gamma.powi(decays as i32) * warm
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.dataroot.is_empty() {
            bail!("--dataroot is required (one or more VOC roots, comma-separated)");
        }
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            bail!("--lr must be a positive number, got {}", self.lr);
        }
        if !(0.0..1.0).contains(&self.momentum) {
            bail!("--momentum must be in [0, 1), got {}", self.momentum);
        }
        if self.weight_decay < 0.0 || self.clip_grad < 0.0 {
            bail!("--weight-decay and --clip-grad cannot be negative");
        }
        if !(self.overlap_threshold > 0.0 && self.overlap_threshold <= 1.0) {
            bail!(
                "--overlap-threshold must be in (0, 1], got {}",
                self.overlap_threshold
            );
        }
        if self.devices.len() > 1 {
            bail!(
                "--devices {:?}: data-parallel training over several devices is not supported \
                 by this version of ssd; train on one device (e.g. --devices 0)",
                self.devices
            );
        }
        if self.devices.iter().any(|&d| d != 0) {
            bail!(
                "--devices {:?}: this version trains on the backend's first device only \
                 (--devices 0)",
                self.devices
            );
        }
        if self.save_every == 0 || self.log_every == 0 {
            bail!("--save-every and --log-every must be at least 1");
        }
        Ok(())
    }
}

/// What `train.json` in a checkpoint holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    /// Iterations done.
    pub iteration: u64,
    /// The settings of the run.
    pub config: TrainConfig,
    /// The network's configuration.
    pub model: SsdConfig,
    /// Class names.
    pub classes: Vec<String>,
}

/// The state file inside a checkpoint folder.
pub const STATE_FILE: &str = "train.json";
/// The optimizer file inside a checkpoint folder.
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";

/// How a run ended.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The last checkpoint folder.
    pub checkpoint: PathBuf,
    /// The model file to use for detection (`results/weights/<name>.bpk`).
    pub model: PathBuf,
    /// Iterations done.
    pub iterations: u64,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
    /// The loss curve PNG.
    pub loss_plot: PathBuf,
    /// The loss CSV.
    pub loss_csv: PathBuf,
    /// Mean total loss over the last logged window.
    pub final_loss: f64,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static INTERRUPTS: AtomicU32 = AtomicU32::new(0);

/// Installs the Ctrl-C handler (once per process): the first Ctrl-C asks the training loop to save
/// a checkpoint and stop, a second one exits at once.
pub fn install_interrupt_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTS.fetch_add(1, Ordering::SeqCst) == 0 {
                INTERRUPTED.store(true, Ordering::SeqCst);
                eprintln!(
                    "\ninterrupted: saving a checkpoint after this iteration (Ctrl-C again to quit now)"
                );
            } else {
                std::process::exit(130);
            }
        });
    });
}

/// Trains with `config`, from scratch or from the checkpoint `resume`.
pub fn train(config: TrainConfig, resume: Option<&Path>) -> anyhow::Result<TrainOutcome> {
    let resumed = resume.map(read_state).transpose()?;
    config.check()?;
    let backend = match &config.backend {
        Some(name) => name.parse::<Backend>()?,
        None => Backend::default_compiled().context("no backend compiled into this binary")?,
    };
    let device = backend.autodiff_device()?;
    let classes = match &config.classes {
        Some(path) => ClassList::from_file(path)?,
        None => ClassList::voc(),
    };
    let voc = Arc::new(VocDataset::open(
        &config.dataroot,
        &config.datanames,
        classes.clone(),
    )?);
    if voc.is_empty() {
        bail!("the image set `{}` is empty", config.datanames);
    }
    println!("{}", voc.report());
    let model_cfg = match &resumed {
        Some((_, state)) => state.model.clone(),
        None => model_config(&config.model, classes.num_classes_with_background())?,
    };
    if model_cfg.num_classes != classes.num_classes_with_background() {
        bail!(
            "the model predicts {} classes (with background) but the class list has {} names",
            model_cfg.num_classes,
            classes.len()
        );
    }
    let name = config.save_name();
    let weights_dir = config.results.join("weights");
    std::fs::create_dir_all(&weights_dir)
        .with_context(|| format!("cannot create {}", weights_dir.display()))?;
    remove_stale_partials(&weights_dir);

    device.seed(config.seed);
    let mut model = model_cfg.init(&device)?;
    let mut optimizer = build_optimizer(&config);
    let mut start = 0;
    let mut last_checkpoint: Option<PathBuf> = None;
    let mut last_saved = 0;
    // Writes `results/weights/<name>_<done>/`.
    let save_at = |done: u64, model: &Ssd, optimizer: &ModuleOptimizer| {
        let state = TrainState {
            iteration: done,
            config: config.clone(),
            model: model_cfg.clone(),
            classes: classes.names().to_vec(),
        };
        let dir = weights_dir.join(format!("{name}_{done}"));
        save_checkpoint(&dir, model, optimizer, &state, &classes).map(|()| dir)
    };
    if let Some((dir, state)) = &resumed {
        model = model
            .load_checkpoint(&dir.join(MODEL_FILE))
            .with_context(|| format!("resuming from {}", dir.display()))?;
        optimizer = optimizer
            .load(dir.join(OPTIMIZER_FILE))
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", dir.join(OPTIMIZER_FILE).display()))?;
        start = state.iteration;
        last_checkpoint = Some(dir.clone());
        println!("resumed from {} at iteration {start}", dir.display());
    } else if let Some(path) = &config.pretrained_model {
        let (loaded, report) = model.load_pytorch(path, LoadMode::Backbone)?;
        model = loaded;
        println!(
            "backbone from {} ({:?} layout, {} tensors)",
            path.display(),
            report.layout,
            report.loaded.len()
        );
    }
    if start >= config.iterations {
        bail!(
            "nothing to do: the checkpoint is at iteration {start} and --iterations is {}",
            config.iterations
        );
    }

    let size = model_cfg.input_size() as u32;
    let augment = if config.use_augment {
        let mut a = Augment::ssd_train(size);
        if let Some(expand) = a.expand.as_mut() {
            expand.max_ratio = config.expand_ratio;
        }
        if config.expand_ratio <= 1.0 {
            a.expand = None;
        }
        a
    } else {
        Augment::eval(size)
    };
    let encoder = TargetEncoder::new(&model_cfg.priors, config.overlap_threshold as f32)?;
    let dataset = SsdDataset::train(
        Arc::clone(&voc),
        augment,
        encoder,
        !config.discard_difficult,
        config.seed,
    );
    let plan = BatchPlan {
        len: voc.len(),
        batch_size: config.batch_size,
        shuffle: Some(config.seed),
        keep_partial: false,
    };
    println!(
        "training {name} ({}) on {backend} from iteration {start} to {}: {} images, {} iterations \
         per epoch, batch {}",
        config.model,
        config.iterations,
        voc.len(),
        plan.batches_per_epoch(),
        config.batch_size
    );
    let batches = Prefetcher::new(dataset, plan, start, config.iterations, config.workers);

    let loss_dir = config.results.join("loss");
    std::fs::create_dir_all(&loss_dir)
        .with_context(|| format!("cannot create {}", loss_dir.display()))?;
    let loss_csv = loss_dir.join(format!("{name}.csv"));
    let loss_plot = loss_dir.join(format!("{name}.png"));
    let mut history = read_loss_csv(&loss_csv, start)?;
    write_loss_csv(&loss_csv, &history)?;

    install_interrupt_handler();
    let bar = progress_bar(start, config.iterations);
    let criterion = MultiBoxLoss {
        neg_pos_ratio: config.negpos_ratio,
    };
    let bias = bias_group();
    let mut window_start = Instant::now();
    let mut window_images = 0usize;
    let mut window: Vec<LossPoint> = Vec::new();
    let mut last_plot = Instant::now();
    let mut interrupted = false;
    let mut done = start;
    let mut final_loss = f64::NAN;
    for next in batches {
        let (k, _epoch, items) = match next {
            Ok(batch) => batch,
            Err(e) => {
                // A file that went bad after the start (every annotation and image was checked
                // then): keep the progress before reporting it.
                bar.finish_and_clear();
                let saved = if done > start && last_saved != done {
                    Some(save_at(done, &model, &optimizer)?)
                } else {
                    last_checkpoint.clone()
                };
                let saved = saved.map_or("none".to_owned(), |p| p.display().to_string());
                return Err(anyhow::Error::new(e).context(format!(
                    "training stopped at iteration {done}; checkpoint: {saved}"
                )));
            }
        };
        let n = items.len();
        let batch = SsdBatcher.batch(items, &device);
        let (Some(labels), Some(locations)) = (batch.labels, batch.locations) else {
            bail!("internal error: a training batch without targets");
        };
        let (loc, conf) = model.forward(batch.images);
        let parts = criterion.forward(loc, conf, labels, locations);
        let loss = parts.total(config.alpha);
        let values = scalars(&[loss.clone(), parts.loc.clone(), parts.conf.clone()]);
        let (total, loc_v, conf_v) = (values[0], values[1], values[2]);
        let stop = |what: &str, value: f64| -> anyhow::Error {
            anyhow::anyhow!(
                "{what} is {value} at iteration {} (loc {loc_v}, conf {conf_v}); training stopped \
                 and no checkpoint was written after it; last good checkpoint: {}. Try a lower --lr, --warmup or \
                 --clip-grad",
                k + 1,
                last_checkpoint
                    .as_ref()
                    .map_or("none".to_owned(), |p| p.display().to_string())
            )
        };
        if !total.is_finite() {
            bar.finish_and_clear();
            return Err(stop("the loss", total));
        }
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        let norm = grad_norm(&model, &grads);
        if !norm.is_finite() {
            bar.finish_and_clear();
            return Err(stop("the gradient norm", norm));
        }
        if config.clip_grad > 0.0 && norm > config.clip_grad {
            scale_grads(&model, &mut grads, config.clip_grad / norm);
        }
        let lr = config.lr_at(k);
        let mut schedule = ModuleLrScheduler::new(lr);
        if config.caffe_bias {
            schedule = schedule.with_group(bias.clone(), 2.0 * lr);
        }
        model = optimizer.step(schedule.step(), model, grads);
        done = k + 1;
        window_images += n;
        let point = LossPoint {
            iteration: done,
            loss: total,
            loc: loc_v,
            conf: conf_v,
            lr,
            grad_norm: norm,
        };
        history.push(point);
        window.push(point);
        let elapsed = window_start.elapsed().as_secs_f64().max(1e-9);
        let rate = window_images as f64 / elapsed;
        bar.set_position(done);
        bar.set_message(format!(
            "loss {total:.3} (loc {loc_v:.3} conf {conf_v:.3}) lr {lr:.2e} {rate:.1} img/s"
        ));
        interrupted = INTERRUPTED.load(Ordering::SeqCst);
        let last = done == config.iterations || interrupted;
        if done % config.log_every == 0 || last {
            let mean = |f: fn(&LossPoint) -> f64| {
                window.iter().map(f).sum::<f64>() / window.len().max(1) as f64
            };
            final_loss = mean(|p| p.loss);
            let remaining = (config.iterations - done) as f64 * elapsed / window.len() as f64;
            bar.suspend(|| {
                println!(
                    "iter {done}/{} loss {:.4} (loc {:.4} conf {:.4}) grad norm {:.2} lr {lr:.2e} \
                     {rate:.1} img/s eta {}",
                    config.iterations,
                    final_loss,
                    mean(|p| p.loc),
                    mean(|p| p.conf),
                    mean(|p| p.grad_norm),
                    format_duration(Duration::from_secs_f64(remaining))
                );
            });
            append_loss_csv(&loss_csv, &window)?;
            window.clear();
            window_images = 0;
            window_start = Instant::now();
            if last_plot.elapsed() > Duration::from_secs(5) || last {
                plot_losses(&history, &format!("{name}: training loss"), &loss_plot)?;
                last_plot = Instant::now();
            }
        }
        if done % config.save_every == 0 || last {
            let dir = save_at(done, &model, &optimizer)?;
            bar.suspend(|| println!("checkpoint {}", dir.display()));
            last_checkpoint = Some(dir);
            last_saved = done;
        }
        if interrupted {
            break;
        }
    }
    bar.finish_and_clear();
    let checkpoint = last_checkpoint.context("training produced no checkpoint")?;
    if done < config.iterations && !interrupted {
        bail!(
            "the data loader stopped at iteration {done} of {}",
            config.iterations
        );
    }
    let final_model = weights_dir.join(format!("{name}.bpk"));
    let meta = checkpoint_meta(&model_cfg, &classes, done)?;
    model.valid().save_checkpoint_with(&final_model, &meta)?;
    Ok(TrainOutcome {
        checkpoint,
        model: final_model,
        iterations: done,
        interrupted,
        loss_plot,
        loss_csv,
        final_loss,
    })
}

/// SGD with momentum (dampening 0, as PyTorch and Caffe) and weight decay; with `caffe-bias`,
/// biases in a group of their own without weight decay (their doubled learning rate is set per
/// step).
fn build_optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let momentum = (config.momentum > 0.0).then(|| {
        MomentumConfig::new()
            .with_momentum(config.momentum)
            .with_dampening(0.0)
    });
    let decay =
        (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32));
    let optimizer = SgdConfig::new()
        .with_momentum(momentum.clone())
        .with_weight_decay(decay)
        .init();
    if config.caffe_bias {
        let biases = SgdConfig::new().with_momentum(momentum).build();
        optimizer.with_group(bias_group(), biases, None)
    } else {
        optimizer
    }
}

/// Every conv bias (`....bias`), the parameters Caffe trains with `lr_mult: 2, decay_mult: 0`.
fn bias_group() -> ParamGroup {
    ParamGroup::from_regex(r"(^|\.)bias$").expect("a valid regex")
}

/// Reads f32 scalars (shape `[1]` tensors) in one go.
fn scalars(tensors: &[Tensor<1>]) -> Vec<f64> {
    let all = Tensor::cat(tensors.to_vec(), 0);
    all.into_data().iter::<f32>().map(f64::from).collect()
}

struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.powi_scalar(2).sum();
            self.sum = Some(match self.sum.take() {
                Some(acc) => acc.add(s),
                None => s,
            });
        }
    }
}

/// The global L2 norm of the gradients (what `torch.nn.utils.clip_grad_norm_` computes).
fn grad_norm(model: &Ssd, grads: &GradientsParams) -> f64 {
    let mut visitor = SquaredNorm { grads, sum: None };
    model.visit(&mut visitor);
    visitor.sum.map_or(0.0, |s| scalars(&[s])[0]).sqrt()
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
        }
    }
}

fn scale_grads(model: &Ssd, grads: &mut GradientsParams, factor: f64) {
    model.visit(&mut Scale { grads, factor });
}

fn progress_bar(start: u64, end: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(end),
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
        )
        .expect("a valid template"),
    );
    bar.set_position(start);
    bar.reset_eta();
    bar
}

/// `1h02m`, `3m05s`, `12s`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Writes a checkpoint folder atomically: everything into a hidden partial folder, each file
/// flushed, then one rename.
fn save_checkpoint(
    dir: &Path,
    model: &Ssd,
    optimizer: &ModuleOptimizer,
    state: &TrainState,
    classes: &ClassList,
) -> anyhow::Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("checkpoint");
    let partial = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("cannot remove {}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let meta = checkpoint_meta(&state.model, classes, state.iteration)?;
    // `valid()` also folds the batch norms' pending running-statistics update into the shared
    // state (Burn keeps the last one per thread until read); saving without it would lose it.
    model
        .valid()
        .save_checkpoint_with(&partial.join(MODEL_FILE), &meta)?;
    if let Some(ms) = std::env::var("SSD_TEST_CHECKPOINT_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        // For the kill-during-write test only: holds the checkpoint half written for a while.
        std::thread::sleep(Duration::from_millis(ms));
    }
    let opt_path = partial.join(OPTIMIZER_FILE);
    optimizer
        .save(&opt_path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e:?}", opt_path.display()))?;
    let state_path = partial.join(STATE_FILE);
    let mut file = std::fs::File::create(&state_path)
        .with_context(|| format!("cannot write {}", state_path.display()))?;
    file.write_all(serde_json::to_string_pretty(state)?.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", state_path.display()))?;
    std::fs::File::open(&opt_path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot flush {}", opt_path.display()))?;
    if dir.exists() {
        // Same iteration saved again (a resumed run): move the old one aside first.
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        std::fs::rename(dir, &old).with_context(|| format!("cannot replace {}", dir.display()))?;
        std::fs::rename(&partial, dir)
            .with_context(|| format!("cannot write {}", dir.display()))?;
        let _ = std::fs::remove_dir_all(old);
    } else {
        std::fs::rename(&partial, dir)
            .with_context(|| format!("cannot write {}", dir.display()))?;
    }
    let _ = std::fs::File::open(parent).and_then(|f| f.sync_all());
    Ok(())
}

/// Partial checkpoint folders left by a killed run.
fn remove_stale_partials(weights_dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(weights_dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && (name.contains(".partial-") || name.contains(".old-")) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Reads `train.json` of a checkpoint folder (or of the folder holding a given `model.bpk`).
pub fn read_state(path: &Path) -> anyhow::Result<(PathBuf, TrainState)> {
    let dir = if path.is_dir() {
        path.to_owned()
    } else {
        model_file(path)
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default()
    };
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path).with_context(|| {
        format!(
            "--resume {}: cannot read {} (resume takes a checkpoint folder written by `ssd train`)",
            path.display(),
            state_path.display()
        )
    })?;
    let state: TrainState = serde_json::from_str(&text)
        .with_context(|| format!("--resume: bad {}", state_path.display()))?;
    Ok((dir, state))
}

const CSV_HEADER: &str = "iteration,loss,loc,conf,lr,grad_norm";

fn read_loss_csv(path: &Path, up_to: u64) -> anyhow::Result<Vec<LossPoint>> {
    if up_to == 0 || !path.exists() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // A run killed while appending leaves a last line without its newline: not a row.
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    let mut out = Vec::new();
    for (n, line) in complete.lines().enumerate().skip(1) {
        let f: Vec<f64> = line
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("{}:{}: not a loss row", path.display(), n + 1))?;
        if f.len() != 6 {
            bail!("{}:{}: expected 6 fields", path.display(), n + 1);
        }
        let point = LossPoint {
            iteration: f[0] as u64,
            loss: f[1],
            loc: f[2],
            conf: f[3],
            lr: f[4],
            grad_norm: f[5],
        };
        if point.iteration <= up_to {
            out.push(point);
        }
    }
    Ok(out)
}

fn write_loss_csv(path: &Path, points: &[LossPoint]) -> anyhow::Result<()> {
    let tmp = path.with_extension("csv.partial");
    let mut text = format!("{CSV_HEADER}\n");
    for p in points {
        text.push_str(&csv_row(p));
    }
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

fn append_loss_csv(path: &Path, points: &[LossPoint]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("cannot append to {}", path.display()))?;
    let text: String = points.iter().map(csv_row).collect();
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot append to {}", path.display()))
}

fn csv_row(p: &LossPoint) -> String {
    format!(
        "{},{},{},{},{},{}\n",
        p.iteration, p.loss, p.loc, p.conf, p.lr, p.grad_norm
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_and_decays() {
        let config = TrainConfig {
            lr: 1e-3,
            lr_decay: vec![10, 20],
            warmup: 4,
            ..TrainConfig::default()
        };
        assert!((config.lr_at(0) - 0.25e-3).abs() < 1e-12);
        assert!((config.lr_at(3) - 1e-3).abs() < 1e-12);
        assert!((config.lr_at(9) - 1e-3).abs() < 1e-12);
        assert!((config.lr_at(10) - 1e-4).abs() < 1e-12);
        assert!((config.lr_at(25) - 1e-5).abs() < 1e-12);
    }

    /// One SGD step with the Caffe groups: a bias moves by `2 lr g` (no decay), a weight by
    /// `lr (g + wd w)`; with `caffe-bias` off both by `lr (g + wd w)`.
    #[test]
    fn biases_get_twice_the_learning_rate_and_no_weight_decay() {
        let model_json = include_str!("../../../tests/fixtures/tiny_model.json");
        let model_cfg: SsdConfig = serde_json::from_str(model_json).expect("tiny model");
        let device = burn::tensor::Device::flex().autodiff();
        for caffe_bias in [true, false] {
            let config = TrainConfig {
                momentum: 0.0,
                weight_decay: 0.1,
                caffe_bias,
                ..TrainConfig::default()
            };
            device.seed(1);
            let model = model_cfg.init(&device).expect("model");
            let input = Tensor::<4>::ones([1, 3, 64, 64], &device);
            let (loc, conf) = model.forward(input);
            let loss = loc.sum().add(conf.powi_scalar(2).sum());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let conv = &model.conf[0];
            let bias = conv.bias.as_ref().expect("bias");
            let values = |t: Tensor<1>| t.into_data().iter::<f32>().collect::<Vec<f32>>();
            let (w0, b0) = (values(conv.weight.val().flatten(0, 3)), values(bias.val()));
            let gw = values(grads.get::<4>(conv.weight.id).expect("grad").flatten(0, 3));
            let gb = values(grads.get::<1>(bias.id).expect("grad"));
            let mut optimizer = build_optimizer(&config);
            let lr = 0.01;
            let mut schedule = ModuleLrScheduler::new(lr);
            if caffe_bias {
                schedule = schedule.with_group(bias_group(), 2.0 * lr);
            }
            let model = optimizer.step(schedule.step(), model, grads);
            let conv = &model.conf[0];
            let w1 = values(conv.weight.val().flatten(0, 3));
            let b1 = values(conv.bias.as_ref().expect("bias").val());
            for i in 0..gb.len() {
                let expected = if caffe_bias {
                    b0[i] - 2.0 * lr as f32 * gb[i]
                } else {
                    b0[i] - lr as f32 * (gb[i] + 0.1 * b0[i])
                };
                assert!(
                    (b1[i] - expected).abs() < 1e-6,
                    "bias {i}: {} vs {expected}",
                    b1[i]
                );
            }
            for i in (0..gw.len()).step_by(97) {
                let expected = w0[i] - lr as f32 * (gw[i] + 0.1 * w0[i]);
                assert!(
                    (w1[i] - expected).abs() < 1e-6,
                    "weight {i}: {} vs {expected}",
                    w1[i]
                );
            }
            assert!(
                gb.iter().any(|g| g.abs() > 1e-3),
                "the test has gradients to see"
            );
        }
    }

    #[test]
    fn clipping_scales_every_gradient() {
        let model_json = include_str!("../../../tests/fixtures/tiny_model.json");
        let model_cfg: SsdConfig = serde_json::from_str(model_json).expect("tiny model");
        let device = burn::tensor::Device::flex().autodiff();
        let model = model_cfg.init(&device).expect("model");
        let (loc, conf) = model.forward(Tensor::<4>::ones([1, 3, 64, 64], &device));
        let loss = loc.sum().add(conf.powi_scalar(2).sum());
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        let before = grad_norm(&model, &grads);
        scale_grads(&model, &mut grads, 0.25);
        let after = grad_norm(&model, &grads);
        assert!(before > 0.0);
        assert!(
            (after - 0.25 * before).abs() < 1e-4 * before,
            "{before} -> {after}"
        );
    }

    #[test]
    fn loss_log_round_trips_and_a_torn_last_line_is_dropped() {
        let dir = std::env::temp_dir().join(format!("ssd-loss-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("loss.csv");
        let points: Vec<LossPoint> = (1..=4)
            .map(|i| LossPoint {
                iteration: i,
                loss: 1.0 / i as f64,
                loc: 0.25,
                conf: 0.5,
                lr: 1e-3,
                grad_norm: 2.5,
            })
            .collect();
        write_loss_csv(&path, &points[..2]).expect("write");
        append_loss_csv(&path, &points[2..]).expect("append");
        assert_eq!(read_loss_csv(&path, 10).expect("read"), points);
        assert_eq!(read_loss_csv(&path, 3).expect("read"), points[..3].to_vec());
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str("5,0.2,0.1");
        std::fs::write(&path, text).expect("write");
        assert_eq!(read_loss_csv(&path, 10).expect("torn line"), points);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn config_files_override_and_reject_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("ssd-train-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let toml = dir.join("train.toml");
        std::fs::write(
            &toml,
            "batch-size = 8\nlr-decay = [5, 6]\nmodel = \"small\"\n",
        )
        .expect("write");
        let config = TrainConfig::default().merge_file(&toml).expect("toml");
        assert_eq!(config.batch_size, 8);
        assert_eq!(config.lr_decay, vec![5, 6]);
        assert_eq!(
            config.iterations, 120_000,
            "untouched keys keep their values"
        );
        let json = dir.join("train.json");
        std::fs::write(&json, r#"{"batch-sise": 8}"#).expect("write");
        let err = TrainConfig::default()
            .merge_file(&json)
            .expect_err("typo in a key");
        assert!(format!("{err:#}").contains("batch-sise"), "{err:#}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Arguments of `ssd train`: every setting of [`TrainConfig`] as a flag (none given means the
/// config file's value, else the checkpoint's when resuming, else the default shown).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrainArgs {
    /// JSON (`.json`) or TOML file of settings, keys named like the flags (`batch-size = 32`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue from a checkpoint folder (`results/weights/<name>_<iteration>`): weights,
    /// optimizer state, iteration and settings; flags given here override the settings.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// VOC root(s), comma-separated (e.g. VOCdevkit/VOC2007,VOCdevkit/VOC2012).
    #[arg(long, value_delimiter = ',')]
    pub dataroot: Option<Vec<PathBuf>>,
    /// Image set name [default: trainval].
    #[arg(long)]
    pub datanames: Option<String>,
    /// Drop difficult objects from the targets [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub discard_difficult: Option<bool>,
    /// SSD data augmentation [default: true].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub use_augment: Option<bool>,
    /// Largest zoom-out of the augmentation (1: off) [default: 4].
    #[arg(long)]
    pub expand_ratio: Option<f64>,
    /// Images per iteration [default: 32].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Iterations [default: 120000].
    #[arg(long)]
    pub iterations: Option<u64>,
    /// Learning rate [default: 1e-3].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Iterations where the learning rate drops by --gamma, comma-separated
    /// [default: 80000,100000].
    #[arg(long, value_delimiter = ',')]
    pub lr_decay: Option<Vec<u64>>,
    /// Step decay factor [default: 0.1].
    #[arg(long)]
    pub gamma: Option<f64>,
    /// SGD momentum [default: 0.9].
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Weight decay [default: 5e-4].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Clip the global gradient norm (0: off) [default: 0].
    #[arg(long)]
    pub clip_grad: Option<f64>,
    /// Matching IoU [default: 0.5].
    #[arg(long)]
    pub overlap_threshold: Option<f64>,
    /// Hard negatives per positive [default: 3].
    #[arg(long)]
    pub negpos_ratio: Option<f64>,
    /// Weight of the localisation loss [default: 1].
    #[arg(long)]
    pub alpha: Option<f64>,
    /// ImageNet VGG16 backbone .pth (torchvision vgg16 or amdegroot's vgg16_reducedfc.pth).
    #[arg(long)]
    pub pretrained_model: Option<PathBuf>,
    /// ssd300, ssd512, small, or a JSON model config [default: ssd300].
    #[arg(long)]
    pub model: Option<String>,
    /// Class list, one name per line [default: the 20 VOC classes].
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// Backend: flex, tch or wgpu [default: the first compiled in].
    #[arg(long)]
    pub backend: Option<String>,
    /// Device indices, comma-separated (one; several are refused: no data-parallel training yet).
    #[arg(long, value_delimiter = ',')]
    pub devices: Option<Vec<usize>>,
    /// Data loading threads [default: 4].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Seed of initialisation, data order and augmentation [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Linear learning-rate warmup iterations [default: 0].
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Biases at 2x learning rate without weight decay, as Caffe [default: true].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub caffe_bias: Option<bool>,
    /// Checkpoint every N iterations [default: 5000].
    #[arg(long)]
    pub save_every: Option<u64>,
    /// Log line every N iterations [default: 10].
    #[arg(long)]
    pub log_every: Option<u64>,
    /// Name of checkpoints and loss files [default: the model name].
    #[arg(long)]
    pub model_save_name: Option<String>,
    /// Output folder [default: results].
    #[arg(long)]
    pub results: Option<PathBuf>,
}

impl TrainArgs {
    /// The settings: the checkpoint's (when resuming) or the defaults, then the config file, then
    /// the flags given.
    pub fn resolve(&self) -> anyhow::Result<TrainConfig> {
        let mut c = match &self.resume {
            Some(path) => read_state(path)?.1.config,
            None => TrainConfig::default(),
        };
        if let Some(file) = &self.config {
            c = c.merge_file(file)?;
        }
        macro_rules! set {
            ($($field:ident),*) => {
                $(if let Some(v) = &self.$field { c.$field = v.clone(); })*
            };
        }
        set!(
            dataroot,
            datanames,
            discard_difficult,
            use_augment,
            expand_ratio,
            batch_size,
            iterations,
            lr,
            lr_decay,
            gamma,
            momentum,
            weight_decay,
            clip_grad,
            overlap_threshold,
            negpos_ratio,
            alpha,
            model,
            devices,
            workers,
            seed,
            warmup,
            caffe_bias,
            save_every,
            log_every,
            results
        );
        if self.pretrained_model.is_some() {
            c.pretrained_model.clone_from(&self.pretrained_model);
        }
        if self.classes.is_some() {
            c.classes.clone_from(&self.classes);
        }
        if self.backend.is_some() {
            c.backend.clone_from(&self.backend);
        }
        if self.model_save_name.is_some() {
            c.model_save_name.clone_from(&self.model_save_name);
        }
        Ok(c)
    }
}
