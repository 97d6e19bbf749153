//! Video in and out: frames from a video file, a stream, a capture device or a folder of images,
//! and video files written from frames.
//!
//! Files, streams and devices are decoded by FFmpeg's command-line tools, run as child processes
//! that pipe raw RGB frames (`ffprobe` for the size and frame rate, `ffmpeg` for the frames), so
//! every container and codec the installed FFmpeg reads works, nothing is linked at build time,
//! and a missing FFmpeg is one error saying how to install it ([`DataError::NoFfmpeg`]). A folder
//! of `.jpg`/`.png` frames is read directly, in name order, with no FFmpeg.
//!
//! [`VideoWriter`] encodes frames through `ffmpeg` into a temporary file renamed into place when
//! [`finish`](VideoWriter::finish)ed: an interrupted or failed run leaves no half-written video.
//! The child processes run in their own process group, so that a Ctrl-C in the terminal reaches
//! the program, which then finishes its outputs, and not the encoder.

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use image::RgbImage;

use crate::DataError;

/// Where frames come from.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoInput {
    /// A folder of images (`.jpg`, `.jpeg`, `.png`), one frame each, in name order.
    Frames(PathBuf),
    /// A video file, stream URL (`rtsp://`, `udp://`, `http://`, ...) or capture device
    /// (`/dev/video0`), decoded by FFmpeg.
    Ffmpeg(String),
}

impl VideoInput {
    /// A folder is a frame folder; anything else goes to FFmpeg.
    pub fn parse(text: &str) -> Self {
        if Path::new(text).is_dir() {
            Self::Frames(PathBuf::from(text))
        } else {
            Self::Ffmpeg(text.to_owned())
        }
    }

    /// A stream or capture device: it has no end of its own (it runs until it stops or the
    /// program is interrupted) and no frame count.
    pub fn is_live(&self) -> bool {
        match self {
            Self::Frames(_) => false,
            Self::Ffmpeg(input) => {
                is_device(input) || input.split_once("://").is_some_and(|(s, _)| s != "file")
            }
        }
    }

    /// The input as given, for messages.
    pub fn name(&self) -> String {
        match self {
            Self::Frames(path) => path.display().to_string(),
            Self::Ffmpeg(input) => input.clone(),
        }
    }
}

fn is_device(input: &str) -> bool {
    input.starts_with("/dev/video")
}

/// What a video is: frame size, rate and (when known) length.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Width of a frame in pixels.
    pub width: u32,
    /// Height of a frame in pixels.
    pub height: u32,
    /// Frames per second.
    pub frame_rate: f64,
    /// Frames in the video, when its container says so (never for a stream).
    pub frames: Option<u64>,
}

/// Frames of a [`VideoInput`], one [`read`](Self::read) at a time.
pub struct VideoReader {
    name: String,
    info: VideoInfo,
    source: Source,
    read: u64,
    stop: StopHandle,
}

enum Source {
    Frames(Vec<PathBuf>),
    Ffmpeg {
        stdout: BufReader<ChildStdout>,
        stderr: Option<JoinHandle<String>>,
    },
    Done,
}

/// Stops a [`VideoReader`] from another thread (a Ctrl-C handler's loop, while the reader
/// waits for a stream's next frame): the decoder is ended and the reader's next
/// [`read`](VideoReader::read) is the end of the video.
#[derive(Debug, Clone, Default)]
pub struct StopHandle {
    stopped: Arc<AtomicBool>,
    child: Option<Arc<Mutex<Child>>>,
}

impl StopHandle {
    /// Stops the reader.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(child) = &self.child
            && let Ok(mut child) = child.lock()
        {
            let _ = child.kill();
        }
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Waits for the decoder to exit.
    fn wait(&self) -> Option<std::io::Result<std::process::ExitStatus>> {
        let child = self.child.as_ref()?;
        let mut child = child.lock().ok()?;
        Some(child.wait())
    }
}

impl std::fmt::Debug for VideoReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoReader")
            .field("name", &self.name)
            .field("info", &self.info)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

