// `diesel_migrations::embed_migrations!` reads `migrations/` at compile time, but a proc macro
// cannot tell cargo to rebuild when a migration is added or edited; this does (see the macro's
// "Automatic rebuilds"). Naming one file disables cargo's default of rerunning on any change in
// the package, so Cargo.toml is named too.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=Cargo.toml");
}
