//! mooring: keeps TCP message links healthy on constrained hosts.
#![warn(missing_docs)]

pub mod hl7;
