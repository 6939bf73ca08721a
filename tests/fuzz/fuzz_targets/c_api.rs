#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mooring::fuzzing::c_api(data));
