//! The culturetune desktop app. Started with `worker` as its first argument, the same binary
//! runs culturetune's command line instead: that is how the app starts its worker processes.

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_default();
    if args
        .next()
        .is_some_and(|a| a == culturetune_app::worker::WORKER_ARG)
    {
        return culturetune::cli::main_from(std::iter::once(program).chain(args));
    }
    culturetune_app::run();
    std::process::ExitCode::SUCCESS
}
