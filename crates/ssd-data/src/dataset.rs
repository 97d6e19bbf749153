//! One dataset type over both formats: VOC roots or COCO files, every annotation parsed and
//! checked up front.

use std::path::{Path, PathBuf};

use image::RgbImage;
use ssd_core::{CornerBox, parallel_map};

use crate::coco;
use crate::image_io::image_header;
use crate::{Annotation, ClassList, DataError, ImageSet, load_rgb};

/// What opening a dataset found, for the caller to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DatasetReport {
    /// Images in the image set(s) or file(s).
    pub images: usize,
    /// Objects kept after sanitising, difficult ones and crowd regions included.
    pub objects: usize,
    /// Of those, objects marked difficult (VOC).
    pub difficult: usize,
    /// Of those, crowd regions (COCO `iscrowd`): not trained on, ignored regions in evaluation.
    pub crowd: usize,
    /// Boxes partly outside their image, clipped to it.
    pub clipped: usize,
    /// Boxes dropped: inverted, zero-area or entirely outside the image.
    pub dropped: usize,
    /// Images without any (kept) object.
    pub images_without_objects: usize,
    /// Images left out of training by [`DetectionDataset::for_training`] (COCO images without a
    /// training target).
    pub skipped_for_training: usize,
}

impl std::fmt::Display for DatasetReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} images, {} objects ({} difficult, {} crowd regions); {} boxes clipped to their \
             image, {} dropped; {} images without objects",
            self.images,
            self.objects,
            self.difficult,
            self.crowd,
            self.clipped,
            self.dropped,
            self.images_without_objects
        )?;
        if self.skipped_for_training > 0 {
            write!(
                f,
                " ({} of them left out of training, as lufficc/SSD and torchvision do)",
                self.skipped_for_training
            )?;
        }
        Ok(())
    }
}

/// The two annotation formats a [`DetectionDataset`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetFormat {
    /// PASCAL VOC: `Annotations/<id>.xml`, `JPEGImages/<id>.jpg`, `ImageSets/Main/<set>.txt`.
    Voc,
    /// COCO: an `instances_<set>.json` file and a folder of images.
    Coco,
}

impl DatasetFormat {
    /// `voc` or `coco`.
    pub fn name(self) -> &'static str {
        match self {
            DatasetFormat::Voc => "voc",
            DatasetFormat::Coco => "coco",
        }
    }
}

/// Where a dataset is: what `--dataroot`, `--datanames` and `--images` say.
///
/// Each root is recognised from what it holds:
/// - a VOC root (`ImageSets/Main/<name>.txt` inside): the image set `name` of it;
/// - a COCO root (`annotations/instances_<name>.json` inside): that file, images in `ROOT/<name>/`;
/// - a `.json` file: a COCO file, images beside it (or in `images`).
///
/// Several roots make one dataset; they must all be of one format (and for COCO, have the same
/// categories).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataLocation {
    /// The roots (folders or COCO files).
    pub roots: Vec<PathBuf>,
    /// The image set (VOC) or annotation set (COCO: `instances_<name>.json`).
    pub name: String,
    /// The folder of a COCO file's images, when they are not beside it.
    pub images: Option<PathBuf>,
}

/// A root as [`DataLocation::resolve`] recognised it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Voc(PathBuf),
    Coco { file: PathBuf, images: PathBuf },
}

impl DataLocation {
    /// A location of `roots` and `name`, images where the format puts them.
    pub fn new(roots: &[PathBuf], name: &str) -> Self {
        Self {
            roots: roots.to_vec(),
            name: name.to_owned(),
            images: None,
        }
    }

