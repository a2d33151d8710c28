//! Compile-time diagnostics of the macros (trybuild): every `fail/*.rs` must fail to compile with
//! the error in its `.stderr` file, and every `pass/*.rs` must compile and run. Regenerate the
//! `.stderr` files with `TRYBUILD=overwrite cargo test --test ui` and review them like code.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/fail/*.rs");
    t.pass("tests/ui/*/pass/*.rs");
}
