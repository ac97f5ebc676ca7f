//! Finds the system SVT-AV1 encoder with pkg-config and generates bindings for the
//! installed headers (the configuration struct changes between releases, so the
//! bindings are always made from the headers we link against).

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let probe = |statik: bool, emit: bool| {
        pkg_config::Config::new()
            .atleast_version("1.4.0")
            .statik(statik)
            .cargo_metadata(emit)
            .probe("SvtAv1Enc")
    };
    let lib = match probe(false, false) {
        Ok(lib) => lib,
        Err(e) => panic!(
            "\n\nSVT-AV1 encoder library not found by pkg-config ({e}).\n\
             On Debian/Ubuntu install it with:  apt-get install libsvtav1enc-dev pkg-config\n\
             (or run `make deps` from the repository root).\n\n"
        ),
    };
    // A private build (vendor/svt-av1/build.sh puts a newer SVT-AV1 in a cache, found
    // through PKG_CONFIG_PATH) is linked statically: the binaries then run anywhere
    // without LD_LIBRARY_PATH or rpath. The system's library is linked dynamically.
    let system = lib.link_paths.iter().all(|d| d.starts_with("/usr") || d.starts_with("/lib"));
    let lib = probe(!system, true)
        .unwrap_or_else(|e| panic!("linking the SVT-AV1 found by pkg-config (static: {}): {e}", !system));

    // Export the version to dependents: their build scripts see DEP_SVTAV1ENC_VERSION,
    // DEP_SVTAV1ENC_MAJOR and DEP_SVTAV1ENC_MINOR and can emit cfgs for API differences.
    let mut parts = lib.version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    println!("cargo:version={}", lib.version);
    println!("cargo:major={major}");
    println!("cargo:minor={minor}");
    println!("cargo:static={}", !system);
    if !system {
        // A rebuilt library must be bundled again.
        for dir in &lib.link_paths {
            println!("cargo:rerun-if-changed={}", dir.join("libSvtAv1Enc.a").display());
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
