//! `ssd train`: flags and config file to `ssd_train` settings, and the console around a run:
//! progress bar, log lines, the loss CSV and plot, Ctrl-C.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ssd_data::{ClassList, DataLocation};
use ssd_model::SsdConfig;
use ssd_train::{
    Control, LossLog, LossPoint, Observer, Start, StepStats, TrainConfig, TrainOutcome,
    TrainSettings, TrainState, Trainer, read_state,
};

use crate::render::plot_losses;
use ssd_backend::Backend;

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
    /// Dataset root(s), comma-separated: VOC roots (VOCdevkit/VOC2007,VOCdevkit/VOC2012), COCO
    /// roots (holding annotations/instances_<datanames>.json, images in <root>/<datanames>/) or
    /// COCO .json files (images beside them or in --images).
    #[arg(long, value_delimiter = ',')]
    pub dataroot: Option<Vec<PathBuf>>,
    /// Image set (VOC) or annotation set (COCO: instances_<name>.json) [default: trainval].
    #[arg(long)]
    pub datanames: Option<String>,
    /// Folder of a COCO file's images, when they are not where the layout puts them.
    #[arg(long)]
    pub images: Option<PathBuf>,
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
    /// ssd300, ssd512, ssd300-coco, ssd512-coco, small, or a JSON model config [default: ssd300].
    #[arg(long)]
    pub model: Option<String>,
    /// Class list, one name per line [default: the 20 VOC classes].
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// Backend: flex, tch, wgpu or cuda [default: the first compiled in].
    #[arg(long)]
    pub backend: Option<String>,
    /// Device indices, comma-separated; several train data-parallel, each on an equal share of
    /// every batch (--batch-size is the whole batch) [default: 0].
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
    /// Start a new run even if the results folder holds checkpoints of this name (they are
    /// removed); without it such a run is refused.
    #[arg(long)]
    pub overwrite: bool,
}

/// The settings of `ssd train` that are not part of the recipe: what network, which classes,
/// where to run.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    /// `--model`: a preset name or a JSON file.
    pub model: Option<String>,
    /// `--classes`: a class list file.
    pub classes: Option<PathBuf>,
    /// `--backend`.
    pub backend: Option<String>,
    /// Whether the file sets `model-save-name` (else a new run is named after `--model`).
    pub names_checkpoints: bool,
}

/// Reads a JSON (`.json`) or TOML (other extensions) config file: its [`Choices`] keys, and the
/// recipe keys applied over `config` (an unknown key is an error naming it).
pub fn merge_config_file(
    config: TrainConfig,
    path: &Path,
) -> anyhow::Result<(TrainConfig, Choices)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let context = || format!("config file {}", path.display());
    let file: serde_json::Value = if path.extension().and_then(|e| e.to_str()) == Some("json") {
        serde_json::from_str(&text).with_context(context)?
    } else {
        serde_json::to_value(toml::from_str::<toml::Value>(&text).with_context(context)?)?
    };
    let Some(entries) = file.as_object() else {
        bail!(
            "config file {}: expected a table of settings",
            path.display()
        );
    };
    let mut value = serde_json::to_value(&config)?;
    let mut choices = Choices::default();
    for (key, v) in entries {
        let text = || {
            v.as_str().map(str::to_owned).with_context(|| {
                format!("config file {}: `{key}` must be a string", path.display())
            })
        };
        match key.as_str() {
            "model" => choices.model = Some(text()?),
            "classes" => choices.classes = Some(text()?.into()),
            "backend" => choices.backend = Some(text()?),
            _ => {
                choices.names_checkpoints |= key == "model-save-name";
                if let Some(object) = value.as_object_mut() {
                    object.insert(key.clone(), v.clone());
                }
            }
        }
    }
    Ok((
        serde_json::from_value(value).with_context(context)?,
        choices,
    ))
}

impl TrainArgs {
    /// The settings: the checkpoint's (when resuming) or the defaults, then the config file, then
    /// the flags given; the network and classes from the checkpoint or from `--model` and
    /// `--classes`; the backend's training devices (`--devices`, else its first).
    pub fn resolve(&self) -> anyhow::Result<(TrainSettings, Backend)> {
        let resumed = self.resume.as_deref().map(read_state).transpose()?;
        let base = match &resumed {
            Some((_, s)) => s.config.clone(),
            None => {
                // A preset's own recipe (the COCO presets' schedule) under the file and flags.
                let (_, choices) = self.recipe(TrainConfig::default())?;
                let name = self.model.clone().or(choices.model).unwrap_or_default();
                TrainConfig::for_preset(&name)
            }
        };
        let (mut config, choices) = self.recipe(base)?;
        let model_name = self.model.clone().or(choices.model);
        let classes_file = self.classes.clone().or(choices.classes);
        let (model, classes) = match &resumed {
            Some((dir, state)) => resumed_network(dir, state, model_name, classes_file)?,
            None => {
                let model_name = model_name.unwrap_or_else(|| "ssd300".to_owned());
                if self.model_save_name.is_none() && !choices.names_checkpoints {
                    config.model_save_name = Path::new(&model_name)
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or("ssd")
                        .to_owned();
                }
                let location = DataLocation {
                    roots: config.dataroot.clone(),
                    name: config.datanames.clone(),
                    images: config.images.clone(),
                };
                let classes = match &classes_file {
                    Some(path) => ClassList::from_file(path)?,
                    // A COCO file's categories; the 20 VOC classes for VOC roots.
                    // Settings are checked before the dataset is looked at.
                    None => {
                        config.validate()?;
                        location.own_classes()?.unwrap_or_else(ClassList::voc)
                    }
                };
                let model = SsdConfig::named(&model_name, classes.num_classes_with_background())
                    .with_context(|| format!("--model {model_name}"))?;
                (model, classes)
            }
        };
        let backend = Backend::chosen(
            self.backend
                .clone()
                .or(choices.backend)
                .map(|name| name.parse::<Backend>())
                .transpose()?,
        )?;
        let devices = backend.devices(&config.devices)?;
        let settings = TrainSettings {
            config,
            model,
            classes,
            devices,
            resume: resumed.map(|(dir, _)| dir),
            overwrite: self.overwrite,
        };
        Ok((settings, backend))
    }

