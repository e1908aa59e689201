//! Reads the app's configuration from the repository root (tauri.conf.json), where the
//! product's layout keeps it, and embeds the built front end (ui/dist).

fn main() {
    println!("cargo:rerun-if-changed=../ui/dist");
    tauri_build::try_build(tauri_build::Attributes::new().config_path("../tauri.conf.json"))
        .expect("tauri-build failed (is ui/dist built? run `npm --prefix ui run build`)");
}
