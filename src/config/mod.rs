//! config: TOML configuration: schema, defaults, validation into domain types.
