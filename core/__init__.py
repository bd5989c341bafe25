"""What every app may use: `run_db`, the hot path's statements (`sql`, and `adb` to run them on
the event loop), the error types and the exception handler, throttles, the request parser with
its limits, and the stream encoders. Knows no product app."""
