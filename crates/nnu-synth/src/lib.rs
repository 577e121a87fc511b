//! Synthetic abdominal CT phantoms with liver/tumour labels for tests, benches and the demo.
//!
//! (Scaffold: the owning issue fills this crate in.)