    fn resolve(&self) -> Result<(DatasetFormat, Vec<Source>), DataError> {
        let mut sources = Vec::with_capacity(self.roots.len());
        for root in &self.roots {
            let unknown = |reason: String| DataError::UnknownLayout {
                path: root.clone(),
                reason,
            };
            let source = if root.is_file() {
                if root.extension().and_then(|e| e.to_str()) != Some("json") {
                    return Err(unknown("not a folder, and not a COCO .json file".into()));
                }
                Source::Coco {
                    file: root.clone(),
                    images: self
                        .images
                        .clone()
                        .unwrap_or_else(|| coco::default_images_dir(root)),
                }
            } else if root
                .join("annotations")
                .join(self.coco_file_name())
                .is_file()
            {
                Source::Coco {
                    file: root.join("annotations").join(self.coco_file_name()),
                    images: self.images.clone().unwrap_or_else(|| root.join(&self.name)),
                }
            } else if root.join("ImageSets").is_dir() || root.join("Annotations").is_dir() {
                Source::Voc(root.clone())
            } else if !root.exists() {
                return Err(unknown("not found".into()));
            } else {
                return Err(unknown(format!(
                    "neither a VOC root (ImageSets/Main/{}.txt) nor a COCO root \
                     (annotations/{}) nor a COCO .json file",
                    self.name,
                    self.coco_file_name()
                )));
            };
            sources.push(source);
        }
        let format = match sources.first() {
            Some(Source::Voc(_)) => DatasetFormat::Voc,
            Some(Source::Coco { .. }) => DatasetFormat::Coco,
            None => {
                return Err(DataError::UnknownLayout {
                    path: PathBuf::new(),
                    reason: "no dataset root given".into(),
                });
            }
        };
        if let Some((i, _)) = sources
            .iter()
            .enumerate()
            .find(|(_, s)| matches!(s, Source::Voc(_)) != (format == DatasetFormat::Voc))
        {
            return Err(DataError::UnknownLayout {
                path: self.roots[i].clone(),
                reason: format!(
                    "a {} root among {} roots: one dataset has one format",
                    if format == DatasetFormat::Voc {
                        "COCO"
                    } else {
                        "VOC"
                    },
                    format.name().to_uppercase()
                ),
            });
        }
        Ok((format, sources))
    }

    fn coco_file_name(&self) -> String {
        format!("instances_{}.json", self.name)
    }

    /// The format the roots are in.
    pub fn format(&self) -> Result<DatasetFormat, DataError> {
        Ok(self.resolve()?.0)
    }

    /// The classes the dataset defines itself: a COCO file's categories (ids ascending, read
    /// without the rest of the file; with several files, the first file's), a VOC root's
    /// `classes.txt` (one name per line, as the synthetic writer and many exporters leave
    /// beside the data), `None` for a VOC root without one (the caller's list, else the 20 VOC
    /// classes, apply).
    pub fn own_classes(&self) -> Result<Option<ClassList>, DataError> {
        let (_, sources) = self.resolve()?;
        match sources.first() {
            Some(Source::Coco { file, .. }) => coco::read_classes(file).map(Some),
            _ => {
                let roots: Vec<PathBuf> = sources
                    .into_iter()
                    .filter_map(|s| match s {
                        Source::Voc(root) => Some(root),
                        Source::Coco { .. } => None,
                    })
                    .collect();
                voc_own_classes(&roots)
            }
        }
    }
}

/// One image with its ground truth, as read from disk.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The decoded RGB image.
    pub image: RgbImage,
    /// The annotation (all objects, with difficult flags).
    pub annotation: Annotation,
}

/// One image of a dataset: its id, file and where its annotation comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// The image id: the VOC id (`000001`), or a COCO image's `id` in decimal.
    pub id: String,
    /// A COCO image's `id` (`None` for VOC).
    pub coco_id: Option<u64>,
    /// The image file.
    pub path: PathBuf,
    /// The annotation file it was read from (for errors).
    pub annotation_file: PathBuf,
}

/// The images of a dataset with their annotations, in one format-neutral form: the image set of
/// one or more VOC roots (e.g. VOC2007 and VOC2012 `trainval`), or one or more COCO files
/// (COCO 2014 `train` and `valminusminival`).
///
/// [`DetectionDataset::open`] parses every annotation (VOC on all cores) and checks that every image file
/// exists, so bad input is reported before any training starts, with the file named. Images are
/// decoded lazily by [`DetectionDataset::load`].
#[derive(Debug, Clone)]
pub struct DetectionDataset {
    format: DatasetFormat,
    name: String,
    /// The files that list the dataset: VOC image sets, COCO annotation files.
    sources: Vec<PathBuf>,
    /// Whether the categories are the dataset's own (COCO's), not numbered from the classes.
    own_categories: bool,
    images: Vec<ImageEntry>,
    classes: ClassList,
    /// The dataset's own categories `(id, name)`, ids ascending.
    categories: Vec<(u64, String)>,
    /// The category id of each label (index `label - 1`), `None` for a class the file lacks.
    category_of_label: Vec<Option<u64>>,
    annotations: Vec<Annotation>,
    report: DatasetReport,
}

