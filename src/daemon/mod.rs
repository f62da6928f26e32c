//! daemon: wiring: runtime, one driver per instance, signals, reload, metrics.
