//! Class lists: the 20 PASCAL VOC classes, or one name per line from a file.

use std::path::Path;

use crate::DataError;

/// The 20 PASCAL VOC classes in the alphabetical order of the devkit; class index `i + 1` is
/// `VOC_CLASSES[i]` (index 0 is the background).
pub const VOC_CLASSES: [&str; 20] = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// The object classes of a dataset, without the background. Class index 0 is the background;
/// `name(i)` for `i` in `1..=len()` is a real class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassList {
    names: Vec<String>,
}

impl Default for ClassList {
    /// The 20 VOC classes.
    fn default() -> Self {
        Self::voc()
    }
}

impl ClassList {
    /// The 20 PASCAL VOC classes ([`VOC_CLASSES`]).
    pub fn voc() -> Self {
        Self {
            names: VOC_CLASSES.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// A class list from names in order (class index `i + 1` is `names[i]`). Names must be
    /// non-empty, without whitespace, and unique.
    pub fn new(names: Vec<String>) -> Result<Self, DataError> {
        Self::checked(names, Path::new("<in memory>"))
    }

    /// Reads one class name per line; blank lines and lines starting with `#` are skipped.
    pub fn from_file(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
            path: path.to_owned(),
            source,
        })?;
        // A byte-order mark (some editors write one) is not part of the first name.
        let names = text
            .strip_prefix('\u{feff}')
            .unwrap_or(&text)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        Self::checked(names, path)
    }

    fn checked(names: Vec<String>, path: &Path) -> Result<Self, DataError> {
        if names.is_empty() {
            return Err(DataError::BadClassList {
                path: path.to_owned(),
                reason: "no class names".into(),
            });
        }
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() || name.chars().any(char::is_whitespace) {
                return Err(DataError::BadClassList {
                    path: path.to_owned(),
                    reason: format!("class {} ({name:?}) is empty or contains whitespace", i + 1),
                });
            }
            if names[..i].contains(name) {
                return Err(DataError::BadClassList {
                    path: path.to_owned(),
                    reason: format!("class {name:?} is listed twice"),
                });
            }
        }
        Ok(Self { names })
    }

    /// Number of object classes (20 for VOC), not counting the background.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Always false: a class list has at least one class.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Number of network outputs per prior: the classes plus the background (21 for VOC).
    pub fn num_classes_with_background(&self) -> usize {
        self.names.len() + 1
    }

    /// The 1-based class index of `name`, if it is in the list.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name).map(|i| i + 1)
    }

    /// The name of 1-based class index `index`; `None` for 0 (background) or out of range.
    pub fn name(&self, index: usize) -> Option<&str> {
        index
            .checked_sub(1)
            .and_then(|i| self.names.get(i))
            .map(String::as_str)
    }

    /// The names, in class-index order (index 1 first).
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voc_indices_are_one_based_and_alphabetical() {
        let c = ClassList::voc();
        assert_eq!(c.len(), 20);
        assert_eq!(c.num_classes_with_background(), 21);
        assert_eq!(c.index_of("aeroplane"), Some(1));
        assert_eq!(c.index_of("dog"), Some(12));
        assert_eq!(c.index_of("tvmonitor"), Some(20));
        assert_eq!(c.index_of("background"), None);
        assert_eq!(c.name(0), None);
        assert_eq!(c.name(15), Some("person"));
        assert_eq!(c.name(21), None);
    }

    #[test]
    fn bad_lists_are_refused() {
        let dup = ClassList::new(vec!["a".into(), "b".into(), "a".into()]);
        assert!(matches!(dup, Err(DataError::BadClassList { .. })));
        let space = ClassList::new(vec!["potted plant".into()]);
        assert!(matches!(space, Err(DataError::BadClassList { .. })));
        assert!(matches!(
            ClassList::new(vec![]),
            Err(DataError::BadClassList { .. })
        ));
    }

    #[test]
    fn reads_a_file_with_comments_and_blank_lines() {
        let dir = std::env::temp_dir().join(format!("ssd-classes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let path = dir.join("classes.txt");
        std::fs::write(&path, "# shapes\ncircle\n\n  square \ntriangle\n").ok();
        let c = ClassList::from_file(&path).ok();
        assert_eq!(
            c.map(|c| c.names().to_vec()),
            Some(vec![
                "circle".to_owned(),
                "square".to_owned(),
                "triangle".to_owned()
            ])
        );
        // A byte-order mark is not part of the first name.
        std::fs::write(&path, "\u{feff}circle\nsquare\n").ok();
        let c = ClassList::from_file(&path).ok();
        assert_eq!(c.and_then(|c| c.index_of("circle")), Some(1));
        let missing = ClassList::from_file(&dir.join("nope.txt"));
        assert!(matches!(missing, Err(DataError::Io { .. })));
        std::fs::remove_dir_all(&dir).ok();
    }
}
