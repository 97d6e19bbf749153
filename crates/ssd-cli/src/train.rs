//! `ssd train`: its flags (`ssd_train::TrainOverrides`, declared with the settings they set) to
//! a resolved run (`ssd_train::RunRequest`: checkpoint < settings file < flags), and the console
//! around the run: progress bar, log lines, the loss CSV and plot, Ctrl-C.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use ssd_backend::Backend;
use ssd_train::{
    Control, LossLog, LossPoint, Observer, Recipe, ResolvedRun, RunRequest, Start, StepStats,
    TrainConfig, TrainOutcome, TrainOverrides, TrainSettings, Trainer,
};

use crate::render::plot_losses;

/// Arguments of `ssd train`: every setting of the recipe as a flag (none given means the
/// settings file's value, else the checkpoint's when resuming, else the recipe's default).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrainArgs {
    /// JSON (`.json`) or TOML file of settings, keys named like the flags (`batch-size = 32`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue from a checkpoint folder (`results/weights/<name>_<iteration>`): weights,
    /// optimizer state, iteration and settings; flags given here override the settings.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// The settings.
    #[command(flatten)]
    pub overrides: TrainOverrides,
    /// Start a new run even if the results folder holds checkpoints of this name (they are
    /// removed); without it such a run is refused.
    #[arg(long)]
    pub overwrite: bool,
    /// Write every batch the run trains on (images as the network sees them, encoded targets),
    /// the settings, and the weights at the start and the end into this folder, for feeding
    /// another trainer the same data (`tools/train_reference.py`). About 41 MB per SSD300
    /// batch of 32: for short runs.
    #[arg(long, value_name = "DIR")]
    pub dump_batches: Option<PathBuf>,
}

impl TrainArgs {
    /// The settings of the run these flags ask for, on the backend they name.
    pub fn resolve(&self) -> anyhow::Result<(TrainSettings, Backend)> {
        let run = RunRequest {
            resume: self.resume.clone(),
            settings_file: self.config.clone(),
            overrides: self.overrides.clone(),
            recipe: Recipe::Preset,
        }
        .resolve()?;
        on_backend(run, self.overwrite)
    }
}

/// A resolved run's settings on the backend it asks for (else the default one), with the
/// devices its recipe names.
pub fn on_backend(run: ResolvedRun, overwrite: bool) -> anyhow::Result<(TrainSettings, Backend)> {
    let asked = run.backend.as_deref().map(str::parse).transpose()?;
    let backend = Backend::chosen(asked)?;
    let devices = backend.devices(&run.config.devices)?;
    Ok((run.into_settings(devices, overwrite), backend))
}

/// Runs `ssd train`.
pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let (settings, backend) = args.resolve()?;
    let run = run_training(settings, backend, args.dump_batches.as_deref())?;
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
/// every `log-every` iterations, the loss CSV and plot, Ctrl-C to save and stop; with `dump`,
/// the batches and weights go there too ([`Trainer::dump_batches`]).
pub fn run_training(
    settings: TrainSettings,
    backend: Backend,
    dump: Option<&Path>,
) -> anyhow::Result<Run> {
    let mut trainer = Trainer::new(settings)?;
    if let Some(dir) = dump {
        trainer.dump_batches(dir)?;
    }
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
    crate::interrupt::install("saving a checkpoint after this iteration");
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
        let interrupted = crate::interrupt::interrupted();
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