impl DetectionDataset {
    /// Opens `name` under each root (see [`DataLocation`]): VOC roots with image set `name`
    /// (classes: `classes`, else the 20 VOC classes), or COCO roots or files (classes: the
    /// file's categories, or mapped onto `classes` by category id or name when given).
    pub fn open(
        roots: &[PathBuf],
        name: &str,
        classes: impl Into<Option<ClassList>>,
    ) -> Result<Self, DataError> {
        Self::open_at(&DataLocation::new(roots, name), classes.into(), true)
    }

    /// Like [`DetectionDataset::open`] but without checking that the image files exist: for evaluating
    /// result files against annotations alone. [`DetectionDataset::load`] still needs the images.
    pub fn open_annotations(
        roots: &[PathBuf],
        name: &str,
        classes: impl Into<Option<ClassList>>,
    ) -> Result<Self, DataError> {
        Self::open_at(&DataLocation::new(roots, name), classes.into(), false)
    }

    /// Opens a [`DataLocation`]; `check_images` checks that every image file exists.
    pub fn open_at(
        location: &DataLocation,
        classes: Option<ClassList>,
        check_images: bool,
    ) -> Result<Self, DataError> {
        let (format, sources) = location.resolve()?;
        let listed;
        let (images, annotations, classes, categories, category_of_label) = match format {
            DatasetFormat::Voc => {
                let roots: Vec<PathBuf> = sources
                    .iter()
                    .filter_map(|s| match s {
                        Source::Voc(root) => Some(root.clone()),
                        Source::Coco { .. } => None,
                    })
                    .collect();
                let classes = match classes {
                    Some(classes) => classes,
                    None => voc_own_classes(&roots)?.unwrap_or_else(ClassList::voc),
                };
                let set = ImageSet::read(&roots, &location.name)?;
                listed = set.files();
                let annotations = parse_voc(&set, &classes)?;
                let images = set
                    .images
                    .iter()
                    .map(|r| ImageEntry {
                        id: r.id.clone(),
                        coco_id: None,
                        path: set.image_path(r),
                        annotation_file: set.annotation_path(r),
                    })
                    .collect();
                let categories = (1..=classes.len())
                    .filter_map(|l| Some((classes.category_id(l)?, classes.name(l)?.to_owned())))
                    .collect();
                let of_label = (1..=classes.len())
                    .map(|l| classes.category_id(l))
                    .collect();
                (images, annotations, classes, categories, of_label)
            }
            DatasetFormat::Coco => {
                listed = sources
                    .iter()
                    .filter_map(|s| match s {
                        Source::Coco { file, .. } => Some(file.clone()),
                        Source::Voc(_) => None,
                    })
                    .collect();
                open_coco(&sources, classes)?
            }
        };
        if check_images {
            // All of them, on all cores; the first missing one in dataset order is the error.
            let missing: Result<(), DataError> =
                parallel_map(&images, |_, e: &ImageEntry| check_exists(&e.path))
                    .into_iter()
                    .collect();
            missing?;
        }
        let mut report = DatasetReport {
            images: images.len(),
            ..DatasetReport::default()
        };
        for a in &annotations {
            report.objects += a.objects.len();
            report.difficult += a.objects.iter().filter(|o| o.difficult).count();
            report.crowd += a.objects.iter().filter(|o| o.crowd).count();
            report.clipped += a.report.clipped;
            report.dropped += a.report.dropped;
            report.images_without_objects += usize::from(a.objects.is_empty());
        }
        Ok(Self {
            format,
            name: location.name.clone(),
            sources: listed,
            own_categories: format == DatasetFormat::Coco,
            images,
            classes,
            categories,
            category_of_label,
            annotations,
            report,
        })
    }

