//! Run resolution: what a user asks of a run (a checkpoint to resume, a settings file, overrides
//! such as the flags of `ssd train`) becomes the settings of a run, by one set of rules that the
//! `ssd` binary and any other program share:
//!
//! - **Precedence**: the recipe of the checkpoint when resuming, else the recipe preset's
//!   ([`Recipe`]: the model preset's own, the paper's unless a COCO preset says otherwise; or the
//!   quickstart's); then the settings file's keys; then the overrides. A key absent everywhere
//!   keeps the recipe's value.
//! - **Names**: a new run's checkpoints are named after its model (`ssd300`, or a JSON model
//!   file's stem; the quickstart's recipe names them `quickstart`) unless the file or the
//!   overrides name them.
//! - **Network and classes**: a resumed run keeps its checkpoint's network, classes and category
//!   ids (a model or class list asked for may only repeat them); a new run takes the model asked
//!   for (else the recipe's: `ssd300`, the quickstart's `small`; a preset started from an
//!   ImageNet backbone with that backbone's tail and width) and the class list file asked
//!   for, else the dataset's own (a COCO
//!   file's categories with their ids, a VOC root's `classes.txt`, else the 20 VOC classes).
//! - **Checks first**: every setting is range-checked before any data is read.
//!
//! The checkpoint, the settings file and the dataset are each read once: a dataset opened to
//! learn its classes is handed to the [`Trainer`](crate::Trainer) with the settings.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;
use ssd_data::{ClassList, DataLocation, DetectionDataset};
use ssd_model::SsdConfig;

use crate::{TrainConfig, TrainError, TrainOverrides, TrainSettings, TrainState, read_state};

/// Which recipe a new run starts from, before the settings file and the overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recipe {
    /// The model preset's ([`TrainConfig::for_preset`]): the paper's VOC recipe, or lufficc's
    /// COCO schedule for `ssd300-coco` and `ssd512-coco`.
    #[default]
    Preset,
    /// `ssd quickstart`'s ([`TrainConfig::quickstart`]), scaled to the iterations asked for.
    Quickstart,
}

impl Recipe {
    /// The network of a new run when none is asked for: the paper's SSD300, or the quickstart's
    /// small preset.
    pub fn default_model(self) -> &'static str {
        match self {
            Recipe::Preset => "ssd300",
            Recipe::Quickstart => "small",
        }
    }

    /// The recipe for `model` (a preset name or a model file) trained for `iterations` when the
    /// overrides say so.
    pub fn config(self, model: &str, iterations: Option<u64>) -> TrainConfig {
        match self {
            Recipe::Preset => TrainConfig::for_preset(model),
            Recipe::Quickstart => {
                TrainConfig::quickstart(iterations.unwrap_or(TrainConfig::QUICKSTART_ITERATIONS))
            }
        }
    }
}

/// What a user asks of a run.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// A checkpoint folder to continue from.
    pub resume: Option<PathBuf>,
    /// A settings file: TOML, or JSON for a `.json` name; keys are [`TrainOverrides`]' (the
    /// flags' names, `batch-size = 32`).
    pub settings_file: Option<PathBuf>,
    /// What wins over the file (the flags).
    pub overrides: TrainOverrides,
    /// The recipe of a new run.
    pub recipe: Recipe,
}

/// A resolved run: its settings but the devices, which the caller picks with the backend asked
/// for ([`ResolvedRun::backend`]).
#[derive(Debug, Clone)]
pub struct ResolvedRun {
    /// The recipe.
    pub config: TrainConfig,
    /// The network.
    pub model: SsdConfig,
    /// The classes (with their category ids, for COCO data).
    pub classes: ClassList,
    /// The checkpoint to continue from.
    pub resume: Option<PathBuf>,
    /// The backend asked for by name, if any.
    pub backend: Option<String>,
    /// The dataset, when it was opened to learn the classes.
    dataset: Option<Arc<DetectionDataset>>,
}

impl ResolvedRun {
    /// The settings of a [`Trainer`](crate::Trainer) on `devices`; `overwrite` replaces the
    /// checkpoints of an earlier run of the same name.
    pub fn into_settings(self, devices: Vec<Device>, overwrite: bool) -> TrainSettings {
        TrainSettings {
            config: self.config,
            model: self.model,
            classes: self.classes,
            devices,
            resume: self.resume,
            overwrite,
            dataset: self.dataset,
        }
    }
}

/// A request with its checkpoint and file read: what they and the overrides ask, and the recipe.
struct Settled {
    resumed: Option<(PathBuf, TrainState)>,
    asked: TrainOverrides,
    config: TrainConfig,
}

impl RunRequest {
    /// The recipe of the run alone (the precedence and naming rules of the module's doc,
    /// range-checked), without reading the data: to check a request before writing anything.
    pub fn config(&self) -> Result<TrainConfig, TrainError> {
        Ok(self.settle()?.config)
    }

    fn settle(&self) -> Result<Settled, TrainError> {
        let resumed = self.resume.as_deref().map(read_state).transpose()?;
        let file = self
            .settings_file
            .as_deref()
            .map(read_settings_file)
            .transpose()?;
        let asked = file.unwrap_or_default().then(&self.overrides);
        let model = asked
            .model
            .as_deref()
            .unwrap_or(self.recipe.default_model());
        let mut config = match &resumed {
            Some((_, state)) => state.config.clone(),
            None => self.recipe.config(model, asked.iterations),
        };
        asked.apply(&mut config);
        // A new run of a model preset's recipe is named after its model (the quickstart's
        // recipe names its own).
        if resumed.is_none() && asked.model_save_name.is_none() && self.recipe == Recipe::Preset {
            config.model_save_name = save_name(model);
        }
        config.validate()?;
        Ok(Settled {
            resumed,
            asked,
            config,
        })
    }

