//! The weights-file readers on input nobody wrote for them: `.pth` (a zip of pickles) and `.bpk`
//! headers from arbitrary bytes, and a real `.pth` with bytes changed or cut. They must answer
//! with a value or an error naming the file, never a panic, and never allocate by a size read
//! from the file before checking it (the process would abort).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use ssd_model::{SsdConfig, checkpoint_metadata, pth_entries};

fn fixture() -> Vec<u8> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/amdegroot_reduced/model.pth");
    std::fs::read(path).unwrap_or_else(|e| panic!("fixture: {e}"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ssd-fuzz-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir.join(name)
}

fn read_all(path: &Path) {
    if let Ok(entries) = pth_entries(path) {
        let _ = SsdConfig::from_state_dict(&entries);
    }
    let _ = checkpoint_metadata(path);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let path = scratch("arbitrary.pth");
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        read_all(&path);
    }

    #[test]
    fn damaged_pth_files_never_panic(
        at in 0usize..1_000_000,
        value in any::<u8>(),
        cut in proptest::option::of(0usize..1_000_000),
    ) {
        let mut bytes = fixture();
        let at = at % bytes.len();
        bytes[at] = value;
        if let Some(cut) = cut {
            bytes.truncate(cut % bytes.len());
        }
        let path = scratch("damaged.pth");
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        read_all(&path);
    }
}
