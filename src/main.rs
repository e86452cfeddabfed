use std::process::ExitCode;

fn main() -> ExitCode {
    shipit::main()
}
