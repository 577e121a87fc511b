//! Running a backend over tile bins (the `benchmark` / `ais_bench` counterpart). Scaffold.
