//! The training loop: [`Trainer::step`] runs one iteration, [`Trainer::run`] runs to the end
//! under an [`Observer`] that sees every step and may ask to stop.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use burn::data::dataloader::batcher::Batcher;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, ModuleOptimizer, MultiGradientsParams};
use burn::tensor::{Device, Tensor};
use ssd_data::{
    Augment, BatchPlan, DataLocation, DatasetReport, DetectionDataset, Prefetcher, SsdBatch,
    SsdBatcher, SsdDataset, SsdItem, TargetEncoder,
};
use ssd_model::{CheckpointInfo, LoadMode, LoadReport, MODEL_FILE, MultiBoxLoss, Ssd};

use crate::LossPoint;
use crate::checkpoint::{
    OPTIMIZER_FILE, TrainState, check_optimizer_file, read_state, remove_stale_partials,
    save_checkpoint,
};
use crate::optim::{build_optimizer, clip_grads, grad_norm, lr_schedule, weights_finite};
use crate::run_lock::RunLock;
use crate::{TrainConfig, TrainError, TrainPrecision, TrainSettings};

/// What one iteration did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepStats {
    /// The iteration, its loss parts, learning rate and gradient norm (what the loss log keeps;
    /// `stats.loss`, `stats.iteration`, ... read through to it).
    pub point: LossPoint,
    /// Images in the batch.
    pub images: usize,
    /// Positive (matched) priors in each device's share of the batch, one entry per device;
    /// the loss is divided by their sum.
    pub positives: Vec<usize>,
    /// The checkpoint saved after this iteration, if one was.
    pub checkpoint: Option<PathBuf>,
}

impl std::ops::Deref for StepStats {
    type Target = LossPoint;

    fn deref(&self) -> &LossPoint {
        &self.point
    }
}

/// What an [`Observer`] wants after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Save a checkpoint now and stop (an interruption: the run can be resumed).
    Stop,
}

/// Sees a run's progress (progress bars, logs, loss files, plots) and may stop it.
pub trait Observer {
    /// Called after every iteration.
    fn on_step(&mut self, stats: &StepStats) -> Control;
}

/// An observer that sees nothing and never stops the run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Observer for Quiet {
    fn on_step(&mut self, _: &StepStats) -> Control {
        Control::Continue
    }
}