    /// Applies the rules of the module's doc.
    pub fn resolve(&self) -> Result<ResolvedRun, TrainError> {
        // Every setting is checked before the data is looked at.
        let Settled {
            resumed,
            asked,
            config,
        } = self.settle()?;
        let (model, classes, dataset) = match &resumed {
            Some((dir, state)) => {
                let (model, classes) = resumed_network(dir, state, &asked)?;
                (model, classes, None)
            }
            None => {
                let (classes, dataset) = match &asked.classes {
                    Some(file) => (ClassList::from_file(file)?, None),
                    None => {
                        let location = DataLocation {
                            roots: config.dataroot.clone(),
                            name: config.datanames.clone(),
                            images: config.images.clone(),
                        };
                        let dataset = DetectionDataset::open_at(&location, None, true)?;
                        (dataset.classes().clone(), Some(Arc::new(dataset)))
                    }
                };
                let name = asked
                    .model
                    .as_deref()
                    .unwrap_or(self.recipe.default_model());
                let mut model = named_model(name, &classes)?;
                // A preset started from an ImageNet backbone takes its widths (a model file
                // says its own).
                if let Some(path) = &config.pretrained_model
                    && !name.ends_with(".json")
                {
                    model
                        .fit_backbone(&ssd_model::pth_entries(path)?)
                        .map_err(|source| ssd_model::ModelError::StateDict {
                            path: path.clone(),
                            source,
                        })?;
                }
                (model, classes, dataset)
            }
        };
        Ok(ResolvedRun {
            config,
            model,
            classes,
            resume: resumed.map(|(dir, _)| dir),
            backend: asked.backend,
            dataset,
        })
    }
}

/// A model's checkpoint name: the preset's name, or a model file's stem.
fn save_name(model: &str) -> String {
    Path::new(model)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("ssd")
        .to_owned()
}

fn named_model(name: &str, classes: &ClassList) -> Result<SsdConfig, TrainError> {
    SsdConfig::named(name, classes.num_classes_with_background()).map_err(|source| {
        TrainError::ModelName {
            name: name.to_owned(),
            source,
        }
    })
}

/// Reads a settings file: TOML, or JSON for a `.json` name, one typed pass; an unknown key is an
/// error naming it.
pub fn read_settings_file(path: &Path) -> Result<TrainOverrides, TrainError> {
    let bad = |message: String| TrainError::SettingsFile {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let value: serde_json::Value = if path.extension().and_then(|e| e.to_str()) == Some("json") {
        serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?
    } else {
        // Through JSON's data model, which takes whole numbers for decimal settings (`lr = 1`).
        let table: toml::Value = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        serde_json::to_value(table).map_err(|e| bad(e.to_string()))?
    };
    if !value.is_object() {
        return Err(bad("expected a table of settings".to_owned()));
    }
    serde_json::from_value(value).map_err(|e| bad(e.to_string()))
}

/// The network and classes of a resumed run: the checkpoint's (with its category ids); a model
/// or class list asked for may only repeat them.
fn resumed_network(
    dir: &Path,
    state: &TrainState,
    asked: &TrainOverrides,
) -> Result<(SsdConfig, ClassList), TrainError> {
    let refuse = |message: String| TrainError::Resume {
        path: dir.to_owned(),
        message,
    };
    let classes = ClassList::new(state.classes.clone())
        .and_then(|c| match &state.category_ids {
            Some(ids) => c.with_category_ids(ids.clone()),
            None => Ok(c),
        })
        .map_err(|e| refuse(format!("its class names: {e}")))?;
    if let Some(file) = &asked.classes
        && ClassList::from_file(file)?.names() != classes.names()
    {
        return Err(refuse(
            "--classes differs from the checkpoint's classes".to_owned(),
        ));
    }
    if let Some(name) = &asked.model
        && named_model(name, &classes)? != state.model
    {
        return Err(refuse(format!(
            "--model {name} differs from the checkpoint's network"
        )));
    }
    Ok((state.model.clone(), classes))
}

/// `command` with each recipe flag's help ending in its default under `recipe` (`[default:
/// 32]`; for `--model`, the recipe's model), so that defaults are stated once, in
/// [`TrainConfig`] and its presets. Flags that are not recipe settings are left alone.
#[cfg(feature = "clap")]
pub fn show_defaults(command: clap::Command, recipe: Recipe) -> clap::Command {
    let model = recipe.default_model();
    let Ok(serde_json::Value::Object(mut values)) =
        serde_json::to_value(recipe.config(model, None))
    else {
        return command;
    };
    values.insert("model".to_owned(), model.into());
    values.into_iter().fold(command, |command, (key, value)| {
        let id = key.replace('-', "_");
        let shown = match &value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|v| v.to_string().trim_matches('"').to_owned())
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        if !shown.is_empty() && command.get_arguments().any(|a| a.get_id() == id.as_str()) {
            command.mut_arg(id, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                arg.help(format!("{help} [default: {shown}]"))
            })
        } else {
            command
        }
    })
}