/// The frame rate of a frame folder when nothing says otherwise.
pub const DEFAULT_FRAME_RATE: f64 = 25.0;

impl VideoReader {
    /// Opens `input`. `frame_rate` overrides the rate the video declares; a frame folder without
    /// it takes `frameRate` from a MOTChallenge `seqinfo.ini` in the folder or its parent, else
    /// [`DEFAULT_FRAME_RATE`].
    pub fn open(input: &VideoInput, frame_rate: Option<f64>) -> Result<Self, DataError> {
        let name = input.name();
        let error = |reason: String| DataError::Video {
            input: name.clone(),
            reason,
        };
        if let Some(rate) = frame_rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(error(format!("frame rate {rate} is not a positive number")));
        }
        match input {
            VideoInput::Frames(folder) => {
                let files = crate::jobs::job_inputs(folder)?;
                let [width, height] = crate::image_io::image_header(&files[0])?;
                let rate = frame_rate
                    .or_else(|| seqinfo_frame_rate(folder))
                    .unwrap_or(DEFAULT_FRAME_RATE);
                Ok(Self {
                    info: VideoInfo {
                        width,
                        height,
                        frame_rate: rate,
                        frames: Some(files.len() as u64),
                    },
                    name,
                    source: Source::Frames(files),
                    read: 0,
                    stop: StopHandle::default(),
                })
            }
            VideoInput::Ffmpeg(text) => {
                let mut info = probe(text).map_err(|reason| match reason {
                    Probe::Missing(program) => DataError::NoFfmpeg { program },
                    Probe::Failed(reason) => error(reason),
                })?;
                if let Some(rate) = frame_rate {
                    info.frame_rate = rate;
                }
                if input.is_live() {
                    info.frames = None;
                }
                let mut command = Command::new("ffmpeg");
                command.args(["-nostdin", "-hide_banner", "-loglevel", "error"]);
                if is_device(text) {
                    command.args(["-f", "v4l2"]);
                }
                command
                    .args(["-i", text, "-map", "0:v:0", "-an", "-sn"])
                    .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]);
                let mut child = spawn(&mut command, Stdio::null(), Stdio::piped())
                    .map_err(|e| spawn_error(e, "ffmpeg", &error))?;
                let stdout = child.stdout.take().map(BufReader::new);
                let stderr = child.stderr.take().map(collect);
                let Some(stdout) = stdout else {
                    return Err(error("ffmpeg's output could not be read".into()));
                };
                Ok(Self {
                    name,
                    info,
                    source: Source::Ffmpeg { stdout, stderr },
                    read: 0,
                    stop: StopHandle {
                        stopped: Arc::default(),
                        child: Some(Arc::new(Mutex::new(child))),
                    },
                })
            }
        }
    }

    /// Size, frame rate and length.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// Frames read so far.
    pub fn frames_read(&self) -> u64 {
        self.read
    }

    /// The next frame; `None` at the end. A frame that cannot be decoded, a frame folder's
    /// image of another size, or a video that ends before its declared length or with a decoder
    /// error is an error naming the input and the frame (the frames before it were returned).
    pub fn read(&mut self) -> Result<Option<RgbImage>, DataError> {
        let (width, height) = (self.info.width, self.info.height);
        let frame = self.read + 1;
        let error = |reason: String| DataError::Video {
            input: self.name.clone(),
            reason,
        };
        if self.stop.is_stopped() && !matches!(self.source, Source::Ffmpeg { .. }) {
            self.source = Source::Done;
        }
        match &mut self.source {
            Source::Done => Ok(None),
            Source::Frames(files) => {
                let Some(file) = files.get(self.read as usize) else {
                    self.source = Source::Done;
                    return Ok(None);
                };
                let image = crate::load_rgb(file)?;
                if image.dimensions() != (width, height) {
                    return Err(DataError::Video {
                        input: file.display().to_string(),
                        reason: format!(
                            "frame {frame} is {}x{}, the first frame {width}x{height}",
                            image.width(),
                            image.height()
                        ),
                    });
                }
                self.read += 1;
                Ok(Some(image))
            }
            Source::Ffmpeg { stdout, stderr } => {
                let mut buffer = vec![0; width as usize * height as usize * 3];
                let filled = read_full(stdout, &mut buffer)
                    .map_err(|e| error(format!("reading frame {frame} from ffmpeg: {e}")))?;
                if filled == buffer.len() {
                    self.read += 1;
                    return Ok(RgbImage::from_raw(width, height, buffer));
                }
                // The end: the decoder's verdict.
                let status = self.stop.wait();
                let message = stderr
                    .take()
                    .and_then(|h| h.join().ok())
                    .unwrap_or_default();
                self.source = Source::Done;
                if self.stop.is_stopped() {
                    return Ok(None);
                }
                let last_line = message.lines().rev().find(|l| !l.trim().is_empty());
                let said = last_line.map_or(String::new(), |l| format!(": ffmpeg: {}", l.trim()));
                let decoded = self.read;
                match status {
                    Some(Ok(s)) if !s.success() => Err(error(format!(
                        "decoding stopped after {decoded} frames ({s}){said}"
                    ))),
                    Some(Err(e)) => Err(error(format!("ffmpeg: {e}"))),
                    _ if filled > 0 => Err(error(format!(
                        "the video ends inside frame {frame} ({filled} of {} bytes){said}",
                        buffer.len()
                    ))),
                    _ => match self.info.frames {
                        Some(n) if decoded < n => Err(error(format!(
                            "{decoded} of the {n} frames the container declares could be \
                             decoded (truncated?){said}"
                        ))),
                        _ => Ok(None),
                    },
                }
            }
        }
    }

    /// Stops reading (a stream the user interrupted): the decoder is ended, the next
    /// [`read`](Self::read) is the end.
    pub fn stop(&mut self) {
        self.stop.stop();
    }

    /// A handle that stops this reader from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }
}