impl<F: FnMut(&StepStats) -> Control> Observer for F {
    fn on_step(&mut self, stats: &StepStats) -> Control {
        self(stats)
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The last checkpoint folder.
    pub checkpoint: PathBuf,
    /// The model file for detection (`<results>/weights/<name>.bpk`).
    pub model: PathBuf,
    /// Iterations done.
    pub iterations: u64,
    /// Stopped by the observer before the last iteration.
    pub interrupted: bool,
}

/// Where a run starts from.
#[derive(Debug, Clone)]
pub enum Start {
    /// A fresh initialisation.
    Scratch,
    /// A fresh initialisation with an ImageNet backbone.
    Pretrained {
        /// The `.pth` file.
        path: PathBuf,
        /// What was loaded.
        report: LoadReport,
    },
    /// A checkpoint.
    Resumed {
        /// The checkpoint folder.
        path: PathBuf,
        /// Its iteration.
        iteration: u64,
    },
}

/// A training run: the model, its optimizer and the batch stream, one [`Trainer::step`] at a
/// time. Checkpoints are written every `save-every` iterations and after the last one. From
/// [`Trainer::new`] until it is dropped, the trainer owns its results folder: another trainer
/// there, in this process or another, is refused ([`TrainError::ResultsInUse`]).
pub struct Trainer {
    config: TrainConfig,
    state: TrainState,
    classes: ssd_data::ClassList,
    /// The training devices (autodiff); the first holds the model and the optimizer.
    devices: Vec<Device>,
    model: Option<Ssd>,
    optimizer: ModuleOptimizer,
    criterion: MultiBoxLoss,
    batches: Prefetcher,
    dataset: Arc<DetectionDataset>,
    start: Start,
    first: u64,
    done: u64,
    /// The newest checkpoint and its iteration.
    last_saved: Option<(u64, PathBuf)>,
    /// The newest checkpoint whose weights were finite and gave a finite loss.
    last_good: Option<PathBuf>,
    /// Where the batches and weights are dumped ([`Trainer::dump_batches`]).
    dump: Option<PathBuf>,
    /// The results folder's lock, held for the whole run.
    _lock: RunLock,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("devices", &self.devices)
            .field("start", &self.start)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Trainer {
    /// Prepares a run: checks the settings, opens the dataset (every annotation parsed and
    /// checked, every image's header read: complete, and of the annotated size), builds the network on the device (a fresh one, a backbone from
    /// `pretrained-model`, or the weights and momentum of `resume`) and starts the loading
    /// threads.
    pub fn new(settings: TrainSettings) -> Result<Self, TrainError> {
        let TrainSettings {
            config,
            model: model_cfg,
            classes,
            devices,
            resume,
            overwrite,
            dataset: opened,
        } = settings;
        config.validate()?;
        if devices.is_empty() {
            return Err(TrainError::setting("devices", "no device given"));
        }
        crate::settings::check_shares(config.batch_size, devices.len(), &config.devices)?;
        model_cfg.validate().map_err(ssd_model::ModelError::from)?;
        if model_cfg.num_classes != classes.num_classes_with_background() {
            return Err(TrainError::ClassCount {
                num_classes: model_cfg.num_classes,
                names: classes.len(),
            });
        }
        // The results folder is this run's from here on: a second run (or a resume of a
        // checkpoint still being written) is refused before anything is read or removed.
        let lock = RunLock::acquire(&config.results)?;
        let resumed = resume.as_deref().map(read_state).transpose()?;
        if let Some((dir, _)) = &resumed
            && !same_folder(dir.parent().and_then(Path::parent), &config.results)
        {
            RunLock::check_checkpoint(dir)?;
        }
        if let Some((dir, state)) = &resumed
            && state.model != model_cfg
        {
            return Err(TrainError::Resume {
                path: dir.clone(),
                message: "the checkpoint's network differs from the one asked for".to_owned(),
            });
        }
        if let Some((dir, state)) = &resumed
            && (state.classes != classes.names()
                || state.category_ids.as_deref() != classes.category_ids())
        {
            return Err(TrainError::Resume {
                path: dir.clone(),
                message: format!(
                    "the checkpoint's classes {:?} (category ids {:?}) differ from those asked \
                     for, {:?} (category ids {:?})",
                    state.classes,
                    state.category_ids,
                    classes.names(),
                    classes.category_ids()
                ),
            });
        }
        let location = DataLocation {
            roots: config.dataroot.clone(),
            name: config.datanames.clone(),
            images: config.images.clone(),
        };
        let opened = match opened {
            Some(opened) if opened.classes() == &classes => {
                Arc::try_unwrap(opened).unwrap_or_else(|shared| (*shared).clone())
            }
            _ => DetectionDataset::open_at(&location, Some(classes.clone()), true)?,
        };
        // A run trains on one category table: data that numbers its own categories must number
        // them as the model does.
        if let (Some(model), Some(own)) = (classes.category_ids(), opened.own_category_ids())
            && own != model
        {
            return Err(TrainError::CategoryIds {
                files: opened.sources().to_vec(),
                dataset: own,
                model: model.to_vec(),
            });
        }
        let files = opened.sources().to_vec();
        let dataset = Arc::new(opened.for_training());
        if dataset.is_empty() {
            return Err(TrainError::NoTrainingTargets {
                files,
                set: config.datanames.clone(),
                report: dataset.report(),
            });
        }
        dataset.check_images()?;
        let weights_dir = config.weights_dir();
        std::fs::create_dir_all(&weights_dir).map_err(TrainError::io(&weights_dir))?;
        remove_stale_partials(&weights_dir);
        if resumed.is_none() {
            claim_name(&config, overwrite)?;
        }

        let devices = configured(devices, config.precision)?;
        let main = devices[0].clone().autodiff();
        let (model, optimizer, start) = initial_state(
            seeded_init(&model_cfg, &main, config.seed)?,
            build_optimizer(&config),
            resumed.as_ref(),
            config.pretrained_model.as_deref(),
        )?;
        let first = resumed.as_ref().map_or(0, |(_, s)| s.iteration);
        if first >= config.iterations {
            return Err(TrainError::NothingToDo {
                done: first,
                iterations: config.iterations,
            });
        }
        let batches = Prefetcher::new(
            training_dataset(&config, &model_cfg, &dataset)?,
            batch_plan(&config, dataset.len()),
            first,
            config.iterations,
            config.workers,
        );
        let last_saved = resumed.as_ref().map(|(dir, s)| (s.iteration, dir.clone()));
        Ok(Self {
            criterion: MultiBoxLoss {
                neg_pos_ratio: config.negpos_ratio,
            },
            state: TrainState {
                iteration: first,
                config: config.clone(),
                model: model_cfg,
                classes: classes.names().to_vec(),
                category_ids: classes.category_ids().map(<[u64]>::to_vec),
            },
            config,
            classes,
            devices: devices.into_iter().map(Device::autodiff).collect(),
            model: Some(model),
            optimizer,
            batches,
            dataset,
            start,
            first,
            done: first,
            last_good: last_saved.as_ref().map(|(_, d)| d.clone()),
            last_saved,
            dump: None,
            _lock: lock,
        })
    }

    /// From now on, writes what the run trains on to `dir` (created if missing), so that another
    /// trainer can be fed the same data and compared (`tools/train_reference.py`, PyTorch):
    ///
    /// - `run.json`: the recipe, the network and the classes (a checkpoint's `train.json`);
    /// - `weights_<i>.safetensors`: the weights and batch-norm statistics after `i` iterations,
    ///   now and after the last one, in PyTorch's names ([`Ssd::pytorch_state`]);
    /// - `batch_<i>.safetensors` before iteration `i` (1-based) trains: `images [B, 3, S, S]`
    ///   as the network sees them (augmented, normalised), and the encoded targets, `labels
    ///   [B, P]` (i64, 0 for background) and `locations [B, P, 4]`.
    ///
    /// Every file is written whole or not at all. A batch of SSD300 at batch size 32 is about
    /// 41 MB: dump short runs.
    pub fn dump_batches(&mut self, dir: &Path) -> Result<(), TrainError> {
        std::fs::create_dir_all(dir).map_err(TrainError::io(dir))?;
        let mut state = self.state.clone();
        state.iteration = self.done;
        crate::dump::write_run(dir, &state)?;
        crate::dump::write_weights(dir, self.model(), self.done)?;
        self.dump = Some(dir.to_owned());
        Ok(())
    }

    /// Runs one iteration: a batch, the loss, its gradients, clipping and the optimizer step,
    /// then a checkpoint when one is due. `Ok(None)` once the run has all its iterations.
    ///
    /// One value is read back from the device per step: the loss parts and the gradient norm
    /// together. A loss or norm that is not finite stops the run before the optimizer step
    /// ([`TrainError::Diverged`]); an image that fails to load saves the progress first
    /// ([`TrainError::DataDuringTraining`]).
    pub fn step(&mut self) -> Result<Option<StepStats>, TrainError> {
        if self.done >= self.config.iterations {
            return Ok(None);
        }
        let items = match self.batches.next() {
            Some(Ok((_, _, items))) => items,
            Some(Err(source)) => return Err(self.stop_on_bad_data(source)),
            None => {
                return Err(TrainError::LoaderStopped {
                    done: self.done,
                    iterations: self.config.iterations,
                });
            }
        };
        let images = items.len();
        if let Some(dir) = &self.dump {
            crate::dump::write_batch(dir, self.done + 1, &items)?;
        }
        let model = self.model.take().unwrap_or_else(|| unreachable!("model"));
        let result = self.train_on(model, items);
        let (model, mut stats) = result?;
        self.model = Some(model);
        self.done += 1;
        if self.done == self.config.iterations
            && let Some(dir) = &self.dump
        {
            crate::dump::write_weights(dir, self.model(), self.done)?;
        }
        if self.done.is_multiple_of(self.config.save_every) || self.done == self.config.iterations {
            stats.checkpoint = Some(self.save()?);
        }
        stats.images = images;
        Ok(Some(stats))
    }

    fn train_on(
        &mut self,
        model: Ssd,
        items: Vec<SsdItem>,
    ) -> Result<(Ssd, StepStats), TrainError> {
        let (scalars, mut grads, positives) = if self.devices.len() == 1 {
            self.one_device(&model, items)
        } else {
            self.data_parallel(&model, items)
        };
        let norm = grad_norm(&model, &grads);
        let read = match &norm {
            Some(n) => Tensor::cat(vec![scalars, n.clone()], 0),
            None => scalars,
        };
        // The one read of the step.
        let values: Vec<f64> = read.into_data().iter::<f64>().collect();
        let value = |i: usize| values.get(i).copied().unwrap_or(0.0);
        let iteration = self.done + 1;
        let (total, loc_v, conf_v, norm_v) = (value(0), value(1), value(2), value(3));
        let diverged = |what, value| TrainError::Diverged {
            what,
            value,
            iteration,
            loc: loc_v,
            conf: conf_v,
            last_good: None,
        };
        if !total.is_finite() {
            return Err(self.named_last_good(diverged("the loss", total)));
        }
        if !norm_v.is_finite() {
            return Err(self.named_last_good(diverged("the gradient norm", norm_v)));
        }
        // The weights just used gave a finite loss: their checkpoint, if any, is good.
        if let Some((at, dir)) = &self.last_saved
            && *at == self.done
        {
            self.last_good = Some(dir.clone());
        }
        if let Some(norm) = &norm
            && self.config.clip_grad > 0.0
        {
            clip_grads(&model, &mut grads, norm, self.config.clip_grad);
        }
        let lr = self.config.lr_at(self.done);
        let mut schedule = lr_schedule(&self.config, self.done);
        let model = self.optimizer.step(schedule.step(), model, grads);
        let stats = StepStats {
            point: LossPoint {
                iteration,
                loss: total,
                loc: loc_v,
                conf: conf_v,
                lr,
                grad_norm: norm_v,
            },
            images: 0,
            positives,
            checkpoint: None,
        };
        Ok((model, stats))
    }

    /// The loss parts `[total, loc, conf]` and the gradients of the whole batch on one device.
    fn one_device(&self, model: &Ssd, items: Vec<SsdItem>) -> Shares {
        let batch = SsdBatcher.batch(items, &self.devices[0]);
        let (Some(labels), Some(locations)) = (batch.labels, batch.locations) else {
            unreachable!("training items always carry targets")
        };
        let (loc, conf) = model.forward(batch.images);
        let parts =
            self.criterion
                .forward_with_positives(loc, conf, labels, locations, &batch.positives);
        let loss = parts.total(self.config.alpha);
        let scalars = Tensor::cat(vec![loss.clone(), parts.loc, parts.conf], 0);
        let positives = vec![batch.positives.iter().sum()];
        (
            scalars,
            GradientsParams::from_grads(loss.backward(), model),
            positives,
        )
    }

    /// The same as [`Trainer::one_device`], with the batch split over the devices in equal,
    /// contiguous shares. Each share is divided by the positives of the whole batch (counted on
    /// the host), so the shares' losses and gradients add up to the whole batch's; the gradients
    /// are summed on the first device with Burn's [`MultiGradientsParams`]. The first share runs
    /// on the model itself; the others on replicas forked from a snapshot of it (parameters with
    /// the same ids, batch-norm running statistics of their own that are dropped after the step:
    /// the model keeps the statistics of the first share, as PyTorch's `DataParallel` does).
    fn data_parallel(&self, model: &Ssd, items: Vec<SsdItem>) -> Shares {
        let share = items.len() / self.devices.len();
        let mut items = items.into_iter();
        let batches: Vec<SsdBatch> = self
            .devices
            .iter()
            .map(|device| SsdBatcher.batch(items.by_ref().take(share).collect(), device))
            .collect();
        let positives: Vec<usize> = batches.iter().map(|b| b.positives.iter().sum()).collect();
        let normaliser: usize = positives.iter().sum();
        let main = self.devices[0].clone().without_autodiff();
        let mut scalars: Option<Tensor<1>> = None;
        let mut multi = MultiGradientsParams::default();
        for (k, (batch, device)) in batches.into_iter().zip(&self.devices).enumerate() {
            let replica;
            let net = if k == 0 {
                model
            } else {
                replica = model.valid().train().fork(device);
                &replica
            };
            let (Some(labels), Some(locations)) = (batch.labels, batch.locations) else {
                unreachable!("training items always carry targets")
            };
            let (loc, conf) = net.forward(batch.images);
            let parts = self.criterion.forward_shard(
                loc,
                conf,
                labels,
                locations,
                &batch.positives,
                normaliser,
            );
            let loss = parts.total(self.config.alpha);
            let shard = Tensor::cat(vec![loss.clone(), parts.loc, parts.conf], 0)
                .detach()
                .to_device(&self.devices[0]);
            scalars = Some(match scalars {
                Some(sum) => sum.add(shard),
                None => shard,
            });
            let grads = GradientsParams::from_grads(loss.backward(), net);
            multi.grads.push((grads, device.clone().without_autodiff()));
        }
        let mut merged = GradientsParams::new();
        model.visit(&mut Merge {
            multi: &mut multi,
            merged: &mut merged,
            device: &main,
        });
        let Some(scalars) = scalars else {
            unreachable!("at least one device")
        };
        (scalars, merged, positives)
    }

    /// Fills in the last good checkpoint of a divergence error.
    fn named_last_good(&self, error: TrainError) -> TrainError {
        match error {
            TrainError::Diverged {
                what,
                value,
                iteration,
                loc,
                conf,
                ..
            } => TrainError::Diverged {
                what,
                value,
                iteration,
                loc,
                conf,
                last_good: self.last_good.clone(),
            },
            other => other,
        }
    }

    fn stop_on_bad_data(&mut self, source: ssd_data::DataError) -> TrainError {
        let saved = match &self.last_saved {
            Some((at, dir)) if *at == self.done => Ok(Some(dir.clone())),
            _ if self.done > self.first => self.save().map(Some),
            _ => Ok(self.last_saved.as_ref().map(|(_, d)| d.clone())),
        };
        match saved {
            Ok(checkpoint) => TrainError::DataDuringTraining {
                iteration: self.done,
                checkpoint,
                source,
            },
            Err(e) => e,
        }
    }

    /// Saves a checkpoint of the current iteration (`<results>/weights/<name>_<iteration>/`)
    /// and returns its folder. Weights that are not all finite are not saved
    /// ([`TrainError::Diverged`]).
    pub fn save(&mut self) -> Result<PathBuf, TrainError> {
        if !weights_finite(self.model()) {
            return Err(self.named_last_good(TrainError::Diverged {
                what: "a weight",
                value: f64::NAN,
                iteration: self.done,
                loc: f64::NAN,
                conf: f64::NAN,
                last_good: None,
            }));
        }
        self.state.iteration = self.done;
        let dir = self.config.checkpoint_dir(self.done);
        let model = self.model.as_ref().unwrap_or_else(|| unreachable!("model"));
        save_checkpoint(&dir, model, &self.optimizer, &self.state, &self.classes)?;
        self.last_saved = Some((self.done, dir.clone()));
        Ok(dir)
    }

    /// Runs the remaining iterations. After each, `observer` sees the step; when it answers
    /// [`Control::Stop`], a checkpoint is saved (if the step did not save one) and the run ends
    /// as interrupted. At the end the final model is written to `<results>/weights/<name>.bpk`.
    pub fn run(&mut self, observer: &mut impl Observer) -> Result<TrainOutcome, TrainError> {
        let mut interrupted = false;
        while let Some(stats) = self.step()? {
            if observer.on_step(&stats) == Control::Stop && self.done < self.config.iterations {
                if stats.checkpoint.is_none() {
                    self.save()?;
                }
                interrupted = true;
                break;
            }
        }
        let Some((_, checkpoint)) = self.last_saved.clone() else {
            unreachable!("a run of at least one iteration saves a checkpoint")
        };
        let model = self.config.final_model();
        self.model().save_trained(&model, &self.info())?;
        Ok(TrainOutcome {
            checkpoint,
            model,
            iterations: self.done,
            interrupted,
        })
    }

    /// The network being trained (on the autodiff device).
    pub fn model(&self) -> &Ssd {
        self.model.as_ref().unwrap_or_else(|| unreachable!("model"))
    }

    /// What a checkpoint of the current weights says about itself.
    pub fn info(&self) -> CheckpointInfo {
        CheckpointInfo {
            config: self.state.model.clone(),
            classes: self.classes.clone(),
            iteration: Some(self.done),
        }
    }

    /// The recipe.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Iterations done so far.
    pub fn iteration(&self) -> u64 {
        self.done
    }

    /// Where the run started from.
    pub fn start(&self) -> &Start {
        &self.start
    }

    /// The training images (with their report: images, objects, clipped or dropped boxes).
    pub fn dataset(&self) -> &DetectionDataset {
        &self.dataset
    }

    /// The dataset report (what opening the dataset found).
    pub fn dataset_report(&self) -> DatasetReport {
        self.dataset.report()
    }

    /// Batches in one pass over the training images.
    pub fn batches_per_epoch(&self) -> u64 {
        batch_plan(&self.config, self.dataset.len()).batches_per_epoch()
    }

    /// The newest checkpoint folder, if any.
    pub fn last_checkpoint(&self) -> Option<&Path> {
        self.last_saved.as_ref().map(|(_, d)| d.as_path())
    }
}

/// A fresh network drawn from `seed`. The device's random generator is shared by everything on
/// the device, and Burn draws a parameter's initial values when it is first used: so seeding,
/// building and drawing every parameter happen under one lock, and two runs in one process (or
/// a run beside other work that draws) each get the weights of their seed.
fn seeded_init(
    config: &ssd_model::SsdConfig,
    device: &Device,
    seed: u64,
) -> Result<Ssd, TrainError> {
    struct Draw;
    impl ModuleVisitor for Draw {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    static INIT: Mutex<()> = Mutex::new(());
    let _guard = INIT.lock().unwrap_or_else(PoisonError::into_inner);
    device.seed(seed);
    let model = config.init(device)?;
    model.visit(&mut Draw);
    Ok(model)
}

/// The devices set to compute in `precision`. A device computes in the float type it was first
/// used in (float32 unless set otherwise): another type is set before its first use in the
/// process, and a device already computing in another type, or a backend that cannot compute
/// in it, is refused (an error naming the setting).
fn configured(devices: Vec<Device>, precision: TrainPrecision) -> Result<Vec<Device>, TrainError> {
    devices
        .into_iter()
        .map(|mut device| {
            let current = device.settings().float_dtype;
            if current == precision.dtype() {
                return Ok(device);
            }
            device.configure(precision.dtype()).map_err(|e| {
                TrainError::setting(
                    "precision",
                    format!(
                        "cannot train in {} on {device:?}, which computes in {current:?}: {e}",
                        precision.name()
                    ),
                )
            })?;
            Ok(device)
        })
        .collect()
}

/// Whether `a` and `b` name one folder (both existing, after resolving links and `..`).
fn same_folder(a: Option<&Path>, b: &Path) -> bool {
    match (a.map(std::fs::canonicalize), std::fs::canonicalize(b)) {
        (Some(Ok(a)), Ok(b)) => a == b,
        _ => false,
    }
}

/// For a new run: the checkpoints and final model of an earlier run of the same name are an error,
/// or with `overwrite` are removed.
fn claim_name(config: &TrainConfig, overwrite: bool) -> Result<(), TrainError> {
    let dir = config.weights_dir();
    let name = &config.model_save_name;
    let entries = std::fs::read_dir(&dir).map_err(TrainError::io(&dir))?;
    let earlier: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let file = p.file_name().and_then(|f| f.to_str()).unwrap_or("");
            let checkpoint = file
                .strip_prefix(name.as_str())
                .and_then(|rest| rest.strip_prefix('_'))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            checkpoint || file == format!("{name}.bpk")
        })
        .collect();
    if earlier.is_empty() {
        return Ok(());
    }
    if !overwrite {
        return Err(TrainError::UsedResults {
            dir,
            name: name.clone(),
        });
    }
    for path in earlier {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(TrainError::io(&path))?;
    }
    Ok(())
}

/// The weights and optimizer state a run starts from: a checkpoint's, a fresh model with an
/// ImageNet backbone, or a fresh model.
fn initial_state(
    model: Ssd,
    optimizer: ModuleOptimizer,
    resumed: Option<&(PathBuf, TrainState)>,
    pretrained: Option<&Path>,
) -> Result<(Ssd, ModuleOptimizer, Start), TrainError> {
    match (resumed, pretrained) {
        (Some((dir, state)), _) => {
            let model = model.load_checkpoint(&dir.join(MODEL_FILE))?;
            let path = dir.join(OPTIMIZER_FILE);
            check_optimizer_file(&path, &model)?;
            let optimizer = optimizer.load(&path).map_err(|e| TrainError::Optimizer {
                path,
                message: format!("cannot load: {e:?}"),
            })?;
            let start = Start::Resumed {
                path: dir.clone(),
                iteration: state.iteration,
            };
            Ok((model, optimizer, start))
        }
        (None, Some(path)) => {
            let (model, report) = model.load_pytorch(path, LoadMode::Backbone)?;
            let start = Start::Pretrained {
                path: path.to_owned(),
                report,
            };
            Ok((model, optimizer, start))
        }
        (None, None) => Ok((model, optimizer, Start::Scratch)),
    }
}

/// A step's loss parts `[total, loc, conf]` (on the first device), its gradients, and the
/// positives of each device's share.
type Shares = (Tensor<1>, GradientsParams, Vec<usize>);

/// Sums each parameter's gradients from every device (Burn's [`MultiGradientsParams`]) onto one
/// device.
struct Merge<'a> {
    multi: &'a mut MultiGradientsParams,
    merged: &'a mut GradientsParams,
    device: &'a Device,
}

