//! A VOC dataset over one or more roots: every annotation parsed and checked up front.

use std::path::{Path, PathBuf};

use image::RgbImage;
use ssd_core::{CornerBox, parallel_map};

use crate::image_io::image_header;
use crate::{Annotation, ClassList, DataError, ImageRef, ImageSet, load_rgb};

/// What opening a dataset found, for the caller to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DatasetReport {
    /// Images in the image set(s).
    pub images: usize,
    /// Objects kept after sanitising, difficult ones included.
    pub objects: usize,
    /// Of those, objects marked difficult.
    pub difficult: usize,
    /// Boxes partly outside their image, clipped to it.
    pub clipped: usize,
    /// Boxes dropped: inverted, zero-area or entirely outside the image.
    pub dropped: usize,
    /// Images without any (kept) object.
    pub images_without_objects: usize,
}

impl std::fmt::Display for DatasetReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} images, {} objects ({} difficult); {} boxes clipped to their image, {} dropped; \
             {} images without objects",
            self.images,
            self.objects,
            self.difficult,
            self.clipped,
            self.dropped,
            self.images_without_objects
        )
    }
}

/// One image with its ground truth, as read from disk.
#[derive(Debug, Clone)]
pub struct VocImage {
    /// The decoded RGB image.
    pub image: RgbImage,
    /// The annotation (all objects, with difficult flags).
    pub annotation: Annotation,
}

/// The images of `ImageSets/Main/<name>.txt` under one or more VOC roots, with their annotations.
///
/// [`VocDataset::open`] parses every annotation (on all cores) and checks that every image file
/// exists, so bad input is reported before any training starts, with the file named. Images are
/// decoded lazily by [`VocDataset::load`].
#[derive(Debug, Clone)]
pub struct VocDataset {
    set: ImageSet,
    classes: ClassList,
    annotations: Vec<Annotation>,
    report: DatasetReport,
}

impl VocDataset {
    /// Opens `ImageSets/Main/<image_set>.txt` under each root (e.g. `VOC2007` and `VOC2012` with
    /// `trainval`), reading class names against `classes`.
    pub fn open(roots: &[PathBuf], image_set: &str, classes: ClassList) -> Result<Self, DataError> {
        Self::open_checked(roots, image_set, classes, true)
    }

    /// Like [`VocDataset::open`] but without checking that the image files exist: for evaluating
    /// result files against annotations alone. [`VocDataset::load`] still needs the images.
    pub fn open_annotations(
        roots: &[PathBuf],
        image_set: &str,
        classes: ClassList,
    ) -> Result<Self, DataError> {
        Self::open_checked(roots, image_set, classes, false)
    }

    fn open_checked(
        roots: &[PathBuf],
        image_set: &str,
        classes: ClassList,
        check_images: bool,
    ) -> Result<Self, DataError> {
        let set = ImageSet::read(roots, image_set)?;
        let annotations = parse_all(&set, &classes, check_images)?;
        let mut report = DatasetReport {
            images: set.len(),
            ..DatasetReport::default()
        };
        for a in &annotations {
            report.objects += a.objects.len();
            report.difficult += a.objects.iter().filter(|o| o.difficult).count();
            report.clipped += a.report.clipped;
            report.dropped += a.report.dropped;
            report.images_without_objects += usize::from(a.objects.is_empty());
        }
        Ok(Self {
            set,
            classes,
            annotations,
            report,
        })
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

    /// The image set (roots, name, ids).
    pub fn image_set(&self) -> &ImageSet {
        &self.set
    }

    /// Image `index`'s root and id.
    pub fn image_ref(&self, index: usize) -> &ImageRef {
        &self.set.images[index]
    }

    /// Image `index`'s id.
    pub fn image_id(&self, index: usize) -> &str {
        &self.set.images[index].id
    }

    /// Image `index`'s annotation (all objects, with difficult flags).
    pub fn annotation(&self, index: usize) -> &Annotation {
        &self.annotations[index]
    }

    /// All annotations, in image-set order.
    pub fn annotations(&self) -> &[Annotation] {
        &self.annotations
    }

    /// Path of image `index`'s JPEG.
    pub fn image_path(&self, index: usize) -> PathBuf {
        self.set.image_path(&self.set.images[index])
    }

    /// Decodes image `index` and checks its size against the annotation.
    pub fn load(&self, index: usize) -> Result<VocImage, DataError> {
        let path = self.image_path(index);
        let image = load_rgb(&path)?;
        let annotation = self.annotations[index].clone();
        if [image.width(), image.height()] != [annotation.width, annotation.height] {
            return Err(DataError::SizeMismatch {
                image: path,
                annotation: self.set.annotation_path(&self.set.images[index]),
                image_size: [image.width(), image.height()],
                annotation_size: [annotation.width, annotation.height],
            });
        }
        Ok(VocImage { image, annotation })
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
                    annotation: self.set.annotation_path(&self.set.images[index]),
                    image_size: size,
                    annotation_size: [a.width, a.height],
                });
            }
            Ok(())
        });
        problems.into_iter().collect()
    }

    /// Image `index`'s ground truth for training: normalised boxes and 1-based labels, without
    /// difficult objects unless `keep_difficult`.
    pub fn ground_truth(&self, index: usize, keep_difficult: bool) -> (Vec<CornerBox>, Vec<usize>) {
        let a = &self.annotations[index];
        let (w, h) = (a.width as f32, a.height as f32);
        a.objects
            .iter()
            .filter(|o| keep_difficult || !o.difficult)
            .map(|o| {
                let b = o.bbox;
                (
                    CornerBox::new(b.xmin / w, b.ymin / h, b.xmax / w, b.ymax / h),
                    o.label,
                )
            })
            .unzip()
    }
}

/// Parses every annotation of `set` on all cores, and (if asked) checks each image file exists. The first
/// error in image-set order wins, so the message does not depend on thread timing.
fn parse_all(
    set: &ImageSet,
    classes: &ClassList,
    check_images: bool,
) -> Result<Vec<Annotation>, DataError> {
    let parse_one = |image: &ImageRef| -> Result<Annotation, DataError> {
        let annotation = Annotation::from_file(&set.annotation_path(image), classes)?;
        if check_images {
            check_exists(&set.image_path(image))?;
        }
        Ok(annotation)
    };
    parallel_map(&set.images, |_, image| parse_one(image))
        .into_iter()
        .collect()
}

fn check_exists(path: &Path) -> Result<(), DataError> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|source| DataError::from_io(path, source, |path| DataError::MissingImage { path }))
}
