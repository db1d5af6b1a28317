//! Placeholder entry point; the program arrives with its own issue.

fn main() -> std::process::ExitCode {
    #[allow(clippy::print_stderr, reason = "the binary's only output")]
    {
        eprintln!("not built yet");
    }
    std::process::ExitCode::from(2)
}
