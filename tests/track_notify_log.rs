//! Notify hook failures are logged at WARN naming the program.
//!
//! A binary of its own with a single test: tracing's per-thread `set_default`
//! can miss events when other test threads register the same callsites at the
//! same time, which made this flaky next to the other notifier tests.

use std::time::Duration;

mod notify_common;
use notify_common::{settle, sh, TempDir};

use vipd::track::{Notifier, NotifySpec};

/// A `MakeWriter` collecting log output in memory.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[tokio::test]
async fn failures_are_logged_at_warn_naming_the_program() {
    let dir = TempDir::new();
    let f = dir.file();
    let logs = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    // Current-thread runtime: the worker task runs on this thread, under this default.
    let _guard = tracing::subscriber::set_default(subscriber);
    let n = Notifier::new(NotifySpec {
        master: Some(sh("exit 3", &f, &[])),
        backup: Some(vec!["/nonexistent/vipd-hook".into()]),
        fault: Some(vec!["/bin/sleep".into(), "10".into()]),
        timeout: Duration::from_millis(200),
        ..NotifySpec::default()
    });
    n.notify("db", "master", "a");
    n.notify("db", "backup", "b");
    n.notify("db", "fault", "c");
    settle(&n).await;
    let text = String::from_utf8_lossy(&logs.0.lock().expect("lock")).into_owned();
    let warn_lines: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warn_lines.len(), 3, "{text}");
    assert!(
        warn_lines[0].contains("db: notify master hook /bin/sh failed: exit status: 3"),
        "{text}"
    );
    assert!(
        warn_lines[1].contains("db: notify backup hook /nonexistent/vipd-hook could not start"),
        "{text}"
    );
    assert!(
        warn_lines[2].contains("db: notify fault hook /bin/sleep failed: killed after"),
        "{text}"
    );
}
