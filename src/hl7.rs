//! HL7 v2 helpers.
