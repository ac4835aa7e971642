//! Link settings of the shared library.

fn main() {
    // libtrunkline.so needs libopus.so.0 (Debian's libopus.a is not position-independent, so it
    // cannot be linked in). A RUNPATH of $ORIGIN lets the packages ship a copy beside the library
    // that the loader finds first; without one there, the system's is used as before.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,$ORIGIN");
        println!("cargo:rustc-cdylib-link-arg=-Wl,--enable-new-dtags");
    }
}
