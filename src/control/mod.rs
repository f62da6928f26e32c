//! control: control-socket protocol (shared by vipd and vipctl), server and client.