impl Drop for VideoReader {
    fn drop(&mut self) {
        if let Some(child) = &self.stop.child
            && let Ok(mut child) = child.lock()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads until `buffer` is full or the stream ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// `frameRate` of a MOTChallenge `seqinfo.ini` in `folder` or its parent.
fn seqinfo_frame_rate(folder: &Path) -> Option<f64> {
    let candidates = [Some(folder), folder.parent()];
    candidates.into_iter().flatten().find_map(|dir| {
        let text = std::fs::read_to_string(dir.join("seqinfo.ini")).ok()?;
        text.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim().eq_ignore_ascii_case("frameRate"))
                .then(|| value.trim().parse::<f64>().ok())
                .flatten()
                .filter(|r| r.is_finite() && *r > 0.0)
        })
    })
}

enum Probe {
    Missing(String),
    Failed(String),
}

/// The first video stream's size, frame rate and frame count, from `ffprobe`.
fn probe(input: &str) -> Result<VideoInfo, Probe> {
    let mut command = Command::new("ffprobe");
    command.args(["-hide_banner", "-loglevel", "error"]);
    if is_device(input) {
        command.args(["-f", "v4l2"]);
    }
    command.args([
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=width,height,avg_frame_rate,r_frame_rate,nb_frames",
        "-of",
        "default=noprint_wrappers=1",
        input,
    ]);
    let output = command
        .stdin(Stdio::null())
        .process_group0()
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Probe::Missing("ffprobe".into())
            } else {
                Probe::Failed(format!("ffprobe: {e}"))
            }
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = stderr.lines().rev().find(|l| !l.trim().is_empty());
    if !output.status.success() || field("width").is_none() {
        let reason = match said {
            Some(line) => format!("not a video FFmpeg can read: {}", line.trim()),
            None if output.status.success() => "holds no video stream".to_owned(),
            None => format!("not a video FFmpeg can read ({})", output.status),
        };
        return Err(Probe::Failed(reason));
    }
    let size = |key| {
        field(key)
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|&v| v > 0)
    };
    let (Some(width), Some(height)) = (size("width"), size("height")) else {
        return Err(Probe::Failed("its video stream has no frame size".into()));
    };
    let rate = |key| {
        let (n, d) = field(key)?.split_once('/')?;
        let (n, d) = (n.parse::<f64>().ok()?, d.parse::<f64>().ok()?);
        (n > 0.0 && d > 0.0).then(|| n / d)
    };
    Ok(VideoInfo {
        width,
        height,
        frame_rate: rate("avg_frame_rate")
            .or_else(|| rate("r_frame_rate"))
            .unwrap_or(DEFAULT_FRAME_RATE),
        frames: field("nb_frames")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&n| n > 0),
    })
}