    /// The dataset training sees. For COCO, the images without a training target (no object,
    /// or only crowd regions) are left out, as lufficc/SSD and torchvision train on COCO; a VOC
    /// image set is kept whole (as amdegroot and lufficc train on VOC). The report counts what
    /// was left out ([`DatasetReport::skipped_for_training`]).
    pub fn for_training(mut self) -> Self {
        if self.format != DatasetFormat::Coco {
            return self;
        }
        let keep: Vec<bool> = self
            .annotations
            .iter()
            .map(|a| a.objects.iter().any(|o| !o.crowd))
            .collect();
        let before = self.images.len();
        let mut flags = keep.iter();
        self.images.retain(|_| *flags.next().unwrap_or(&false));
        let mut flags = keep.iter();
        self.annotations.retain(|_| *flags.next().unwrap_or(&false));
        self.report.skipped_for_training = before - self.images.len();
        self
    }

    /// The dataset's own categories `(id, name)`, ids ascending: a COCO file's, or for VOC the
    /// classes numbered `1..=K`.
    pub fn categories(&self) -> &[(u64, String)] {
        &self.categories
    }

    /// The files that list the dataset's images (VOC image sets, COCO annotation files), for
    /// messages about the dataset as a whole.
    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }

    /// The category ids the dataset's files define themselves (a COCO file's, ascending); `None`
    /// where the categories are the class list numbered (VOC).
    pub fn own_category_ids(&self) -> Option<Vec<u64>> {
        self.own_categories
            .then(|| self.categories.iter().map(|c| c.0).collect())
    }

    /// The dataset's category id of 1-based class `label`; `None` for a class of the caller's
    /// list that the file does not have (or a label out of range).
    pub fn category_of_label(&self, label: usize) -> Option<u64> {
        label
            .checked_sub(1)
            .and_then(|i| self.category_of_label.get(i).copied().flatten())
    }

    /// The format the dataset was read from.
    pub fn format(&self) -> DatasetFormat {
        self.format
    }

    /// The image set or annotation set name (`trainval`, `val2017`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Number of images.
    pub fn len(&self) -> usize {
        self.annotations.len()
    }

    /// True when there are no images (never, for a dataset that opened).
    pub fn is_empty(&self) -> bool {
        self.annotations.is_empty()
    }

    /// The class list.
    pub fn classes(&self) -> &ClassList {
        &self.classes
    }

    /// The counts gathered while opening.
    pub fn report(&self) -> DatasetReport {
        self.report
    }

    /// Image `index`'s id, file and annotation file.
    pub fn image_entry(&self, index: usize) -> &ImageEntry {
        &self.images[index]
    }

    /// Image `index`'s id.
    pub fn image_id(&self, index: usize) -> &str {
        &self.images[index].id
    }

    /// Image `index`'s annotation (all objects, with difficult flags).
    pub fn annotation(&self, index: usize) -> &Annotation {
        &self.annotations[index]
    }

    /// All annotations, in image-set order.
    pub fn annotations(&self) -> &[Annotation] {
        &self.annotations
    }

    /// Path of image `index`'s file.
    pub fn image_path(&self, index: usize) -> PathBuf {
        self.images[index].path.clone()
    }

    /// Decodes image `index` and checks its size against the annotation.
    pub fn load(&self, index: usize) -> Result<LoadedImage, DataError> {
        let path = self.image_path(index);
        let image = load_rgb(&path)?;
        let annotation = self.annotations[index].clone();
        if [image.width(), image.height()] != [annotation.width, annotation.height] {
            return Err(DataError::SizeMismatch {
                image: path,
                annotation: self.images[index].annotation_file.clone(),
                image_size: [image.width(), image.height()],
                annotation_size: [annotation.width, annotation.height],
            });
        }
        Ok(LoadedImage { image, annotation })
    }

    /// Checks every image without decoding it, on all cores: the file exists, a JPEG is complete
    /// (not truncated), and the header's size is the annotation's. The first problem in image-set
    /// order is the error. Training calls this before its first step, so a bad file is found at
    /// the start rather than when its batch comes.
    pub fn check_images(&self) -> Result<(), DataError> {
        let indices: Vec<usize> = (0..self.len()).collect();
        let problems = parallel_map(&indices, |_, &index| {
            let path = self.image_path(index);
            let size = image_header(&path)?;
            let a = &self.annotations[index];
            if size != [a.width, a.height] {
                return Err(DataError::SizeMismatch {
                    image: path,
                    annotation: self.images[index].annotation_file.clone(),
                    image_size: size,
                    annotation_size: [a.width, a.height],
                });
            }
            Ok(())
        });
        problems.into_iter().collect()
    }

    /// Image `index`'s ground truth for training: normalised boxes and 1-based labels, without
    /// crowd regions, and without difficult objects unless `keep_difficult`.
    pub fn ground_truth(&self, index: usize, keep_difficult: bool) -> (Vec<CornerBox>, Vec<usize>) {
        self.annotations[index].training_targets(keep_difficult)
    }
}

