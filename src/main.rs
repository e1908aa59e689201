//! The `culturetune` command-line interface (the commands live in the library's `cli` module,
//! so the desktop app can run the same program as its worker process).

use std::process::ExitCode;

fn main() -> ExitCode {
    culturetune::cli::main_from(std::env::args_os())
}
