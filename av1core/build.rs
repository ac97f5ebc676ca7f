//! Turns the SVT-AV1 version exported by `av1core-sys` into cfgs for API differences.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(svt_init_handle_2args)");
    println!("cargo::rustc-check-cfg=cfg(svt_lp_levels)");
    println!("cargo::rustc-check-cfg=cfg(svt_preset_shift)");
    let major: u32 = std::env::var("DEP_SVTAV1ENC_MAJOR").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let minor: u32 = std::env::var("DEP_SVTAV1ENC_MINOR").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    // SVT-AV1 2.3 turned `lp` from a number of logical processors into a level of
    // parallelism (1..=6).
    if (major, minor) >= (2, 3) {
        println!("cargo:rustc-cfg=svt_lp_levels");
        // 2.3 also moved presets 7..=11 one step down and merged 12 and 13 into 11.
        println!("cargo:rustc-cfg=svt_preset_shift");
    }
    // SVT-AV1 3.0 dropped the `app_data` argument of svt_av1_enc_init_handle.
    if major >= 3 {
        println!("cargo:rustc-cfg=svt_init_handle_2args");
    }
}
