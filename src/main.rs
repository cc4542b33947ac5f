use clap::Parser;

fn main() {
    let _args = bedrock_batch::cli::Args::parse();
}
