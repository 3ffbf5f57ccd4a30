#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    runpermit_fuzz::witness_policy(data);
});
