//! `cpwatch generate man|completions DIR` (hidden): the man pages and shell completions the
//! Debian package ships, made from the very command line they describe, so they cannot drift.
//! Run by `debian/build-deb` before `cargo deb`; a `build.rs` cannot do it (it would need the
//! crate it builds).

use super::{Cli, InputError};
use anyhow::Context as _;
use clap::CommandFactory as _;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// What to write.
    #[arg(value_enum)]
    what: What,
    /// The directory to write into (created if missing).
    dir: PathBuf,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum What {
    /// cpwatch.1 and one page per command (cpwatch-outbox.1, ...).
    Man,
    /// cpwatch.bash, _cpwatch (zsh) and cpwatch.fish.
    Completions,
}

pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| InputError(format!("cannot create {}: {e}", args.dir.display())))?;
    let written = match args.what {
        What::Man => man(&args.dir)?,
        What::Completions => completions(&args.dir)?,
    };
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn man(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut written = Vec::new();
    page(&cmd, dir, &mut written).with_context(|| format!("writing into {}", dir.display()))?;
    written.sort();
    Ok(written)
}

/// `cmd`'s page and its subcommands' (not the hidden ones, nor clap's `help` pseudo-command).
fn page(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for sub in cmd.get_subcommands() {
        if !sub.is_hide_set() && sub.get_name() != "help" {
            page(sub, dir, written)?;
        }
    }
    written.push(clap_mangen::Man::new(cmd.clone()).generate_to(dir)?);
    Ok(())
}

fn completions(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    use clap_complete::Shell;
    let mut cmd = Cli::command();
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| {
            clap_complete::generate_to(shell, &mut cmd, "cpwatch", dir)
                .with_context(|| format!("writing {shell} completions into {}", dir.display()))
        })
        .collect()
}
