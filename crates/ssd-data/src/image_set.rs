//! Image sets (`ImageSets/Main/<name>.txt`) over one or more VOC roots.

use std::path::{Path, PathBuf};

use crate::DataError;

/// One image of an image set: which root it comes from and its id (`000001`, `2008_000008`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Index into the roots the set was read from.
    pub root: usize,
    /// The image id, the file stem of `JPEGImages/<id>.jpg` and `Annotations/<id>.xml`.
    pub id: String,
}

/// The image ids of `ImageSets/Main/<name>.txt` under each root, in root order then file order
/// (e.g. roots `VOC2007, VOC2012` and name `trainval` for the usual 07+12 training set).
///
/// Each non-blank line's first token is the id, so class-specific sets (`dog_trainval.txt`, lines
/// `000005 -1`) work too. A missing set file is [`DataError::MissingImageSet`]; an empty one is
/// [`DataError::EmptyImageSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// The VOC roots (folders holding `Annotations/`, `JPEGImages/`, `ImageSets/`).
    pub roots: Vec<PathBuf>,
    /// The image-set name.
    pub name: String,
    /// The images, root by root.
    pub images: Vec<ImageRef>,
}

impl ImageSet {
    /// The set files read: `ImageSets/Main/<name>.txt` of each root.
    pub fn files(&self) -> Vec<PathBuf> {
        self.roots.iter().map(|r| set_path(r, &self.name)).collect()
    }

    /// Reads `ImageSets/Main/<name>.txt` under every root.
    pub fn read(roots: &[PathBuf], name: &str) -> Result<Self, DataError> {
        let mut images = Vec::new();
        for (root, dir) in roots.iter().enumerate() {
            let path = set_path(dir, name);
            let text = std::fs::read_to_string(&path).map_err(|source| {
                DataError::from_io(&path, source, |path| DataError::MissingImageSet { path })
            })?;
            let before = images.len();
            // A byte-order mark (some editors write one) is not part of the first id.
            let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
            images.extend(
                text.lines()
                    .filter_map(|l| l.split_whitespace().next())
                    .map(|id| ImageRef {
                        root,
                        id: id.to_owned(),
                    }),
            );
            if images.len() == before {
                return Err(DataError::EmptyImageSet { path });
            }
        }
        Ok(Self {
            roots: roots.to_vec(),
            name: name.to_owned(),
            images,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// True when there are no images (never, for a set that was read successfully).
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// `Annotations/<id>.xml` of an image.
    pub fn annotation_path(&self, image: &ImageRef) -> PathBuf {
        self.roots[image.root]
            .join("Annotations")
            .join(format!("{}.xml", image.id))
    }

    /// `JPEGImages/<id>.jpg` of an image.
    pub fn image_path(&self, image: &ImageRef) -> PathBuf {
        self.roots[image.root]
            .join("JPEGImages")
            .join(format!("{}.jpg", image.id))
    }
}

fn set_path(root: &Path, name: &str) -> PathBuf {
    root.join("ImageSets")
        .join("Main")
        .join(format!("{name}.txt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root(tag: &str, set: &str, text: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("ssd-imageset-{}-{tag}", std::process::id()));
        let main = root.join("ImageSets").join("Main");
        std::fs::create_dir_all(&main).ok();
        std::fs::write(main.join(format!("{set}.txt")), text).ok();
        root
    }

    #[test]
    fn reads_several_roots_in_order() {
        let a = temp_root("a", "trainval", "000001\n000002\n\n");
        let b = temp_root("b", "trainval", "2008_000008 1\n2008_000015 -1\n");
        let set = ImageSet::read(&[a.clone(), b.clone()], "trainval").expect("both sets exist");
        let ids: Vec<(usize, &str)> = set.images.iter().map(|i| (i.root, i.id.as_str())).collect();
        assert_eq!(
            ids,
            vec![
                (0, "000001"),
                (0, "000002"),
                (1, "2008_000008"),
                (1, "2008_000015")
            ]
        );
        assert_eq!(
            set.annotation_path(&set.images[2]),
            b.join("Annotations/2008_000008.xml")
        );
        assert_eq!(
            set.image_path(&set.images[0]),
            a.join("JPEGImages/000001.jpg")
        );
        for r in [a, b] {
            std::fs::remove_dir_all(r).ok();
        }
    }

    #[test]
    fn missing_and_empty_sets_are_errors() {
        let root = temp_root("c", "empty", "\n\n");
        assert!(matches!(
            ImageSet::read(std::slice::from_ref(&root), "test"),
            Err(DataError::MissingImageSet { .. })
        ));
        assert!(matches!(
            ImageSet::read(std::slice::from_ref(&root), "empty"),
            Err(DataError::EmptyImageSet { .. })
        ));
        std::fs::remove_dir_all(root).ok();
    }
}
