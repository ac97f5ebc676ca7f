//! Turns the SVT-AV1 version exported by `av1core-sys` into cfgs for API differences.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(svt_init_handle_2args)");
    let major: u32 = std::env::var("DEP_SVTAV1ENC_MAJOR").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    // SVT-AV1 3.0 dropped the `app_data` argument of svt_av1_enc_init_handle.
    if major >= 3 {
        println!("cargo:rustc-cfg=svt_init_handle_2args");
    }
}