    /// `base` with the config file's keys, then the flags given, over it.
    fn recipe(&self, base: TrainConfig) -> anyhow::Result<(TrainConfig, Choices)> {
        let (mut c, choices) = match &self.config {
            Some(file) => merge_config_file(base, file)?,
            None => (base, Choices::default()),
        };
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
            devices,
            workers,
            seed,
            warmup,
            caffe_bias,
            save_every,
            log_every,
            results,
            model_save_name
        );
        if self.pretrained_model.is_some() {
            c.pretrained_model.clone_from(&self.pretrained_model);
        }
        if self.images.is_some() {
            c.images.clone_from(&self.images);
        }
        Ok((c, choices))
    }
}

/// The network and classes of a resumed run: the checkpoint's; `--model` and `--classes` may
/// only repeat them.
fn resumed_network(
    dir: &Path,
    state: &TrainState,
    model_name: Option<String>,
    classes_file: Option<PathBuf>,
) -> anyhow::Result<(SsdConfig, ClassList)> {
    // The category ids of a COCO run stay with its classes: results keep the file's ids, and
    // data with other ids is refused when the dataset opens.
    let classes = ClassList::new(state.classes.clone())
        .and_then(|c| match &state.category_ids {
            Some(ids) => c.with_category_ids(ids.clone()),
            None => Ok(c),
        })
        .with_context(|| format!("class names in {}", dir.display()))?;
    let asked = classes_file
        .as_deref()
        .map(ClassList::from_file)
        .transpose()?;
    if asked.is_some_and(|asked| asked.names() != classes.names()) {
        bail!(
            "--resume {}: --classes differs from the checkpoint's classes",
            dir.display()
        );
    }
    if let Some(name) = &model_name {
        let asked = SsdConfig::named(name, classes.num_classes_with_background())
            .with_context(|| format!("--model {name}"))?;
        if asked != state.model {
            bail!(
                "--resume {}: --model {name} differs from the checkpoint's network",
                dir.display()
            );
        }
    }
    Ok((state.model.clone(), classes))
}

/// Runs `ssd train`.
pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let (settings, backend) = args.resolve()?;
    let run = run_training(settings, backend)?;
    let outcome = &run.outcome;
    if outcome.interrupted {
        println!(
            "stopped at iteration {}; resume with --resume {}",
            outcome.iterations,
            outcome.checkpoint.display()
        );
    } else {
        println!(
            "trained {} iterations: model {}, checkpoint {}, loss curve {}",
            outcome.iterations,
            outcome.model.display(),
            outcome.checkpoint.display(),
            run.loss_plot.display()
        );
    }
    Ok(())
}

/// A finished run with its loss files.
#[derive(Debug, Clone)]
pub struct Run {
    /// What the trainer reports.
    pub outcome: TrainOutcome,
    /// The loss CSV (`iteration,loss,loc,conf,lr,grad_norm`).
    pub loss_csv: PathBuf,
    /// The loss curve PNG.
    pub loss_plot: PathBuf,
}

