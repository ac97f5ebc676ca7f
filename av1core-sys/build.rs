//! Finds the system SVT-AV1 encoder with pkg-config and generates bindings for the
//! installed headers (the configuration struct changes between releases, so the
//! bindings are always made from the headers we link against).

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let lib = match pkg_config::Config::new().atleast_version("1.4.0").probe("SvtAv1Enc") {
        Ok(lib) => lib,
        Err(e) => panic!(
            "\n\nSVT-AV1 encoder library not found by pkg-config ({e}).\n\
             On Debian/Ubuntu install it with:  apt-get install libsvtav1enc-dev pkg-config\n\
             (or run `make deps` from the repository root).\n\n"
        ),
    };

    // Export the version to dependents: their build scripts see DEP_SVTAV1ENC_VERSION,
    // DEP_SVTAV1ENC_MAJOR and DEP_SVTAV1ENC_MINOR and can emit cfgs for API differences.
    let mut parts = lib.version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    println!("cargo:version={}", lib.version);
    println!("cargo:major={major}");
    println!("cargo:minor={minor}");
    for dir in &lib.link_paths {
        // Non-system prefixes (a newer SVT-AV1 built into a cache) are found at run time.
        if !dir.starts_with("/usr/lib") && !dir.starts_with("/lib") {
            println!("cargo:rpath={}", dir.display());
        }
    }

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .allowlist_function("svt_.*")
        .allowlist_type("Eb.*")
        .allowlist_type("Svt.*")
        .allowlist_var("EB_.*")
        .allowlist_var("SVT_.*")
        // A C value a Rust enum does not list would be undefined behaviour: constants only.
        .default_enum_style(bindgen::EnumVariation::ModuleConsts)
        .derive_default(true)
        .layout_tests(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for dir in &lib.include_paths {
        builder = builder.clang_arg(format!("-I{}", dir.display()));
    }
    for (name, value) in &lib.defines {
        builder = builder.clang_arg(match value {
            Some(v) => format!("-D{name}={v}"),
            None => format!("-D{name}"),
        });
    }
    let bindings = builder.generate().expect("bindgen could not parse the SVT-AV1 headers");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    bindings.write_to_file(out.join("bindings.rs")).expect("could not write bindings.rs");
    println!("cargo:rustc-env=SVT_AV1_PKG_VERSION={}", lib.version);
}