/// `process_group(0)` on Unix: the child does not get the terminal's Ctrl-C.
trait ProcessGroup {
    fn process_group0(&mut self) -> &mut Self;
}

impl ProcessGroup for Command {
    #[cfg(unix)]
    fn process_group0(&mut self) -> &mut Self {
        use std::os::unix::process::CommandExt;
        self.process_group(0)
    }
    #[cfg(not(unix))]
    fn process_group0(&mut self) -> &mut Self {
        self
    }
}

fn spawn(command: &mut Command, stdin: Stdio, stdout: Stdio) -> std::io::Result<Child> {
    command
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .process_group0()
        .spawn()
}

fn spawn_error(e: std::io::Error, program: &str, error: &dyn Fn(String) -> DataError) -> DataError {
    if e.kind() == std::io::ErrorKind::NotFound {
        DataError::NoFfmpeg {
            program: program.to_owned(),
        }
    } else {
        error(format!("{program}: {e}"))
    }
}

/// Reads a child's stderr to the end on a thread (so that it never blocks on a full pipe).
fn collect(mut stderr: std::process::ChildStderr) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    })
}

/// The container and encoder of a video file, by its extension.
fn encoder_for(path: &Path) -> Option<(&'static str, &'static [&'static str])> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    // The index before the frames (`+faststart`): a file cut short still decodes up to the cut.
    const H264: &[&str] = &[
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "23",
        "-movflags",
        "+faststart",
    ];
    Some(match ext.as_str() {
        "mp4" | "m4v" => ("mp4", H264),
        "mkv" => ("matroska", &H264[..6]),
        "mov" => ("mov", H264),
        "avi" => ("avi", &["-c:v", "mpeg4", "-q:v", "4"]),
        "webm" => (
            "webm",
            &[
                "-c:v",
                "libvpx",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-b:v",
                "2M",
            ],
        ),
        _ => return None,
    })
}

/// The extensions [`VideoWriter`] writes.
pub const VIDEO_EXTENSIONS: [&str; 6] = ["mp4", "m4v", "mkv", "mov", "avi", "webm"];

/// A video file being written from frames of one size (see the module's documentation).
pub struct VideoWriter {
    path: PathBuf,
    tmp: PathBuf,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<String>>,
    size: (u32, u32),
    frames: u64,
}

impl std::fmt::Debug for VideoWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoWriter")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl VideoWriter {
    /// Starts writing `path` (`.mp4`, `.mkv`, `.mov`: H.264; `.webm`: VP8; `.avi`: MPEG-4
    /// part 2) with frames of `width` x `height` at `frame_rate` per second. Its folder must
    /// exist; odd sizes are padded by a pixel (H.264's 4:2:0 needs even ones).
    pub fn create(
        path: &Path,
        width: u32,
        height: u32,
        frame_rate: f64,
    ) -> Result<Self, DataError> {
        let error = |reason: String| DataError::Video {
            input: path.display().to_string(),
            reason,
        };
        let Some((format, codec)) = encoder_for(path) else {
            return Err(error(format!(
                "not a video file name: the extension must be one of {}",
                VIDEO_EXTENSIONS.join(", ")
            )));
        };
        if width == 0 || height == 0 || !(frame_rate.is_finite() && frame_rate > 0.0) {
            return Err(error(format!(
                "cannot write {width}x{height} frames at {frame_rate} per second"
            )));
        }
        let tmp = crate::output::temporary_path(path)?;
        // The folder is writable: fail here, before the encoder starts, if it is not.
        std::fs::File::create(&tmp).map_err(|source| DataError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut command = Command::new("ffmpeg");
        command
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24"])
            .args(["-s", &format!("{width}x{height}")])
            .args(["-r", &format!("{frame_rate}"), "-i", "pipe:0"])
            .args(["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"])
            .args(codec)
            .args(["-pix_fmt", "yuv420p", "-f", format])
            .arg(&tmp);
        let mut child = match spawn(&mut command, Stdio::piped(), Stdio::null()) {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(spawn_error(e, "ffmpeg", &error));
            }
        };
        let stdin = child.stdin.take();
        let stderr = child.stderr.take().map(collect);
        Ok(Self {
            path: path.to_owned(),
            tmp,
            child: Some(child),
            stdin,
            stderr,
            size: (width, height),
            frames: 0,
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a frame (of the size given to [`create`](Self::create)).
    pub fn write(&mut self, frame: &RgbImage) -> Result<(), DataError> {
        if frame.dimensions() != self.size {
            return Err(self.error(format!(
                "frame {} is {}x{}, the video {}x{}",
                self.frames + 1,
                frame.width(),
                frame.height(),
                self.size.0,
                self.size.1
            )));
        }
        let written = match &mut self.stdin {
            Some(stdin) => stdin.write_all(frame.as_raw()),
            None => Err(std::io::Error::other("finished")),
        };
        if let Err(e) = written {
            let said = self.encoder_message();
            return Err(self.error(format!(
                "the encoder stopped at frame {}: {}",
                self.frames + 1,
                said.unwrap_or_else(|| e.to_string())
            )));
        }
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Ends the video and renames it into place; returns the frames it holds.
    pub fn finish(mut self) -> Result<u64, DataError> {
        drop(self.stdin.take());
        let status = self.child.take().map(|mut c| c.wait());
        let said = self.encoder_message();
        match status {
            Some(Ok(s)) if s.success() => {}
            Some(Ok(s)) => {
                return Err(self.error(format!(
                    "the encoder failed ({s}){}",
                    said.map_or(String::new(), |m| format!(": {m}"))
                )));
            }
            Some(Err(e)) => return Err(self.error(format!("ffmpeg: {e}"))),
            None => return Err(self.error("already finished".into())),
        }
        std::fs::rename(&self.tmp, &self.path).map_err(|source| DataError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.frames)
    }

    fn error(&self, reason: String) -> DataError {
        DataError::Video {
            input: self.path.display().to_string(),
            reason,
        }
    }

    /// The encoder's last message, once it has exited (waits for it).
    fn encoder_message(&mut self) -> Option<String> {
        if let Some(child) = &mut self.child {
            drop(self.stdin.take());
            let _ = child.wait();
        }
        let text = self.stderr.take()?.join().ok()?;
        let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
        Some(format!("ffmpeg: {}", line.trim()))
    }
}

impl Drop for VideoWriter {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_told_apart() {
        assert!(VideoInput::parse("rtsp://camera/1").is_live());
        assert!(VideoInput::parse("/dev/video0").is_live());
        assert!(!VideoInput::parse("clip.mp4").is_live());
        assert!(!VideoInput::parse("file://clip.mp4").is_live());
        assert!(matches!(VideoInput::parse("."), VideoInput::Frames(_)));
    }

    #[test]
    fn writers_refuse_names_that_are_not_videos() {
        let e = VideoWriter::create(Path::new("out.txt"), 8, 8, 25.0).expect_err("no video");
        assert!(e.to_string().contains("mp4"), "{e}");
    }

    #[test]
    fn seqinfo_gives_a_frame_folder_its_rate() {
        let dir = std::env::temp_dir().join(format!("ssd-seqinfo-{}", std::process::id()));
        let frames = dir.join("img1");
        std::fs::create_dir_all(&frames).expect("scratch");
        std::fs::write(
            dir.join("seqinfo.ini"),
            "[Sequence]\nname=x\nframeRate=30\n",
        )
        .expect("written");
        assert_eq!(seqinfo_frame_rate(&frames), Some(30.0));
        let _ = std::fs::remove_dir_all(dir);
    }
}
