"""The pure domain: specs, the run state machine, durations. No I/O lives here."""
