use clap::Parser;

fn main() {
    let cli = cosfs::cli::Cli::parse();
    std::process::exit(cosfs::cli::run(cli));
}
