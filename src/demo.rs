//! `cpwatch demo`: a private PostgreSQL, the sample partnership, a simulated month, and mail
//! written to a folder as .eml files, with a summary a person can read.

pub fn run(_out: &std::path::Path, _days: u32) -> anyhow::Result<()> {
    anyhow::bail!("the demo is not built yet")
}