type Opened = (
    Vec<ImageEntry>,
    Vec<Annotation>,
    ClassList,
    Vec<(u64, String)>,
    Vec<Option<u64>>,
);

/// Reads every COCO file; the first file's categories are the classes (unless `classes`), and
/// every other file must have the same.
fn open_coco(sources: &[Source], classes: Option<ClassList>) -> Result<Opened, DataError> {
    let mut images = Vec::new();
    let mut annotations = Vec::new();
    let mut classes = classes;
    let mut first: Option<(PathBuf, ClassList)> = None;
    let mut labels = std::collections::HashMap::new();
    let mut seen_ids = std::collections::HashMap::new();
    for source in sources {
        let Source::Coco { file, images: dir } = source else {
            continue;
        };
        let contents = coco::read_file(file, classes.as_ref())?;
        match &first {
            None => {
                first = Some((file.clone(), contents.own.clone()));
                classes = Some(contents.classes.clone());
                labels = contents.labels.clone();
            }
            Some((first_file, first_own)) if *first_own != contents.own => {
                return Err(DataError::InvalidCoco {
                    path: file.clone(),
                    json_path: "categories".into(),
                    reason: format!(
                        "the categories differ from those of {}: one dataset has one category \
                         table",
                        first_file.display()
                    ),
                });
            }
            Some(_) => {}
        }
        for entry in contents.images {
            if let Some(other) = seen_ids.insert(entry.id, file.clone()) {
                return Err(DataError::InvalidCoco {
                    path: file.clone(),
                    json_path: "images".into(),
                    reason: format!("image id {} is also in {}", entry.id, other.display()),
                });
            }
            images.push(ImageEntry {
                id: entry.id.to_string(),
                coco_id: Some(entry.id),
                path: dir.join(&entry.file_name),
                annotation_file: file.clone(),
            });
            annotations.push(entry.annotation);
        }
    }
    let (Some(classes), Some((_, own))) = (classes, first) else {
        return Err(DataError::UnknownLayout {
            path: PathBuf::new(),
            reason: "no COCO file".into(),
        });
    };
    let categories = (1..=own.len())
        .filter_map(|l| Some((own.category_id(l)?, own.name(l)?.to_owned())))
        .collect();
    let mut of_label = vec![None; classes.len()];
    for (id, label) in labels {
        if let Some(slot) = label.checked_sub(1).and_then(|i| of_label.get_mut(i)) {
            *slot = Some(id);
        }
    }
    Ok((images, annotations, classes, categories, of_label))
}

/// The class list VOC roots bring: their `classes.txt`, which every root that has one must
/// agree on; `None` when none has one.
fn voc_own_classes(roots: &[PathBuf]) -> Result<Option<ClassList>, DataError> {
    let mut found: Option<(PathBuf, ClassList)> = None;
    for root in roots {
        let file = root.join("classes.txt");
        if !file.is_file() {
            continue;
        }
        let classes = ClassList::from_file(&file)?;
        match &found {
            Some((first, theirs)) if theirs.names() != classes.names() => {
                return Err(DataError::UnknownLayout {
                    path: file,
                    reason: format!(
                        "lists other classes than {}: one dataset has one class list",
                        first.display()
                    ),
                });
            }
            Some(_) => {}
            None => found = Some((file, classes)),
        }
    }
    Ok(found.map(|(_, classes)| classes))
}

/// Parses every annotation of `set` on all cores. The first error in image-set order wins, so
/// the message does not depend on thread timing.
fn parse_voc(set: &ImageSet, classes: &ClassList) -> Result<Vec<Annotation>, DataError> {
    parallel_map(&set.images, |_, image| {
        Annotation::from_file(&set.annotation_path(image), classes)
    })
    .into_iter()
    .collect()
}

fn check_exists(path: &Path) -> Result<(), DataError> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|source| DataError::from_io(path, source, |path| DataError::MissingImage { path }))
}
