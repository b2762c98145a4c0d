use clap::Parser;

fn main() {
    cosfs::cli::process::return_freed_memory_promptly();
    // Printing commands end quietly when their reader goes away; `run` changes this back for
    // the long-lived ones.
    cosfs::cli::process::set_sigpipe(true);
    let routed = match cosfs::cli::legacy::route(std::env::args_os().collect()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cosfs: {e}");
            std::process::exit(1);
        }
    };
    for w in &routed.warnings {
        eprintln!("cosfs: {w}");
    }
    let cli = cosfs::cli::Cli::parse_from(routed.argv);
    std::process::exit(cosfs::cli::run(cli));
}
