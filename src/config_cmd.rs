//! `tierlog config check`.

use std::path::Path;

use tierlog_core::Config;

pub fn check(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    println!("# {}: valid, {} stream(s)", path.display(), config.streams.len());
    print!("{}", config.to_toml());
    Ok(())
}
