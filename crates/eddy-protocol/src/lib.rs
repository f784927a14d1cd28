//! eddy-protocol
