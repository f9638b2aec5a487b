//! Writing a command's output: the `out!` macro every client command uses.

/// `println!` that ends the program quietly when standard output is a
/// closed pipe (`accord jobs list | head`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}

pub fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"));
    if let Err(err) = written {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: write to standard output: {err}");
        std::process::exit(1);
    }
}

/// Writes `text` as it is (no line end added), like [`write_line`].
pub fn write_raw(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout.write_all(text.as_bytes()) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: write to standard output: {err}");
        std::process::exit(1);
    }
}
