//! track: health checks (http, tcp, exec, interface) that produce priority changes or faults.
