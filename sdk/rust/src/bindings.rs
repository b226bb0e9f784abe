//! Generated bindings for `wasi:keyvalue` and `wasi:config` (wit/).

wit_bindgen::generate!({
    path: ["wit/keyvalue.wit", "wit/config.wit", "wit/world.wit"],
    world: "glint:sdk/imports",
    // The three files are one world; without this, packages other than the last count as
    // dependencies whose bindings come from elsewhere.
    generate_all,
});
