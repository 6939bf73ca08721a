#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mooring::internals::fuzzing::frame_codecs(data));
