fn main() -> std::process::ExitCode {
    cpwatch::cli::main()
}
