//! Finds the WIT package `chat:plugin` and bakes its absolute path into a
//! hidden macro, so that `export_plugin!`, expanded inside a plugin crate,
//! can run `wit_bindgen::generate!` on the same files as the SDK.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    // In the repository the package is at `<repo>/wit`; a vendored SDK may carry
    // its own copy in `sdk/wit`.
    let wit = [manifest.join("wit"), manifest.join("../../wit")]
        .into_iter()
        .find(|p| p.join("types.wit").is_file())
        .expect("chat-plugin-sdk: WIT package not found (looked in ./wit and ../../wit)");
    let wit = wit
        .canonicalize()
        .expect("chat-plugin-sdk: canonicalize WIT path");
    println!("cargo:rerun-if-changed={}", wit.display());
    for entry in std::fs::read_dir(&wit).expect("read WIT dir") {
        println!("cargo:rerun-if-changed={}", entry.unwrap().path().display());
    }
    let wit = wit.to_str().expect("WIT path is not UTF-8");
    assert!(
        !wit.contains('"') && !wit.contains('\\'),
        "unusual characters in WIT path {wit}"
    );

    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    std::fs::write(
        out.join("wit_path.rs"),
        format!(
            r#"/// The absolute path of the WIT package the SDK was built against.
pub const WIT_DIR: &str = "{wit}";

/// `wit_bindgen::generate!` on the SDK's WIT package (used by `export_plugin!`).
#[doc(hidden)]
#[macro_export]
macro_rules! __chat_plugin_generate {{
    ($($opts:tt)*) => {{
        $crate::__private::wit_bindgen::generate!({{ path: "{wit}", $($opts)* }});
    }};
}}
"#
        ),
    )
    .expect("write wit_path.rs");
}
