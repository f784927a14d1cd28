//! eddy-meta
