//! A component that exports some other world, for the sandbox tests: the host must refuse it
//! as the wrong world rather than fail later.
#![allow(
    missing_docs,
    reason = "a test guest: its only public items are the bindings wit-bindgen generates at the crate root"
)]

wit_bindgen::generate!({
    inline: "
        package test:other@1.0.0;
        world calculator {
            export add: func(a: u32, b: u32) -> u32;
        }
    ",
});

struct Calculator;

impl Guest for Calculator {
    fn add(a: u32, b: u32) -> u32 {
        a.wrapping_add(b)
    }
}

export!(Calculator);