/// Trains with `settings` on the console: what the run starts from, a progress bar, a log line
/// every `log-every` iterations, the loss CSV and plot, Ctrl-C to save and stop.
pub fn run_training(settings: TrainSettings, backend: Backend) -> anyhow::Result<Run> {
    let mut trainer = Trainer::new(settings)?;
    let config = trainer.config().clone();
    println!("{}", trainer.dataset_report());
    match trainer.start() {
        Start::Resumed { path, iteration } => {
            println!("resumed from {} at iteration {iteration}", path.display());
        }
        Start::Pretrained { path, report } => println!(
            "backbone from {} ({:?} layout, {} tensors)",
            path.display(),
            report.layout,
            report.loaded.len()
        ),
        Start::Scratch => {}
    }
    let start = trainer.iteration();
    println!(
        "training {} on {backend} from iteration {start} to {}: {} images, {} iterations per \
         epoch, batch {}",
        config.model_save_name,
        config.iterations,
        trainer.dataset().len(),
        trainer.batches_per_epoch(),
        config.batch_size
    );
    let mut console = Console::new(&config, start)?;
    install_interrupt_handler();
    let result = trainer.run(&mut console);
    console.bar.finish_and_clear();
    if let Some(e) = console.failure {
        return Err(e);
    }
    Ok(Run {
        outcome: result?,
        loss_csv: console.log.path().to_owned(),
        loss_plot: console.plot,
    })
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static INTERRUPTS: AtomicU32 = AtomicU32::new(0);

/// Installs the Ctrl-C handler (once per process): the first Ctrl-C asks the run to save a
/// checkpoint and stop, a second one exits at once.
fn install_interrupt_handler() {
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

/// The console observer: progress bar, log lines, loss CSV and plot.
struct Console {
    bar: indicatif::ProgressBar,
    log: LossLog,
    plot: PathBuf,
    title: String,
    iterations: u64,
    log_every: u64,
    window: Vec<LossPoint>,
    window_images: usize,
    window_start: Instant,
    last_plot: Instant,
    failure: Option<anyhow::Error>,
}

impl Console {
    fn new(config: &TrainConfig, start: u64) -> anyhow::Result<Self> {
        let loss_dir = config.results.join("loss");
        std::fs::create_dir_all(&loss_dir)
            .with_context(|| format!("cannot create {}", loss_dir.display()))?;
        let name = &config.model_save_name;
        let log = LossLog::open(&loss_dir.join(format!("{name}.csv")), start)?;
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(config.iterations),
            indicatif::ProgressDrawTarget::stderr_with_hz(4),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
        ) {
            bar.set_style(style);
        }
        bar.set_position(start);
        bar.reset_eta();
        Ok(Self {
            bar,
            plot: loss_dir.join(format!("{name}.png")),
            log,
            title: format!("{name}: training loss"),
            iterations: config.iterations,
            log_every: config.log_every,
            window: Vec::new(),
            window_images: 0,
            window_start: Instant::now(),
            last_plot: Instant::now(),
            failure: None,
        })
    }

    /// Prints the log line of the window, appends it to the CSV, redraws the plot (at most every
    /// 5 s, and at the end).
    fn log_window(&mut self, done: u64, lr: f64, rate: f64, last: bool) -> anyhow::Result<()> {
        let n = self.window.len().max(1) as f64;
        let mean = |f: fn(&LossPoint) -> f64| self.window.iter().map(f).sum::<f64>() / n;
        let elapsed = self.window_start.elapsed().as_secs_f64();
        let remaining = (self.iterations - done) as f64 * elapsed / n;
        let line = format!(
            "iter {done}/{} loss {:.4} (loc {:.4} conf {:.4}) grad norm {:.2} lr {lr:.2e} \
             {rate:.1} img/s eta {}",
            self.iterations,
            mean(|p| p.loss),
            mean(|p| p.loc),
            mean(|p| p.conf),
            mean(|p| p.grad_norm),
            format_duration(Duration::from_secs_f64(remaining))
        );
        self.bar.suspend(|| println!("{line}"));
        self.log.flush()?;
        self.window.clear();
        self.window_images = 0;
        self.window_start = Instant::now();
        if self.last_plot.elapsed() > Duration::from_secs(5) || last {
            plot_losses(self.log.points(), &self.title, &self.plot)?;
            self.last_plot = Instant::now();
        }
        Ok(())
    }
}

impl Observer for Console {
    fn on_step(&mut self, s: &StepStats) -> Control {
        let point = LossPoint::from(s);
        self.log.push(point);
        self.window.push(point);
        self.window_images += s.images;
        let rate = self.window_images as f64 / self.window_start.elapsed().as_secs_f64().max(1e-9);
        self.bar.set_position(s.iteration);
        self.bar.set_message(format!(
            "loss {:.3} (loc {:.3} conf {:.3}) lr {:.2e} {rate:.1} img/s",
            s.loss, s.loc, s.conf, s.lr
        ));
        let interrupted = INTERRUPTED.load(Ordering::SeqCst);
        let last = s.iteration == self.iterations || interrupted;
        if (s.iteration.is_multiple_of(self.log_every) || last)
            && let Err(e) = self.log_window(s.iteration, s.lr, rate, last)
        {
            self.failure = Some(e);
            return Control::Stop;
        }
        if let Some(dir) = &s.checkpoint {
            self.bar
                .suspend(|| println!("checkpoint {}", dir.display()));
        }
        if interrupted {
            Control::Stop
        } else {
            Control::Continue
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let (config, choices) = merge_config_file(TrainConfig::default(), &toml).expect("toml");
        assert_eq!(config.batch_size, 8);
        assert_eq!(config.lr_decay, vec![5, 6]);
        assert_eq!(choices.model.as_deref(), Some("small"));
        assert_eq!(
            config.iterations, 120_000,
            "untouched keys keep their values"
        );
        let json = dir.join("train.json");
        std::fs::write(&json, r#"{"batch-sise": 8}"#).expect("write");
        let err = merge_config_file(TrainConfig::default(), &json).expect_err("typo in a key");
        assert!(format!("{err:#}").contains("batch-sise"), "{err:#}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