impl ModuleVisitor for Merge<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some((grad, _)) = self.multi.remove::<D>(param.id) {
            self.merged.register(param.id, grad.to_device(self.device));
        }
    }
}

fn batch_plan(config: &TrainConfig, len: usize) -> BatchPlan {
    BatchPlan {
        len,
        batch_size: config.batch_size,
        shuffle: Some(config.seed),
        keep_partial: false,
    }
}

fn training_dataset(
    config: &TrainConfig,
    model: &ssd_model::SsdConfig,
    dataset: &Arc<DetectionDataset>,
) -> Result<SsdDataset, TrainError> {
    let size = model.input_size() as u32;
    let augment = if config.use_augment {
        let mut a = Augment::ssd_train(size);
        if let Some(expand) = a.expand.as_mut() {
            expand.max_ratio = config.expand_ratio;
        }
        if config.expand_ratio <= 1.0 {
            a.expand = None;
        }
        if !config.photometric {
            a.photometric = None;
        }
        a
    } else {
        Augment::eval(size)
    }
    .normalized(model.mean_rgb, model.std_rgb);
    let encoder = TargetEncoder::new(&model.priors, config.overlap_threshold as f32)
        .map_err(|e| ssd_model::ModelError::from(ssd_model::ConfigError::Priors(e)))?;
    Ok(SsdDataset::train(
        Arc::clone(dataset),
        augment,
        encoder,
        !config.discard_difficult,
        config.seed,
    ))
}
