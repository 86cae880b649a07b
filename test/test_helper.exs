# OTP's process machinery is instrumented in place (SPEC §9, "OTP comes along") by the
# first run whose :instrument is non-empty. Doing it once here, before any test, keeps the
# suite independent of test order: every test sees the same VM (instrumented OTP falls
# through to the original code in processes outside a run).
Lockstep.Instrument.instrument!(:otp)
ExUnit.start()
