//! The `cpwatch` binary: all of it is in the library (`cpwatch::cli::main`).

fn main() -> std::process::ExitCode {
    cpwatch::cli::main()
}
