//! Ctrl-C for commands that finish their work when interrupted (`ssd train` saves a checkpoint,
//! `ssd track` finishes its outputs): the first Ctrl-C sets [`INTERRUPTED`] and prints what the
//! command does about it, a second one exits at once (status 130).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Set by the first Ctrl-C.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Ctrl-Cs so far.
static INTERRUPTS: AtomicU32 = AtomicU32::new(0);

/// Installs the handler (once per process); `what` says what the command does now, as in
/// "interrupted: {what} (Ctrl-C again to quit now)".
pub fn install(what: &'static str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(move || {
            if INTERRUPTS.fetch_add(1, Ordering::SeqCst) == 0 {
                INTERRUPTED.store(true, Ordering::SeqCst);
                eprintln!("\ninterrupted: {what} (Ctrl-C again to quit now)");
            } else {
                std::process::exit(130);
            }
        });
    });
}

/// Whether Ctrl-C was pressed.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
