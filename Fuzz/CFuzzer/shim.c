// Header-only target: see include/CFuzzer.h.
