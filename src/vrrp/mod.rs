//! The RFC 5798 virtual router state machine: sans-IO, time passed in.
