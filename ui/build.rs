//! Finds the front-end packages the page embeds (`npm ci` from `package-lock.json`, run
//! here when `deploy/local/install.sh ui` has not run yet), so a plain `cargo build`
//! works on a machine with npm and fails with what to do on one without.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let vendor = dir.join("node_modules/uplot/dist");
    println!("cargo:rerun-if-changed=package-lock.json");
    println!("cargo:rerun-if-changed=node_modules/uplot/package.json");
    if !vendor.join("uPlot.iife.min.js").exists() {
        let status = Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"]).current_dir(&dir).status();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            panic!(
                "the search page embeds uPlot from npm, and `npm ci` in {} failed ({status:?}): \
                 install Node.js and npm, then run ./deploy/local/install.sh ui",
                dir.display()
            );
        }
    }
    println!("cargo:rustc-env=TIERLOG_UI_VENDOR={}", vendor.display());
}
