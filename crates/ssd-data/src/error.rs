//! The error type of `ssd-data`.

use std::path::{Path, PathBuf};

/// What can go wrong reading VOC data. Every variant names the file, and the object (0-based, in
/// file order) or line where that applies.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An annotation file that does not exist.
    #[error("{}: annotation file not found", path.display())]
    MissingAnnotation {
        /// The file.
        path: PathBuf,
    },
    /// An image-set file (`ImageSets/Main/<name>.txt`) that does not exist.
    #[error("{}: image set not found", path.display())]
    MissingImageSet {
        /// The file.
        path: PathBuf,
    },
    /// An image-set file without a single id.
    #[error("{}: image set lists no images", path.display())]
    EmptyImageSet {
        /// The file.
        path: PathBuf,
    },
    /// An image file that does not exist.
    #[error("{}: image file not found", path.display())]
    MissingImage {
        /// The file.
        path: PathBuf,
    },
    /// An image the decoder refuses: unknown format, corrupt or truncated data.
    #[error("{}: unreadable image: {message}", path.display())]
    UnreadableImage {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// An image over the size limits (a decompression bomb, or simply too large).
    #[error("{}: image too large: {message}", path.display())]
    ImageTooLarge {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// An image whose decoded size differs from its annotation's `<size>`.
    #[error(
        "{}: image is {}x{} but {} says {}x{}",
        image.display(), image_size[0], image_size[1], annotation.display(),
        annotation_size[0], annotation_size[1]
    )]
    SizeMismatch {
        /// The image file.
        image: PathBuf,
        /// The annotation file.
        annotation: PathBuf,
        /// Decoded width and height.
        image_size: [u32; 2],
        /// Width and height in the annotation.
        annotation_size: [u32; 2],
    },
    /// Ground truth that cannot be matched to the priors (should not happen after sanitising).
    #[error("{}: cannot encode targets: {source}", path.display())]
    Encoding {
        /// The image whose ground truth failed.
        path: PathBuf,
        /// The geometry error.
        source: ssd_core::CoreError,
    },
    /// Any other I/O failure.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// XML that does not parse.
    #[error("{}:{line}: malformed XML: {message}", path.display())]
    MalformedXml {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: u32,
        /// The parser's message.
        message: String,
    },
    /// A required element is missing (`size`, `width`, `height`, `name`, `xmin`, ...).
    #[error("{}: {}missing <{field}>", path.display(), object_prefix(*object))]
    MissingField {
        /// The file.
        path: PathBuf,
        /// The object, when the field belongs to one.
        object: Option<usize>,
        /// The missing element.
        field: &'static str,
    },
    /// An object without `<bndbox>`.
    #[error("{}: object {object} has no <bndbox>", path.display())]
    MissingBndbox {
        /// The file.
        path: PathBuf,
        /// The object.
        object: usize,
    },
    /// A number that does not parse, is not finite, or is out of range (a size of 0).
    #[error("{}: {}<{field}> is not a valid number: {text:?}", path.display(), object_prefix(*object))]
    BadNumber {
        /// The file.
        path: PathBuf,
        /// The object, when the field belongs to one.
        object: Option<usize>,
        /// The element.
        field: &'static str,
        /// Its text.
        text: String,
    },
    /// An object whose class is not in the class list.
    #[error("{}: object {object} has class {name:?}, which is not in the class list", path.display())]
    UnknownClass {
        /// The file.
        path: PathBuf,
        /// The object.
        object: usize,
        /// The class name found.
        name: String,
    },
    /// A JSON file that does not parse into what it should hold (a COCO annotation file).
    #[error("{}:{line}: {}{message}", path.display(), json_prefix(json_path))]
    BadJson {
        /// The file.
        path: PathBuf,
        /// Where in the document, `annotations[1523].bbox` (empty at the top level).
        json_path: String,
        /// 1-based line of the error.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A COCO file that parses but contradicts itself: an annotation whose image or category is
    /// not in the file, a duplicate id, an image without size.
    #[error("{}: {json_path}: {reason}", path.display())]
    InvalidCoco {
        /// The file.
        path: PathBuf,
        /// Where in the document.
        json_path: String,
        /// What is wrong.
        reason: String,
    },
    /// A dataset root that is neither VOC nor COCO, or roots of both formats at once.
    #[error("{}: {reason}", path.display())]
    UnknownLayout {
        /// The root.
        path: PathBuf,
        /// What was looked for.
        reason: String,
    },
    /// A class list that is empty, has duplicates, or a name that cannot be one.
    #[error("{}: bad class list: {reason}", path.display())]
    BadClassList {
        /// The file (or `<in memory>`).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An output file that exists, written without asking to replace it.
    #[error("{}: exists; pass overwrite (`--overwrite`) to replace it", path.display())]
    OutputExists {
        /// The output.
        path: PathBuf,
    },
    /// An output path that is something other than a regular file (a folder, a symbolic link,
    /// a device, a pipe): never replaced, whatever `overwrite` says.
    #[error("{}: is a {kind}, not a regular file; refusing to write over it", path.display())]
    OutputNotAFile {
        /// The output.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// An output path that is one of the command's own inputs (the same file, by another name
    /// or a hard link included).
    #[error("{}: {}", path.display(), same_as_input(path, input))]
    OutputIsInput {
        /// The output.
        path: PathBuf,
        /// The input it is.
        input: PathBuf,
    },
    /// An output's folder that does not exist.
    #[error("{}: folder {} does not exist", path.display(), folder.display())]
    NoOutputFolder {
        /// The output.
        path: PathBuf,
        /// Its missing folder.
        folder: PathBuf,
    },
    /// A folder or list file of a job without a single image.
    #[error("{}: no images (.jpg, .jpeg, .png files, or paths one per line)", path.display())]
    NoImages {
        /// The folder or list file.
        path: PathBuf,
    },
    /// A program the video commands run (ffmpeg, ffprobe) that is not installed.
    #[error(
        "{program} not found: video is read and written by FFmpeg's command-line tools; install them \
         (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg) or put {program} on PATH"
    )]
    NoFfmpeg {
        /// The program.
        program: String,
    },
    /// A video (file, stream or frame folder) that cannot be read or written.
    #[error("{input}: {reason}")]
    Video {
        /// The video: its path, URL or device.
        input: String,
        /// What went wrong (the decoder's or encoder's own message where it gave one).
        reason: String,
    },
    /// A line of a list file or results file that cannot be one.
    #[error("{}:{line}: {reason}", path.display())]
    BadImageList {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl DataError {
    /// An I/O error on `path`, with "not found" turned into the caller's `missing` variant.
    pub(crate) fn from_io(
        path: &Path,
        source: std::io::Error,
        missing: fn(PathBuf) -> DataError,
    ) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            missing(path.to_owned())
        } else {
            DataError::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}

fn same_as_input(path: &Path, input: &Path) -> String {
    if path == input {
        "is an input of this command; write the output elsewhere".to_owned()
    } else {
        format!(
            "is {}, an input of this command; write the output elsewhere",
            input.display()
        )
    }
}

fn json_prefix(json_path: &str) -> String {
    if json_path.is_empty() {
        String::new()
    } else {
        format!("{json_path}: ")
    }
}

fn object_prefix(object: Option<usize>) -> String {
    object.map(|o| format!("object {o}: ")).unwrap_or_default()
}
